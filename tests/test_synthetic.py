"""Tests for imgcls_helpers.synthetic: the generated "shapes" dataset."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from imgcls_helpers.synthetic import COLOURS, SHAPES, ShapesDataset, make_shapes

CAPTION = re.compile(r"^a (\w+) (\w+) on a (dark|light) background$")


def nearest_colour(pixel: np.ndarray, names=tuple(COLOURS)) -> str:
    rgb = np.array([COLOURS[n] for n in names], dtype=float)
    return names[int(np.argmin(((rgb - pixel.astype(float)) ** 2).sum(axis=1)))]


def border_pixels(images: np.ndarray) -> np.ndarray:
    """(N, P, 3): the outermost ring of pixels of every image."""
    f = images.astype(float)
    return np.concatenate([f[:, 0], f[:, -1], f[:, 1:-1, 0], f[:, 1:-1, -1]], axis=1)


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_same_seed_same_data_other_seed_other_data(difficulty):
    a = make_shapes(24, size=16, difficulty=difficulty, seed=5)
    b = make_shapes(24, size=16, difficulty=difficulty, seed=5)
    c = make_shapes(24, size=16, difficulty=difficulty, seed=6)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.colours == b.colours and a.backgrounds == b.backgrounds
    assert not np.array_equal(a.images, c.images)
    assert a.colours != c.colours or not np.array_equal(a.labels, c.labels)


@pytest.mark.parametrize(("n", "size"), [(17, 32), (8, 24), (1, 12)])
def test_dtype_shape_and_balanced_labels(n, size):
    data = make_shapes(n, size=size, seed=1)
    assert data.images.shape == (n, size, size, 3) and data.images.dtype == np.uint8
    assert data.labels.shape == (n,) and data.labels.dtype == np.int64
    assert len(data) == n == len(data.colours) == len(data.backgrounds)
    assert data.classes == SHAPES
    counts = Counter(data.labels.tolist())
    assert set(counts) <= set(range(len(SHAPES)))
    assert max(counts.values()) - min(counts.values()) <= 1
    if n >= len(SHAPES):
        assert len(counts) == len(SHAPES)
    assert set(data.backgrounds) <= {"dark", "light"}
    assert set(data.colours) <= set(COLOURS)
    # real pictures, not blank arrays: each image uses a good part of the 0..255 range
    spread = data.images.reshape(n, -1).max(axis=1).astype(int) - data.images.reshape(n, -1).min(
        axis=1
    )
    assert (spread > 50).all()


def test_captions_match_attributes():
    data = make_shapes(40, size=16, seed=3)
    captions = data.captions()
    assert len(captions) == 40
    for caption, colour, label, background in zip(
        captions, data.colours, data.labels, data.backgrounds, strict=True
    ):
        match = CAPTION.match(caption)
        assert match, caption
        assert match.groups() == (colour, SHAPES[label], background)


def test_attributes_describe_the_pixels():
    """Independent of the bookkeeping: the centre pixel of an 'easy' circle has the named
    colour, and the corners are dark (< 80) or light (>= 170) as the caption says."""
    data = make_shapes(64, size=32, difficulty="easy", seed=2, shapes=("circle",))
    assert (data.labels == 0).all()
    centre = data.images[:, 16, 16]
    assert [nearest_colour(p) for p in centre] == data.colours
    corner = data.images[:, 0, 0].astype(float).mean(axis=1)
    dark = np.array(data.backgrounds) == "dark"
    assert dark.any() and (~dark).any()
    assert (corner[dark] < 80).all() and (corner[~dark] >= 170).all()


def test_shapes_restriction():
    shapes = ("star", "ring", "arrow")
    data = make_shapes(30, size=16, seed=0, shapes=shapes)
    assert tuple(data.classes) == shapes
    assert sorted(Counter(data.labels.tolist()).values()) == [10, 10, 10]
    for caption, label in zip(data.captions(), data.labels, strict=True):
        assert CAPTION.match(caption).group(2) == shapes[label]


def test_colour_restriction():
    data = make_shapes(48, size=32, difficulty="easy", seed=4, colours=("red", "blue"))
    assert set(data.colours) == {"red", "blue"}
    # pixels agree: among all eight colours, the shape colour nearest to each centre
    # (shapes are large and centred at 'easy') is the one named, so only red/blue were drawn
    circles = make_shapes(48, difficulty="easy", seed=4, shapes=("circle",), colours=("green",))
    assert {nearest_colour(p) for p in circles.images[:, 16, 16]} == {"green"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"difficulty": "extreme"},
        {"difficulty": "Easy"},
        {"shapes": ("circle", "hexagon")},
        {"colours": ("red", "mauve")},
    ],
)
def test_invalid_arguments(kwargs):
    bad = next(iter(kwargs.values()))
    bad = bad if isinstance(bad, str) else bad[-1]
    with pytest.raises(ValueError, match=bad):
        make_shapes(4, **kwargs)


def test_difficulty_changes_the_backgrounds():
    """Border pixels are pure background at 'easy' (the shape stays near the middle), and
    gradients, texture and noise make them vary more and more at 'medium' and 'hard'."""
    spread = {
        d: border_pixels(make_shapes(32, size=32, difficulty=d, seed=7).images).std(axis=1).mean()
        for d in ("easy", "medium", "hard")
    }
    assert spread["easy"] < 1.0
    assert spread["medium"] > 5.0
    assert spread["hard"] > 1.5 * spread["medium"]


def test_shapes_dataset_items_classes_targets():
    data = make_shapes(10, size=20, seed=0)
    ds = ShapesDataset(data)
    assert len(ds) == 10
    assert ds.classes == list(SHAPES)
    assert ds.targets == data.labels.tolist()
    for i in (0, 9):
        image, label = ds[i]
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (20, 20)
        assert type(label) is int and label == data.labels[i]
        np.testing.assert_array_equal(np.asarray(image), data.images[i])


def test_shapes_dataset_applies_the_transform():
    data = make_shapes(6, size=16, seed=0)
    seen = []

    def transform(image):
        seen.append(image.size)
        return np.asarray(image)[::-1]

    ds = ShapesDataset(data, transform=transform)
    image, label = ds[3]
    assert seen == [(16, 16)]
    np.testing.assert_array_equal(image, data.images[3][::-1])
    assert label == data.labels[3]
