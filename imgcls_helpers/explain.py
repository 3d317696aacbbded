"""What the model gets wrong, and why: the worst predictions, the classes it mixes up, where
it looks (Grad-CAM) and which labels in your own folder are probably wrong (confident learning).

Grad-CAM comes from captum (PyTorch's own interpretability library); the losses and the
confusion pairs are a few lines over PyTorch and scikit-learn. Confident learning is written
out by hand because its three steps are the lesson: ``cleanlab`` does the same and more.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn import functional as F

from .config import announce
from .metrics import to_numpy
from .models import evaluating
from .viz import show_attention, show_images

# --- The worst predictions and the most frequent mix-ups ------------------------------------


def top_losses(logits, targets, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` examples with the largest cross-entropy, largest first: ``(indices, losses)``.

    A large loss is a confident wrong answer (or a right one given little probability); these
    are the images to look at first. Equal losses keep dataset order, so the result never
    changes between runs. ``k`` larger than the dataset gives every example.
    """
    logits = torch.as_tensor(logits).detach().float().cpu()
    targets = torch.as_tensor(targets).long().cpu()
    if logits.ndim != 2 or len(logits) != len(targets):
        raise ValueError(f"logits {tuple(logits.shape)} must be (N, C) for {len(targets)} targets")
    losses = F.cross_entropy(logits, targets, reduction="none")
    order = torch.sort(losses, descending=True, stable=True).indices[:k]
    return order, losses[order]


def confused_pairs(
    targets, predictions, classes: Sequence[str], k: int = 5
) -> list[tuple[str, str, int]]:
    """The ``k`` most frequent mistakes as ``(true class, predicted class, count)``.

    These are the largest off-diagonal cells of scikit-learn's confusion matrix; pairs never
    confused are left out. Equal counts are ordered by true class, then predicted class (their
    order in ``classes``), so the list is the same on every run.
    """
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(
        to_numpy(targets), to_numpy(predictions), labels=list(range(len(classes)))
    )
    pairs = [
        (int(cm[i, j]), i, j)
        for i in range(len(classes))
        for j in range(len(classes))
        if i != j and cm[i, j] > 0
    ]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    return [(classes[i], classes[j], count) for count, i, j in pairs[:k]]


# --- Grad-CAM: where in the image the evidence for a class is ---------------------------------


def grad_cam(
    model: nn.Module, layer: nn.Module, images: torch.Tensor, targets=None
) -> torch.Tensor:
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] at the images' resolution (Selvaraju et al., 2017).

    Each channel ``A_k`` of ``layer``'s output is weighted by the mean gradient of the target
    class's score over that channel, ``alpha_k``; the map is ``ReLU(sum_k alpha_k A_k)`` (only
    evidence *for* the class), upsampled bilinearly to the image and divided by its maximum,
    so each image's strongest region is 1 (a map with no positive evidence stays all 0).
    For a ResNet, ``layer`` is ``model.layer4``: the last, most semantic feature maps.

    ``images`` are normalised float batches as the model sees them. ``targets`` (class
    indices) default to the model's own predictions: "why did it say that?".

    We use captum (``LayerGradCam`` and ``LayerAttribution.interpolate``): it is maintained
    by the PyTorch team, installs as a small wheel and pulls in nothing heavy. It takes the
    gradients with ``torch.autograd.grad``, so no parameter's ``.grad`` is touched and frozen
    layers may stay frozen; the model runs in eval mode and its mode is put back afterwards.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    if not any(m is layer for m in model.modules()):
        raise ValueError("grad_cam: `layer` is not a module of `model` (e.g. model.layer4)")
    if not torch.is_tensor(images) or images.ndim != 4 or not images.is_floating_point():
        got = f"{images.dtype} {tuple(images.shape)}" if torch.is_tensor(images) else type(images)
        raise ValueError(
            "grad_cam: `images` must be a normalised float batch (N, C, H, W) as the model sees "
            f"it, got {got}"
        )
    device = next(model.parameters()).device
    images = images.detach().to(device)
    flags = [p.requires_grad for p in model.parameters()]
    try:
        with evaluating(model), torch.enable_grad():
            with torch.no_grad():
                scores = model(images)
            targets = scores.argmax(dim=1) if targets is None else targets
            targets = torch.as_tensor(targets, device=device).long().view(-1)
            in_range = ((targets >= 0) & (targets < scores.shape[1])).all()
            if len(targets) != len(images) or not in_range:
                raise ValueError(
                    f"grad_cam: {len(images)} images need as many targets, class indices in "
                    f"[0, {scores.shape[1]}); got {targets.tolist()}"
                )
            cams = LayerGradCam(model, layer).attribute(images, target=targets)
    finally:  # captum leaves the flags alone; restoring them keeps that a promise, not a hope
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    cams = F.relu(cams.detach())  # Grad-CAM's ReLU: keep only the evidence for the class
    cams = LayerAttribution.interpolate(cams, tuple(images.shape[-2:]), "bilinear")[:, 0]
    peak = cams.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cams / peak.clamp_min(1e-12), 0.0).cpu()


