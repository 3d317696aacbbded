"""TrivialAugmentWide and RandomErasing for a whole uint8 batch, with one random draw per image.

torchvision's ``v2.TrivialAugmentWide`` and ``v2.RandomErasing`` draw ONE set of random
parameters per call, so a batch needs a Python loop over its images (chapter 6, section 6.4).
Each image then pays Python's overhead and a dozen or so tiny tensor operations, and on a GPU
every one of those on a 3 x 32 x 32 image is a kernel launch of its own: a fast GPU trains on
more images per second than such a loop delivers. Here each image still gets its own draw,
from the same choices with the same probabilities as torchvision's, but each operation runs
once per batch, on all the images that drew it, on the batch's device. Each operation gives
torchvision's pixels exactly (tests/test_augment.py compares them image by image).

Randomness comes from torch's global generator of the batch's device, the one that
``torch.manual_seed`` (and ``config.seed_everything``) seeds. It draws other numbers than
torchvision's loop would, so the same seed gives other (equally random) images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

NUM_BINS = 31  # magnitude levels, torchvision's default num_magnitude_bins


def _bins(start: float, end: float) -> Tensor:
    """The magnitude of each bin, evenly spaced, in float32 as torchvision computes them."""
    return torch.linspace(start, end, NUM_BINS)


# torchvision's wide augmentation space, in its order: name -> (magnitude of each bin, signed).
# A signed operation is applied with the opposite sign half of the time.
SPACE: dict[str, tuple[Tensor | None, bool]] = {
    "Identity": (None, False),
    "ShearX": (_bins(0.0, 0.99), True),
    "ShearY": (_bins(0.0, 0.99), True),
    "TranslateX": (_bins(0.0, 32.0), True),  # pixels, whatever the image size
    "TranslateY": (_bins(0.0, 32.0), True),
    "Rotate": (_bins(0.0, 135.0), True),  # degrees
    "Brightness": (_bins(0.0, 0.99), True),
    "Color": (_bins(0.0, 0.99), True),
    "Contrast": (_bins(0.0, 0.99), True),
    "Sharpness": (_bins(0.0, 0.99), True),
    "Posterize": ((8 - torch.arange(NUM_BINS) / ((NUM_BINS - 1) / 6)).round(), False),  # bits
    "Solarize": (_bins(1.0, 0.0), False),  # threshold, a fraction of 255
    "AutoContrast": (None, False),
    "Equalize": (None, False),
}
MAGNITUDES = torch.stack([torch.zeros(NUM_BINS) if m is None else m for m, _ in SPACE.values()])
SIGNED = torch.tensor([signed for _, signed in SPACE.values()])


def _per_image(values: Tensor) -> Tensor:
    """(n,) -> (n, 1, 1, 1), to broadcast one number per image over its pixels."""
    return values.view(-1, 1, 1, 1)


# Geometry. Every op is an inverse map: for each output pixel, where to read in the input.


def _warp(images: Tensor, inverse: Tensor) -> Tensor:
    """Resample each image at ``inverse`` (n, 2, 3), which maps output (x, y) to input (x, y),
    both in pixels from the image centre with y downwards, as torchvision's affine does;
    nearest neighbour, zeros outside."""
    n, c, h, w = images.shape
    # affine_grid wants the map in coordinates that run from -1 to 1 across the image
    half = torch.tensor([w / 2, h / 2], device=images.device)
    theta = inverse.clone()
    theta[:, :, :2] *= half  # columns: from -1..1 to pixels, before the map
    theta /= half.view(1, 2, 1)  # rows: from pixels back to -1..1, after it
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    out = F.grid_sample(
        images.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False
    )
    return out.round().to(images.dtype)


def _matrix(like: Tensor, *rows: Sequence[Tensor | float]) -> Tensor:
    """Two rows of three entries, each a number or one value per image, as (n, 2, 3)."""
    entries = [
        torch.as_tensor(e, dtype=like.dtype, device=like.device) for row in rows for e in row
    ]
    return torch.stack(torch.broadcast_tensors(*entries), dim=-1).view(-1, 2, 3)


def shear_x(images: Tensor, m: Tensor) -> Tensor:
    """Output pixel (x, y) reads input (x + m * y), with y counted from the TOP edge:
    torchvision shears about the top-left corner (``center=[0, 0]``), not about the centre."""
    h = images.shape[-2]
    return _warp(images, _matrix(m, (1, m, m * h / 2), (0, 1, 0)))


def shear_y(images: Tensor, m: Tensor) -> Tensor:
    """Output pixel (x, y) reads input (y + m * x), with x counted from the LEFT edge."""
    w = images.shape[-1]
    return _warp(images, _matrix(m, (1, 0, 0), (m, 1, m * w / 2)))


def translate_x(images: Tensor, m: Tensor) -> Tensor:
    """Shift right by m pixels, cut to a whole number towards zero (torchvision's ``int(m)``)."""
    return _warp(images, _matrix(m, (1, 0, -m.trunc()), (0, 1, 0)))


def translate_y(images: Tensor, m: Tensor) -> Tensor:
    """Shift down by m pixels, cut to a whole number towards zero."""
    return _warp(images, _matrix(m, (1, 0, 0), (0, 1, -m.trunc())))


def rotate(images: Tensor, m: Tensor) -> Tensor:
    """Rotate by m degrees about the centre, counter-clockwise on screen for m > 0."""
    cos, sin = torch.cos(torch.deg2rad(m)), torch.sin(torch.deg2rad(m))
    return _warp(images, _matrix(m, (cos, -sin, 0), (sin, cos, 0)))


# Colour. Blends with a per-image factor 1 + m, computed as torchvision computes them.


def _blend(images: Tensor, other: Tensor, m: Tensor) -> Tensor:
    """(1 + m) * images - m * other, clamped, cut to whole numbers: torchvision's ``_blend``
    with ratio 1 + m. addcmul does the second product and the sum in one step, as torchvision's
    ``add_(other, alpha=...)`` does, so both round alike and agree to the last pixel."""
    m = _per_image(m)
    return torch.addcmul(images * (1 + m), other, -m).clamp(0, 255).to(images.dtype)


def brightness(images: Tensor, m: Tensor) -> Tensor:
    """Scale every pixel by 1 + m (a blend with black)."""
    return (images * _per_image(1 + m)).clamp(0, 255).to(images.dtype)


def color(images: Tensor, m: Tensor) -> Tensor:
    """Saturation: blend with the image's own grey version (rounded down, as torchvision)."""
    if images.shape[1] == 1:  # a grey image has no colour to change
        return images
    return _blend(images, TF.rgb_to_grayscale(images).float(), m)


def contrast(images: Tensor, m: Tensor) -> Tensor:
    """Blend with the mean of the image's grey version: one grey level per image."""
    mean = TF.rgb_to_grayscale(images).float().mean(dim=(1, 2, 3), keepdim=True)
    return _blend(images, mean, m)


def sharpness(images: Tensor, m: Tensor) -> Tensor:
    """Blend with a smoothed copy (3 x 3 kernel, 5 in the middle, 1 around, over 13); the
    border pixels, where the kernel would stick out, stay as they are."""
    c = images.shape[1]
    kernel = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], device=images.device) / 13
    smooth = F.conv2d(images.float(), kernel.expand(c, 1, 3, 3), groups=c).round()
    inner = images[..., 1:-1, 1:-1].float()
    # inner - m * (smooth - inner), in one rounding step like torchvision's add_(alpha=-m)
    blended = torch.addcmul(inner, smooth - inner, _per_image(-m)).clamp(0, 255)
    out = images.clone()
    out[..., 1:-1, 1:-1] = blended.to(images.dtype)
    return out


