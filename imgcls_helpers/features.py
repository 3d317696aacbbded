"""Hand-crafted features for the classical chapter: HOG descriptors over a whole dataset.

scikit-image computes the descriptor of one image; this module adds what a dataset needs:
the descriptor length worked out from the parameters (so a notebook can check it rather than
assert it), and extraction over many images split into chunks run in parallel worker
processes with joblib (scikit-learn's own parallel backend), since HOG is plain CPU work.
"""

from __future__ import annotations

import numpy as np
from joblib import Parallel, delayed
from skimage.color import rgb2gray
from skimage.feature import hog

# The classic parameters (Dalal & Triggs, 2005): 9 orientation bins over 0-180 degrees,
# 8x8-pixel cells, blocks of 2x2 cells normalised with L2-Hys (L2, clip at 0.2, L2 again).
HOG_DEFAULTS = {
    "orientations": 9,
    "pixels_per_cell": (8, 8),
    "cells_per_block": (2, 2),
    "block_norm": "L2-Hys",
}


def hog_length(
    height: int,
    width: int,
    orientations: int = 9,
    pixels_per_cell: tuple[int, int] = (8, 8),
    cells_per_block: tuple[int, int] = (2, 2),
) -> int:
    """Length of the HOG descriptor of an ``height x width`` image.

    Cells tile the image (a partial cell at the edge is dropped); a block slides one cell at
    a time, so there are ``cells - cells_per_block + 1`` block positions along each axis; each
    block contributes ``cells_per_block[0] * cells_per_block[1] * orientations`` numbers.
    """
    cells_y, cells_x = height // pixels_per_cell[0], width // pixels_per_cell[1]
    blocks_y, blocks_x = cells_y - cells_per_block[0] + 1, cells_x - cells_per_block[1] + 1
    if blocks_y < 1 or blocks_x < 1:
        raise ValueError(
            f"a {height}x{width} image has fewer cells than one block of {cells_per_block}"
        )
    return blocks_y * blocks_x * cells_per_block[0] * cells_per_block[1] * orientations


def _to_gray(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 or (N, H, W) -> (N, H, W) floats in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 4:
        if images.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) colour images, got shape {images.shape}")
        return rgb2gray(images)
    if images.ndim == 3:
        return images / 255.0 if images.dtype == np.uint8 else images.astype(np.float64)
    raise ValueError(f"expected a batch (N, H, W[, 3]) of images, got shape {images.shape}")


def _to_colour(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> floats in [0, 1], for HOG with ``channel_axis=-1``."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"colour HOG needs (N, H, W, 3) images, got shape {images.shape}")
    return images / 255.0 if images.dtype == np.uint8 else images.astype(np.float64)


def _hog_chunk(images: np.ndarray, options: dict) -> np.ndarray:
    return np.stack([hog(image, feature_vector=True, **options) for image in images])


def hog_features(
    images: np.ndarray,
    *,
    colour: bool = False,
    n_jobs: int = -1,
    chunk_size: int = 500,
    **options,
) -> np.ndarray:
    """HOG descriptors of a batch of images, as an ``(N, D)`` float32 array.

    ``images``: ``(N, H, W, 3)`` RGB or ``(N, H, W)`` grey. By default colour images are
    converted to grey first, the simpler choice; ``colour=True`` does what Dalal and Triggs
    did: at each pixel, the gradient of the colour channel where it is strongest
    (scikit-image's ``channel_axis=-1``). The descriptor has the same length either way.
    ``options`` override :data:`HOG_DEFAULTS`. ``n_jobs`` worker processes (-1: one per
    core) each take ``chunk_size`` images; ``n_jobs=1`` runs in this process.
    """
    prepared = _to_colour(images) if colour else _to_gray(images)
    options = {**HOG_DEFAULTS, **({"channel_axis": -1} if colour else {}), **options}
    chunks = [prepared[i : i + chunk_size] for i in range(0, len(prepared), chunk_size)]
    if n_jobs == 1 or len(chunks) == 1:
        parts = [_hog_chunk(c, options) for c in chunks]
    else:
        parts = Parallel(n_jobs=n_jobs)(delayed(_hog_chunk)(c, options) for c in chunks)
    return np.concatenate(parts).astype(np.float32)