def show_cams(images_uint8, cams, titles: Sequence[str], ncols: int = 4) -> Figure:
    """Each image with its Grad-CAM map on top (bright = where the evidence is).

    ``images_uint8`` is ``(N, 3, H, W)``; ``cams`` is ``(N, H, W)`` from :func:`grad_cam`;
    ``titles`` are one string per image, e.g. ``"true: cat / pred: dog 0.91"``. Drawn like
    the attention maps of the ViT chapter: the photo in grey, the map in colour.
    """
    cams = torch.as_tensor(cams)
    if cams.ndim != 3 or len(cams) != len(images_uint8) or len(titles) != len(cams):
        raise ValueError(
            f"show_cams: {len(images_uint8)} images, {len(titles)} titles and maps of shape "
            f"{tuple(cams.shape)}; expected one (H, W) map and one title per image"
        )
    return show_attention(images_uint8, cams, list(titles), ncols=ncols, size=2.2)


def show_top_losses(
    images_uint8,
    indices,
    losses,
    targets,
    predictions,
    probabilities,
    classes: Sequence[str],
    ncols: int = 4,
) -> Figure:
    """The images at ``indices`` (from :func:`top_losses`), each titled
    ``predicted / true / loss / probability of the true class``.

    ``images_uint8``, ``targets``, ``predictions`` and ``probabilities`` (N, C) cover the
    whole dataset; ``losses`` are the ones :func:`top_losses` returned with ``indices``.
    """
    indices = to_numpy(indices).astype(int)
    targets, predictions = to_numpy(targets), to_numpy(predictions)
    probabilities = to_numpy(probabilities)
    titles = [
        f"{classes[predictions[i]]} / {classes[targets[i]]} / {float(loss):.2f} / "
        f"{probabilities[i, targets[i]]:.2f}"
        for i, loss in zip(indices, to_numpy(losses), strict=True)
    ]
    return show_images(
        images_uint8[torch.as_tensor(indices)],
        titles,
        ncols=ncols,
        title="pred / true / loss / prob of true",
        size=2.2,
    )


# --- Label errors: confident learning (Northcutt, Jiang & Chuang, JAIR 2021) -----------------


def label_issues(probs, labels) -> np.ndarray:
    """Indices of examples whose label is probably wrong, most suspect first.

    Confident learning (https://arxiv.org/abs/1911.00068), written out because each step is
    one idea; ``cleanlab.filter.find_label_issues`` does this and more (other filters,
    multi-label data, calibrated counts):

    1. per class ``j``, a threshold ``t_j``: the mean predicted probability of ``j`` over the
       examples *labelled* ``j`` (how sure the model usually is of a class it is right about);
    2. an example labelled ``i`` is confidently in class ``j`` if ``probs[n, j] >= t_j``; of
       those classes, it goes to the most probable one. Examples that land off the diagonal
       (``j != i``) of this "confident joint" are the suspects;
    3. suspects are ranked by self-confidence ``probs[n, labels[n]]``, lowest first.

    ``probs`` MUST be out-of-sample (N, C) probabilities, e.g. from
    :func:`out_of_sample_probs`: a model that has seen a wrong label has learnt to agree with it.
    """
    probs, labels = np.asarray(to_numpy(probs), dtype=np.float64), to_numpy(labels).astype(int)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs {probs.shape} must be (N, C) for {len(labels)} labels")
    n_classes = probs.shape[1]
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= n_classes:
        raise ValueError(f"labels must be class indices in [0, {n_classes}), got {set(labels)}")
    counts = np.bincount(labels, minlength=n_classes)
    if (counts == 0).any():
        empty = np.flatnonzero(counts == 0).tolist()
        raise ValueError(f"classes {empty} have no labelled example, so no threshold")
    thresholds = np.array([probs[labels == j, j].mean() for j in range(n_classes)])
    # 1e-6 slack as cleanlab has: an example exactly at the mean must not miss by a rounding
    confident = probs >= thresholds - 1e-6
    confident_class = np.where(confident, probs, -np.inf).argmax(axis=1)
    suspect = confident.any(axis=1) & (confident_class != labels)
    candidates = np.flatnonzero(suspect)
    self_confidence = probs[candidates, labels[candidates]]
    return candidates[np.argsort(self_confidence, kind="stable")]


def out_of_sample_probs(features, labels, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Cross-validated class probabilities (N, C): each row from a model that never saw it.

    A logistic regression on standardised features (e.g. a pretrained network's penultimate
    layer) is fitted on ``folds - 1`` folds and predicts the held-out one, with scikit-learn's
    ``cross_val_predict``, as cleanlab's documentation recommends. Folds are stratified; a
    class with fewer examples than ``folds`` reduces the number of folds (and says so).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = to_numpy(features), to_numpy(labels).astype(int)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features {features.shape} must be (N, D) for {len(labels)} labels")
    counts = np.bincount(labels)
    if counts.min() < 2:
        rare = {j: int(c) for j, c in enumerate(counts) if c < 2}
        raise ValueError(
            f"out_of_sample_probs: classes {rare} (index: examples) have fewer than 2 examples; "
            "each class needs one to train on and one to predict. Add images or drop the class."
        )
    if counts.min() < folds:
        announce(
            f"out_of_sample_probs: the smallest class has {counts.min()} examples, fewer than "
            f"{folds} folds; using {counts.min()} folds instead."
        )
        folds = int(counts.min())
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # max_iter=2000 converges on standardised features in every case we tried; should a fold
    # still stop early, we catch that one warning (others pass through) and say so plainly.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probs = cross_val_predict(model, features, labels, cv=cv, method="predict_proba")
    others = [w for w in caught if not issubclass(w.category, ConvergenceWarning)]
    if len(others) < len(caught):
        announce("out_of_sample_probs: a fold's logistic regression stopped before converging")
    for w in others:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return probs
