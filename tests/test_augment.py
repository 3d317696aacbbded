"""Tests for imgcls_helpers.augment: every batched op against torchvision image by image, the
per-image draws of TrivialAugmentWide, and RandomErasing's probability and rectangles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from imgcls_helpers import augment
from imgcls_helpers.augment import OPERATIONS, SPACE, RandomErasing, TrivialAugmentWide
from imgcls_helpers.synthetic import make_shapes

NEAREST = InterpolationMode.NEAREST

# What v2.TrivialAugmentWide does to one image for each operation and magnitude m, written
# with the public functionals (as in torchvision's _AutoAugmentBase, fill None = zeros).
TORCHVISION = {
    "Identity": lambda image, m: image,
    "ShearX": lambda image, m: TF.affine(
        image, 0.0, [0, 0], 1.0, [math.degrees(math.atan(m)), 0.0], NEAREST, center=[0, 0]
    ),
    "ShearY": lambda image, m: TF.affine(
        image, 0.0, [0, 0], 1.0, [0.0, math.degrees(math.atan(m))], NEAREST, center=[0, 0]
    ),
    "TranslateX": lambda image, m: TF.affine(image, 0.0, [int(m), 0], 1.0, [0.0, 0.0], NEAREST),
    "TranslateY": lambda image, m: TF.affine(image, 0.0, [0, int(m)], 1.0, [0.0, 0.0], NEAREST),
    "Rotate": lambda image, m: TF.rotate(image, m, NEAREST),
    "Brightness": lambda image, m: TF.adjust_brightness(image, 1.0 + m),
    "Color": lambda image, m: TF.adjust_saturation(image, 1.0 + m),
    "Contrast": lambda image, m: TF.adjust_contrast(image, 1.0 + m),
    "Sharpness": lambda image, m: TF.adjust_sharpness(image, 1.0 + m),
    "Posterize": lambda image, m: TF.posterize(image, int(m)),
    "Solarize": lambda image, m: TF.solarize(image, 255.0 * m),
    "AutoContrast": lambda image, m: TF.autocontrast(image),
    "Equalize": lambda image, m: TF.equalize(image),
}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """30 uint8 (3, 32, 32) images: generated shapes (flat areas, edges) and pure noise."""
    shapes = torch.from_numpy(make_shapes(24, size=32, seed=0).images).permute(0, 3, 1, 2)
    noise = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    return torch.cat([shapes, noise.to(torch.uint8)]).contiguous()


def test_the_space_is_torchvisions_names_order_magnitudes_and_signs():
    """Read from torchvision's internal table (it may move in a later version)."""
    theirs = v2.TrivialAugmentWide._AUGMENTATION_SPACE
    assert list(SPACE) == list(theirs) == list(OPERATIONS)
    for name, (magnitudes, signed) in SPACE.items():
        their_magnitudes, their_signed = theirs[name]
        expected = their_magnitudes(augment.NUM_BINS, 32, 32)
        assert signed == their_signed, name
        if expected is None:
            assert magnitudes is None, name
        else:
            assert torch.equal(magnitudes, expected.float()), name


def magnitudes_of(name: str) -> list[float]:
    """Three of the operation's 31 magnitudes (bins 8, 20, 30), with both signs if signed.
    Bin 8 translates by 8.53 pixels: torchvision cuts that to 8, rounding would give 9."""
    magnitudes, signed = SPACE[name]
    if magnitudes is None:
        return [0.0]
    chosen = [float(magnitudes[k]) for k in (8, 20, 30)]
    return chosen + [-m for m in chosen] if signed else chosen


@pytest.mark.parametrize("name", list(SPACE))
def test_each_operation_equals_torchvision_on_each_image(images, name):
    """One batch in which image i gets magnitude i mod 3 (or 6 with signs), so each image
    must use its own magnitude. Every op matches exactly, pixel for pixel, geometric ones
    included: _warp builds the same nearest-neighbour sampling grid as torchvision's
    affine (Rotate at 90 and 135 degrees too, though its 90 is a rot90 shortcut)."""
    choices = magnitudes_of(name)
    m = torch.tensor([choices[i % len(choices)] for i in range(len(images))])
    batched = OPERATIONS[name](images, m)
    for i, image in enumerate(images):
        expected = TORCHVISION[name](image, float(m[i]))
        differ = (batched[i] != expected).sum().item()
        assert differ == 0, f"{name} at {float(m[i]):.3f}: image {i}, {differ} values differ"