def posterize(images: Tensor, m: Tensor) -> Tensor:
    """Keep the m highest bits of each 8-bit value, zero the others."""
    mask = (255 << (8 - m.int())) & 255
    return images & _per_image(mask).to(images.dtype)


def solarize(images: Tensor, m: Tensor) -> Tensor:
    """Invert the pixels at or above 255 * m."""
    return torch.where(images >= _per_image(255 * m), 255 - images, images)


def autocontrast(images: Tensor, m: Tensor) -> Tensor:
    """Stretch each channel of each image from its min..max to 0..255. torchvision's kernel
    already works per image and per channel on a batch (there is nothing random to share)."""
    return TF.autocontrast(images)


def equalize(images: Tensor, m: Tensor) -> Tensor:
    """Histogram equalisation of each channel of each image: again torchvision's own kernel,
    which computes one histogram per image and channel of a batch."""
    return TF.equalize(images)


OPERATIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "Identity": lambda images, m: images,
    "ShearX": shear_x,
    "ShearY": shear_y,
    "TranslateX": translate_x,
    "TranslateY": translate_y,
    "Rotate": rotate,
    "Brightness": brightness,
    "Color": color,
    "Contrast": contrast,
    "Sharpness": sharpness,
    "Posterize": posterize,
    "Solarize": solarize,
    "AutoContrast": autocontrast,
    "Equalize": equalize,
}


