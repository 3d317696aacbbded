"""Tests for imgcls_helpers.features: the derived HOG length and dataset-wide extraction."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2gray
from skimage.feature import hog

from imgcls_helpers.features import HOG_DEFAULTS, hog_features, hog_length
from imgcls_helpers.synthetic import make_shapes


@pytest.mark.parametrize(
    ("height", "width", "orientations", "cell", "block"),
    [
        (32, 32, 9, 8, 2),
        (64, 64, 9, 8, 2),
        (64, 48, 12, 8, 3),
        (40, 36, 9, 6, 2),
        (28, 28, 8, 4, 1),
    ],
)
def test_hog_length_matches_scikit_image(height, width, orientations, cell, block):
    image = np.random.default_rng(0).random((height, width))
    options = {"orientations": orientations, "pixels_per_cell": (cell, cell)}
    vector = hog(image, cells_per_block=(block, block), **options)
    assert hog_length(height, width, cells_per_block=(block, block), **options) == len(vector)


def test_hog_length_rejects_an_image_smaller_than_a_block():
    with pytest.raises(ValueError, match="fewer cells than one block"):
        hog_length(12, 12)


def test_hog_features_equal_scikit_image_on_grey_images():
    images = make_shapes(6, size=32, seed=1).images
    features = hog_features(images, n_jobs=1)
    assert features.dtype == np.float32
    assert features.shape == (6, hog_length(32, 32))
    for image, row in zip(images, features, strict=True):
        expected = hog(rgb2gray(image), **HOG_DEFAULTS)
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-6)


def test_parallel_chunks_give_the_same_features_in_the_same_order():
    images = make_shapes(40, size=32, seed=2).images
    serial = hog_features(images, n_jobs=1)
    parallel = hog_features(images, n_jobs=2, chunk_size=7)
    np.testing.assert_array_equal(serial, parallel)


def test_options_override_the_defaults_and_grey_input_is_accepted():
    grey = make_shapes(3, size=32, seed=3).images.mean(axis=-1).astype(np.uint8)
    features = hog_features(grey, n_jobs=1, pixels_per_cell=(4, 4))
    assert features.shape == (3, hog_length(32, 32, pixels_per_cell=(4, 4)))


@pytest.mark.parametrize("shape", [(4, 32, 32, 4), (32, 32), (2, 3, 32, 32, 1)])
def test_bad_input_shapes_are_named_in_the_error(shape):
    with pytest.raises(ValueError, match=r"got shape"):
        hog_features(np.zeros(shape, dtype=np.uint8), n_jobs=1)


def test_colour_hog_takes_the_strongest_channel_and_keeps_the_length():
    images = make_shapes(4, size=32, seed=2).images
    got = hog_features(images, colour=True, n_jobs=1)
    want = np.stack([hog(image / 255, channel_axis=-1, **HOG_DEFAULTS) for image in images])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    grey = hog_features(images, n_jobs=1)
    assert got.shape == grey.shape == (4, hog_length(32, 32))
    # a red square on a green background of the same grey level (rgb2gray weighs red 0.2125,
    # green 0.7154): grey sees no edge at all, the colour channels do
    flat = np.zeros((1, 32, 32, 3))
    flat[..., 1] = 0.25
    flat[:, 8:24, 8:24] = (0.25 * 0.7154 / 0.2125, 0, 0)
    assert np.abs(hog_features(flat, n_jobs=1)).max() < 1e-6
    assert np.abs(hog_features(flat, colour=True, n_jobs=1)).max() > 0.1


def test_colour_hog_needs_colour_images():
    with pytest.raises(ValueError, match=r"colour HOG needs \(N, H, W, 3\)"):
        hog_features(np.zeros((2, 32, 32)), colour=True)
