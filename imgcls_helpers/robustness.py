"""Common-corruption robustness in the style of ImageNet-C: how accuracy falls as images get
noisier, blurrier, more compressed, brighter or flatter.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019 (https://arxiv.org/abs/1903.12261), corrupt the ImageNet validation
set with 15 corruptions at 5 severities and report accuracy at each. A model that is 90 %
right on clean photos can be far worse on slightly noisy ones; a curve per corruption shows
how quickly. Five of their corruptions are rebuilt here, for whole uint8 batches, with the
parameters of their reference code (github.com/hendrycks/robustness,
ImageNet-C/imagenet_c/imagenet_c/corruptions.py), quoted in ``_PARAMETERS``:

- ``gaussian_noise``: add N(0, c^2) to pixels in [0, 1], clip. As in the reference.
- ``gaussian_blur``: a Gaussian blur of standard deviation sigma pixels. This is the
  reference's ``gaussian_blur`` (one of its four held-out *validation* corruptions), not the
  disk-shaped ``defocus_blur`` of the 15 benchmark ones. Sigma is given for 224-pixel images,
  so it is scaled by ``min(H, W) / 224`` here: a 32-pixel image is blurred as much, relative
  to its size, as a 224-pixel one. The kernel reaches 4 sigma (skimage's default truncation,
  which the reference uses) and the border is reflected (the reference repeats the edge pixel).
- ``jpeg``: save as JPEG at the given quality with PIL and read it back, as the reference
  does. (torchvision 0.29 deprecates the JPEG codec in ``torchvision.io``; PIL stays.)
- ``brightness``: add c to V in HSV, clip at 1. Written by hand because the equivalent needs
  no colour conversion: with hue and saturation fixed, R, G and B are proportional to
  V = max(R, G, B), so each pixel is scaled by min(V + c, 1) / V; a black pixel (V = 0, which
  skimage gives saturation 0) becomes grey c. tests/test_robustness.py checks this against
  skimage's ``rgb2hsv``/``hsv2rgb``, which the reference calls.
- ``contrast``: (x - mean) * c + mean, with the mean of each channel of each image, as in the
  reference (which averages over the two spatial axes of an H x W x 3 array).

The reference returns floats in [0, 255]; here they are rounded to uint8, the dtype the
book's ``TensorLoader`` holds. Severity 0 is the clean image, so a curve starts at clean
accuracy.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from .models import device_of, evaluating

CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "jpeg", "brightness", "contrast")
SEVERITIES = (1, 2, 3, 4, 5)

# One parameter per severity 1..5, copied from the reference code's functions of these names
# (gaussian_noise, gaussian_blur, jpeg_compression, brightness, contrast).
_PARAMETERS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # noise std, pixels in [0, 1]
    "gaussian_blur": (1, 2, 3, 4, 6),  # sigma in pixels of a 224-pixel image
    "jpeg": (25, 18, 15, 10, 7),  # JPEG quality
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added to V in HSV
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),  # factor on the distance from the mean
}
_REFERENCE_SIZE = 224  # ImageNet-C's image size, for which the blur sigmas are given


def _check_images(images) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 pixels in 0..255, got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W) RGB, got shape {tuple(images.shape)}")


def _to_uint8(x: Tensor) -> Tensor:
    """Floats in [0, 1] (clipped here) to rounded uint8 pixels."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _gaussian_noise(x: Tensor, c: float, generator: torch.Generator) -> Tensor:
    # drawn on the CPU, so a seed gives the same noise on every device
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)
    return x + c * noise.to(x.device)


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    size = min(x.shape[-2:])
    sigma = sigma * size / _REFERENCE_SIZE
    radius = min(int(4 * sigma + 0.5), size - 1)  # reflect padding needs radius < size
    return TF.gaussian_blur(x, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])


def _brightness(x: Tensor, c: float) -> Tensor:
    value = x.amax(dim=1, keepdim=True)  # V of HSV
    new_value = (value + c).clamp(max=1)
    scaled = x * new_value / value.clamp(min=1e-12)
    return torch.where(value > 0, scaled, new_value.expand_as(x))


def _contrast(x: Tensor, c: float) -> Tensor:
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * c + mean


def _jpeg(images: Tensor, quality: int) -> Tensor:
    out = []
    for image in images.permute(0, 2, 3, 1).cpu().numpy():
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(images.device)