@pytest.mark.parametrize("name", ["Rotate", "ShearX", "Color", "Sharpness", "Posterize"])
def test_another_magnitude_would_be_caught(images, name):
    """The comparison above is not vacuous: bin 13 instead of bin 8 gives other pixels."""
    m = torch.full((len(images),), magnitudes_of(name)[0])
    other = torch.full((len(images),), float(SPACE[name][0][13]))
    assert not torch.equal(OPERATIONS[name](images, m), OPERATIONS[name](images, other))


def record_draws(monkeypatch) -> dict[str, list[torch.Tensor]]:
    """Replace every operation by one that records the magnitudes it is given."""
    drawn = {name: [] for name in OPERATIONS}
    for name in OPERATIONS:

        def record(batch, m, name=name):
            drawn[name].append(m)
            return batch

        monkeypatch.setitem(OPERATIONS, name, record)
    return drawn


def test_each_image_draws_its_own_operation_uniformly(monkeypatch):
    """14,000 tiny images in one batch: about 1,000 per operation. Chi-square with 13 degrees
    of freedom stays below 34.5 with probability 0.999; seeded, so the test is deterministic."""
    drawn = record_draws(monkeypatch)
    torch.manual_seed(0)
    TrivialAugmentWide()(torch.zeros(14_000, 3, 2, 2, dtype=torch.uint8))
    counts = np.array([sum(len(m) for m in drawn[name]) for name in OPERATIONS])
    assert counts.sum() == 14_000
    assert ((counts - 1000) ** 2 / 1000).sum() < 34.5, counts


def test_magnitudes_come_from_each_operations_bins_with_a_random_sign(monkeypatch):
    drawn = record_draws(monkeypatch)
    torch.manual_seed(1)
    TrivialAugmentWide()(torch.zeros(14_000, 3, 2, 2, dtype=torch.uint8))
    for name, (magnitudes, signed) in SPACE.items():
        m = torch.cat(drawn[name])
        if magnitudes is None:
            continue
        assert set(m.abs().tolist()) == set(magnitudes.tolist()), f"{name}: not its bins"
        negative = (m < 0).float().mean().item()
        if signed:  # ~1,000 draws, 2 of which are the unsigned bin 0: 0.5 +- 5 sigma
            assert abs(negative - 0.5) < 0.08, f"{name}: {negative:.0%} negative"
        else:
            assert negative == 0, name


def test_every_augmented_image_is_one_operation_of_the_space():
    """End to end: each output image equals one operation of the space at one of its
    magnitudes (each op equals torchvision's, tested above), and no single operation
    explains the whole batch. Each op runs once, on every image at every magnitude."""
    batch = torch.from_numpy(make_shapes(16, size=16, seed=1).images).permute(0, 3, 1, 2)
    torch.manual_seed(2)
    out = TrivialAugmentWide()(batch)
    found = [set() for _ in batch]
    for name, (magnitudes, signed) in SPACE.items():
        values = torch.zeros(1) if magnitudes is None else magnitudes
        values = torch.cat([values, -values]) if signed else values
        every = OPERATIONS[name](batch.repeat(len(values), 1, 1, 1), values.repeat_interleave(16))
        same = (every.view(len(values), *out.shape) == out).flatten(2).all(dim=2).any(dim=0)
        for i in same.nonzero().flatten().tolist():
            found[i].add(name)
    assert all(found), "an image that no operation of the space produces"
    assert not set.intersection(*found), found
    assert len(set.union(*found)) > 5, found


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_dtype_shape_and_device_are_kept_and_the_input_is_left_alone(images, device):
    batch = images.to(device)
    before = batch.clone()
    for transform in (TrivialAugmentWide(), RandomErasing(p=1.0, value=(1, 2, 3))):
        torch.manual_seed(0)
        out = transform(batch)
        assert out.dtype == torch.uint8 and out.shape == batch.shape
        assert out.device == batch.device
        assert torch.equal(batch, before)
        assert not torch.equal(out, batch)
    with pytest.raises(TypeError, match="expects uint8 images, not torch.float32"):
        TrivialAugmentWide()(batch.float())


