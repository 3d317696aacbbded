"""Figures the chapters draw again and again: image grids, learning curves, class scores,
confusion matrices and reliability diagrams; and :func:`markdown_table` for their tables.

Each function returns the matplotlib ``Figure`` so a notebook can show it, tweak it or save it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from .data import denormalize
from .metrics import calibration_bins, expected_calibration_error


def _as_display_array(image) -> np.ndarray:
    """PIL, (H,W,C) array or (C,H,W) tensor -> (H,W,C) floats in [0, 1] for ``imshow``."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = image.permute(1, 2, 0).numpy() if image.ndim == 3 else image.numpy()
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image / 255.0
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return np.clip(image, 0, 1)  # clipping is for display only, never for the model's input


def _image_grid(images, mean, std, ncols: int, size: float):
    """A figure with one axis (no ticks) per image; undoes normalisation if ``mean`` given.
    Returns ``(figure, flat list of axes, list of images)``."""
    if isinstance(images, torch.Tensor) and mean is not None:
        images = denormalize(images.float(), mean, std)
    images = list(images)
    nrows = math.ceil(len(images) / ncols)
    ncols = min(ncols, len(images))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    return fig, list(axes.flat), images


def show_images(
    images,
    labels: Sequence | None = None,
    classes: Sequence[str] | None = None,
    *,
    mean=None,
    std=None,
    ncols: int = 8,
    title: str | None = None,
    size: float = 1.6,
):
    """A grid of images with optional labels (class indices mapped through ``classes``).

    ``images``: a batch tensor (N,C,H,W), a list of PIL images / arrays / tensors. Pass the
    ``mean`` and ``std`` that normalised a tensor batch to see the original colours.
    """
    fig, axes, images = _image_grid(images, mean, std, ncols, size)
    for i, (ax, image) in enumerate(zip(axes, images, strict=False)):
        ax.imshow(_as_display_array(image), cmap="gray")
        if labels is not None:
            label = labels[i]
            label = label.item() if isinstance(label, torch.Tensor) else label
            ax.set_title(classes[label] if classes is not None else str(label), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(histories, title: str | None = None):
    """Loss and accuracy per epoch; ``histories`` is one History or ``{name: History}``."""
    if not isinstance(histories, dict):
        histories = {"": histories}
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, h in histories.items():
        prefix = f"{name} " if name else ""
        line = ax_loss.plot(h.epoch, h.train_loss, label=f"{prefix}train")[0]
        ax_acc.plot(h.epoch, h.train_acc, color=line.get_color(), label=f"{prefix}train")
        if h.val_loss:
            ax_loss.plot(h.epoch, h.val_loss, "--", color=line.get_color(), label=f"{prefix}val")
            ax_acc.plot(h.epoch, h.val_acc, "--", color=line.get_color(), label=f"{prefix}val")
    for ax, what in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_probabilities(probs, classes: Sequence[str], *, k: int = 5, title: str | None = None):
    """Horizontal bars of the ``k`` most probable classes for one image."""
    probs = torch.as_tensor(probs).flatten()
    top = probs.topk(min(k, len(probs)))
    names = [classes[i] for i in top.indices.tolist()][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(names) + 0.8))
    ax.barh(names, top.values.tolist()[::-1], color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    for y, p in enumerate(top.values.tolist()[::-1]):
        ax.text(min(p + 0.01, 0.9), y, f"{p:.1%}", va="center", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    targets,
    preds,
    classes: Sequence[str],
    *,
    title: str | None = None,
    normalize: str | None = "true",
    ax=None,
):
    """Confusion matrix drawn by scikit-learn's ``ConfusionMatrixDisplay``. Rows are true
    classes, columns predictions. By default rows are normalised to 1 (the recall of each
    true class); ``normalize=None`` shows raw counts, ``"pred"`` normalises the columns
    (the precision of each predicted class). Pass ``ax`` to draw into an existing panel."""
    from sklearn.metrics import ConfusionMatrixDisplay

    if ax is None:
        size = max(4.0, 0.55 * len(classes) + 1.5)
        _, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        np.asarray(targets),
        np.asarray(preds),
        labels=list(range(len(classes))),
        display_labels=list(classes),
        normalize=normalize,
        values_format="d" if normalize is None else ".2f",
        cmap="Blues",
        colorbar=False,
        ax=ax,
        xticks_rotation=45,
    )
    default = {
        None: "confusion matrix (counts)",
        "true": "confusion matrix (each row sums to 1)",
        "pred": "confusion matrix (each column sums to 1)",
        "all": "confusion matrix (all cells sum to 1)",
    }[normalize]
    ax.set_title(title or default)
    ax.figure.tight_layout()
    return ax.figure