@dataclass
class TrivialAugmentWide:
    """``v2.TrivialAugmentWide()`` (31 bins, nearest neighbour, fill 0) for a uint8 batch
    (N, C, H, W) on any device: each image draws its own operation, bin and sign."""

    def __call__(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"TrivialAugmentWide expects uint8 images, not {images.dtype}")
        n, device = len(images), images.device
        op = torch.randint(len(OPERATIONS), (n,), device=device)
        level = torch.randint(NUM_BINS, (n,), device=device)
        magnitude = MAGNITUDES.to(device)[op, level]
        negative = SIGNED.to(device)[op] & (torch.rand(n, device=device) <= 0.5)
        magnitude = torch.where(negative, -magnitude, magnitude)
        out = images.clone()
        for k, apply in enumerate(OPERATIONS.values()):
            chosen = (op == k).nonzero().squeeze(1)  # on a GPU this waits for the draw
            if len(chosen):
                out[chosen] = apply(images[chosen], magnitude[chosen])
        return out


@dataclass
class RandomErasing:
    """``v2.RandomErasing`` for a batch (N, C, H, W): each image, with probability ``p``, gets
    a rectangle of ``scale`` of its area and aspect ratio in ``ratio`` set to ``value``. Like
    torchvision it tries 10 random shapes and leaves the image alone when none fits."""

    p: float = 0.5
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float | Sequence[float] = 0.0

    def __call__(self, images: Tensor) -> Tensor:
        n, c, height, width = images.shape
        device = images.device

        def uniform(low: float, high: float) -> Tensor:
            return torch.empty(n, 10, device=device).uniform_(low, high)

        area = height * width * uniform(*self.scale)
        aspect = torch.exp(uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
        h, w = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
        fits = (h < height) & (w < width)
        first = fits.int().argmax(dim=1, keepdim=True)  # the first try that fits
        h, w = h.gather(1, first), w.gather(1, first)
        top = (torch.rand(n, 1, device=device) * (height - h + 1)).floor()
        left = (torch.rand(n, 1, device=device) * (width - w + 1)).floor()
        erase = fits.any(dim=1, keepdim=True) & (torch.rand(n, 1, device=device) < self.p)

        rows = torch.arange(height, device=device).view(1, height, 1)
        cols = torch.arange(width, device=device).view(1, 1, width)
        inside = (rows >= top[:, :, None]) & (rows < (top + h)[:, :, None])
        inside = inside & (cols >= left[:, :, None]) & (cols < (left + w)[:, :, None])
        mask = (inside & erase[:, :, None]).unsqueeze(1)  # (n, 1, H, W)
        value = torch.as_tensor(self.value, device=device).to(images.dtype).view(1, -1, 1, 1)
        return torch.where(mask, value, images)