def test_the_chapter_pipeline_composes_and_keeps_uint8(images):
    strong = v2.Compose([TrivialAugmentWide(), RandomErasing(p=0.25, value=(125, 123, 114))])
    torch.manual_seed(0)
    out = strong(images)
    assert out.dtype == torch.uint8 and out.shape == images.shape


# --------------------------------------------------------------------------- RandomErasing


def erased_boxes(out: torch.Tensor, value: int) -> list[tuple[int, int, int, int] | None]:
    """(top, left, height, width) of the erased rectangle of each image, None where nothing
    was erased; asserts that what was erased is exactly a filled rectangle."""
    boxes = []
    for mask in (out == value).all(dim=1):
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        if len(rows) == 0:
            boxes.append(None)
            continue
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert mask[top:bottom, left:right].all() and mask.sum() == (bottom - top) * (right - left)
        boxes.append((int(top), int(left), int(bottom - top), int(right - left)))
    return boxes


@pytest.mark.parametrize("p", [0.25, 0.7])
def test_random_erasing_erases_each_image_with_probability_p(p):
    """2,000 grey images: the number erased is binomial(2000, p), within 4 standard
    deviations (for these scales every image has a rectangle that fits)."""
    torch.manual_seed(0)
    out = RandomErasing(p=p, value=0)(torch.full((2000, 3, 32, 32), 200, dtype=torch.uint8))
    erased = sum(box is not None for box in erased_boxes(out, 0))
    assert abs(erased - 2000 * p) < 4 * math.sqrt(2000 * p * (1 - p)), erased


@pytest.mark.parametrize("scale", [(0.02, 0.33), (0.1, 0.15)])
def test_random_erasing_rectangles_follow_scale_and_ratio(scale):
    """Each side is a rounded square root (as in torchvision), so a rectangle h x w came from
    an area between (h - 1/2)(w - 1/2) and (h + 1/2)(w + 1/2); that range must meet the scale
    range, and over 1,000 images the areas must spread across most of it."""
    torch.manual_seed(0)
    transform = RandomErasing(p=1.0, scale=scale, ratio=(0.3, 3.3), value=0)
    out = transform(torch.full((1000, 3, 32, 32), 200, dtype=torch.uint8))
    boxes = erased_boxes(out, 0)
    assert all(box is not None for box in boxes)
    low, high = scale[0] * 1024, scale[1] * 1024
    for _, _, h, w in boxes:
        assert (h - 0.5) * (w - 0.5) <= high and (h + 0.5) * (w + 0.5) >= low, (h, w)
        assert (h - 0.5) / (w + 0.5) <= 3.3 and (h + 0.5) / (w - 0.5) >= 0.3, (h, w)
    areas = np.array([h * w for _, _, h, w in boxes]) / 1024
    spread = scale[1] - scale[0]
    assert areas.min() < scale[0] + 0.2 * spread and areas.max() > scale[1] - 0.2 * spread
    # each image draws its own shape and place
    assert len({box[2:] for box in boxes}) > 20
    assert len({box[0] for box in boxes}) > 10 and len({box[1] for box in boxes}) > 10


def test_random_erasing_paints_the_value_per_channel_and_nothing_else(images):
    torch.manual_seed(0)
    out = RandomErasing(p=1.0, value=(7, 8, 9))(images)
    changed = (out != images).any(dim=1, keepdim=True).expand_as(out)
    painted = torch.tensor([7, 8, 9], dtype=torch.uint8).view(1, 3, 1, 1).expand_as(out)
    assert torch.equal(out[changed], painted[changed])
    assert changed.flatten(1).any(dim=1).all()  # every image erased (p = 1)
    positions = {tuple(changed[i, 0].nonzero()[0].tolist()) for i in range(len(images))}
    assert len(positions) > len(images) // 2  # rectangles at different places


def test_random_erasing_leaves_an_image_alone_when_no_rectangle_fits(images):
    """At 90-100% of the area with an aspect ratio of 3 or more, no rectangle fits in a
    square image; torchvision then returns the image unchanged, and so must we."""
    options = {"p": 1.0, "scale": (0.9, 1.0), "ratio": (3.0, 3.3), "value": 0}
    torch.manual_seed(0)
    assert torch.equal(v2.RandomErasing(**options)(images[0]), images[0])
    assert torch.equal(RandomErasing(**options)(images), images)