def plot_reliability_diagram(
    probs, targets, *, n_bins: int = 15, title: str | None = None, ax=None
):
    """Reliability diagram: for each confidence bin, the fraction of predictions that were
    right (bars) against the diagonal a calibrated model would follow. Red hatched boxes show
    the gap between each bin's accuracy and its mean confidence (above a bar: overconfident;
    inside it: underconfident); the legend gives the expected calibration error (ECE).
    ``probs`` are ``(N, C)`` class probabilities. Pass ``ax`` to draw into an existing panel."""
    bins = calibration_bins(probs, targets, n_bins)
    ece = expected_calibration_error(probs, targets, n_bins)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    filled = bins.count > 0  # empty bins are left blank
    left, width = bins.edges[:-1][filled], np.diff(bins.edges)[filled]
    accuracy, confidence = bins.accuracy[filled], bins.confidence[filled]
    ax.bar(
        left,
        accuracy,
        width,
        align="edge",
        color="tab:blue",
        edgecolor="black",
        lw=0.5,
        label="accuracy in bin",
    )
    ax.bar(
        left,
        confidence - accuracy,  # positive: more confident than accurate
        width,
        bottom=accuracy,
        align="edge",
        facecolor="none",  # hatched, so the gap shows over the bar and over white alike
        edgecolor="tab:red",
        hatch="///",
        lw=0.5,
        label=f"gap (ECE = {ece:.3f})",
    )
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfectly calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or "reliability diagram")
    ax.figure.tight_layout()
    return ax.figure


def show_feature_maps(maps: torch.Tensor, *, ncols: int = 8, title: str | None = None):
    """Each channel of one image's activations ``(C, H, W)`` as a grey picture, scaled on its
    own so weak channels stay visible (bright = strong response)."""
    maps = maps.detach().float().cpu()
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    scaled = (maps - low) / (high - low).clamp_min(1e-8)
    return show_images(list(scaled.numpy()), list(range(len(maps))), ncols=ncols, title=title)


def show_attention(
    images,
    heatmaps,
    titles: Sequence[str] | None = None,
    *,
    mean=None,
    std=None,
    ncols: int = 8,
    alpha: float = 0.5,
    title: str | None = None,
    size: float = 1.6,
):
    """Each image with a heatmap (e.g. a ViT's attention rollout over its patches) on top.

    ``heatmaps`` is ``(N, h, w)`` at any resolution, such as one value per patch; it is
    stretched over the whole image and smoothed by ``imshow``, so a coarse grid of patches
    still lines up with the pixels underneath. Bright (yellow) = much attention. The image
    is drawn in grey, so that every colour on the figure comes from the heatmap. ``images``
    as in :func:`show_images`; pass ``mean``/``std`` to undo normalisation.
    """
    heatmaps = [np.asarray(torch.as_tensor(h).detach().float().cpu()) for h in heatmaps]
    if len(heatmaps) != len(images):
        raise ValueError(f"{len(images)} images but {len(heatmaps)} heatmaps")
    fig, axes, images = _image_grid(images, mean, std, ncols, size)
    for i, (ax, image, heat) in enumerate(zip(axes, images, heatmaps, strict=False)):
        pixels = _as_display_array(image)
        height, width = pixels.shape[:2]
        ax.imshow(pixels.mean(-1) if pixels.ndim == 3 else pixels, cmap="gray")  # colour = heatmap
        extent = (-0.5, width - 0.5, height - 0.5, -0.5)  # the heatmap covers the image
        ax.imshow(heat, cmap="inferno", alpha=alpha, extent=extent, interpolation="bilinear")
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def markdown_table(header: Iterable[str], rows: Iterable, *, digits: int = 3) -> str:
    """A Markdown table with one line per row; show it with ``IPython.display.Markdown``.

    Each row is a sequence of cells in ``header`` order, or a mapping from column name to
    cell (extra keys are ignored). Floats get ``digits`` decimals; anything else, such as a
    string you formatted yourself, is shown with ``str``.
    """
    header = list(header)

    def cell(value) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float | np.floating) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        values = [row[c] for c in header] if isinstance(row, Mapping) else list(row)
        if len(values) != len(header):
            raise ValueError(f"a row has {len(values)} cells for {len(header)} columns")
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines)