def corrupt(images: Tensor, name: str, severity: int, *, seed: int = 0) -> Tensor:
    """``images`` (uint8, (N, 3, H, W)) with corruption ``name`` at ``severity`` 0..5.

    Severity 0 returns the images unchanged (a copy). Only ``gaussian_noise`` is random; its
    noise comes from a ``torch.Generator`` seeded with ``seed``, so the same seed gives the
    same images and torch's global random state is left alone. Returns uint8, same shape.
    """
    if name not in _PARAMETERS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}")
    if not isinstance(severity, int) or not 0 <= severity <= len(SEVERITIES):
        raise ValueError(f"severity must be 0 (clean) or one of {SEVERITIES}, got {severity!r}")
    _check_images(images)
    if severity == 0:
        return images.clone()
    c = _PARAMETERS[name][severity - 1]
    if name == "jpeg":
        return _jpeg(images, int(c))
    x = images.float() / 255
    if name == "gaussian_noise":
        x = _gaussian_noise(x, c, torch.Generator().manual_seed(seed))
    elif name == "gaussian_blur":
        x = _gaussian_blur(x, c)
    elif name == "brightness":
        x = _brightness(x, c)
    else:
        x = _contrast(x, c)
    return _to_uint8(x)


@torch.no_grad()
def corruption_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 256,
    device: torch.device | str | None = None,
    seed: int = 0,
    corruptions: Sequence[str] = CORRUPTIONS,
) -> dict[str, list[float]]:
    """Accuracy (a fraction) of ``model`` at severities 0..5 for each corruption.

    ``images`` are the raw uint8 pixels: each batch is corrupted first, then scaled to [0, 1]
    and normalised with ``mean``/``std`` (the order a camera and a preprocessing pipeline
    would apply them). Index 0 of every list is the clean accuracy, computed once. The model
    runs in eval mode without gradients; its mode is put back afterwards. The noise of the
    batch starting at image ``i`` uses seed ``seed + i``, so results are reproducible for a
    given ``seed`` and ``batch_size``.
    """
    _check_images(images)
    labels = torch.as_tensor(labels).long().cpu()
    if labels.shape != (len(images),):
        raise ValueError(f"{len(images)} images but labels of shape {tuple(labels.shape)}")
    for name in corruptions:
        if name not in _PARAMETERS:
            raise ValueError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    device = torch.device(device) if device else device_of(model)

    def accuracy_at(name: str, severity: int) -> float:
        correct = 0
        for start in range(0, len(images), batch_size):
            batch = corrupt(images[start : start + batch_size], name, severity, seed=seed + start)
            x = TF.normalize(batch.to(device).float() / 255, list(mean), list(std))
            preds = model(x).argmax(dim=1).cpu()
            correct += (preds == labels[start : start + batch_size]).sum().item()
        return correct / len(images)

    with evaluating(model):
        clean = accuracy_at(CORRUPTIONS[0], 0)
        return {
            name: [clean] + [accuracy_at(name, severity) for severity in SEVERITIES]
            for name in corruptions
        }


def summary(results: dict[str, list[float]]) -> dict:
    """The numbers a chapter prints from :func:`corruption_accuracy`'s results.

    ``clean``: clean accuracy; ``mean_corrupted``: mean accuracy over all corruptions and
    severities 1..5; ``relative_drop``: ``(clean - mean_corrupted) / clean``, the fraction of
    clean accuracy lost (nan when clean accuracy is 0). ``per_corruption[name]`` has the same
    ``mean_corrupted`` and ``relative_drop`` for that corruption alone, and ``severity_5``.
    """
    if not results or any(len(curve) != len(SEVERITIES) + 1 for curve in results.values()):
        raise ValueError("results must map each corruption to 6 accuracies, severities 0..5")
    clean = next(iter(results.values()))[0]

    def drop(accuracy: float) -> float:
        return (clean - accuracy) / clean if clean > 0 else math.nan

    per_corruption = {}
    for name, curve in results.items():
        corrupted = sum(curve[1:]) / len(SEVERITIES)
        per_corruption[name] = {
            "mean_corrupted": corrupted,
            "relative_drop": drop(corrupted),
            "severity_5": curve[5],
        }
    mean_corrupted = sum(p["mean_corrupted"] for p in per_corruption.values()) / len(results)
    return {
        "clean": clean,
        "mean_corrupted": mean_corrupted,
        "relative_drop": drop(mean_corrupted),
        "per_corruption": per_corruption,
    }


def plot_corruption_curves(results: dict[str, list[float]], title: str | None = None):
    """Accuracy against severity 0..5, one line per corruption, clean accuracy dashed.

    The legend sits to the right of the axes, so it never hides a line.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    severities = range(len(SEVERITIES) + 1)
    for name, curve in results.items():
        ax.plot(severities, curve, marker="o", label=name)
    clean = next(iter(results.values()))[0]
    ax.axhline(clean, color="grey", linestyle="--", label="clean")
    ax.set_xticks(list(severities))
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
