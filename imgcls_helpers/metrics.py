"""Predictions over a loader and the accuracy measures every chapter reports.

Heavier reports (precision/recall, confusion matrices, ROC AUC) come from scikit-learn, which
is well tested; this module gathers what the model predicts and turns it into the arrays
scikit-learn expects. Calibration (binned confidence, ECE, temperature scaling) has no
scikit-learn function for the multi-class case, so it is computed here in a few lines and
tested against scikit-learn's binary ``calibration_curve`` and hand-computed examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn

from .models import evaluating


@dataclass
class Predictions:
    """Everything a model said about a dataset, on the CPU, in loader order."""

    logits: torch.Tensor  # (N, C)
    targets: torch.Tensor  # (N,)

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.softmax(dim=1)

    @property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)


@torch.no_grad()
def predict(model: nn.Module, loader, device: torch.device | str | None = None) -> Predictions:
    """Run ``model`` in eval mode over ``loader`` and collect logits and targets.

    The model's train/eval mode is put back afterwards, so this is safe inside a training loop.
    """
    device = torch.device(device) if device else next(model.parameters()).device
    logits, targets = [], []
    with evaluating(model):
        for x, y in loader:
            logits.append(model(x.to(device)).float().cpu())
            targets.append(torch.as_tensor(y).cpu())
    return Predictions(torch.cat(logits), torch.cat(targets).long())


def accuracy(logits_or_preds: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction correct; accepts class scores (N, C) or predicted labels (N,)."""
    preds = logits_or_preds.argmax(dim=1) if logits_or_preds.ndim == 2 else logits_or_preds
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions but {len(targets)} targets")
    return (preds.cpu() == targets.cpu()).float().mean().item()


def topk_accuracy(
    logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[int, float]:
    """Fraction of samples whose true class is among the ``k`` highest scores, for each k."""
    if max(ks) > logits.shape[1]:
        raise ValueError(f"k={max(ks)} is more than the {logits.shape[1]} classes")
    top = logits.topk(max(ks), dim=1).indices.cpu()
    hit = top == targets.cpu().view(-1, 1)
    return {k: hit[:, :k].any(dim=1).float().mean().item() for k in ks}


# --- Reports beyond accuracy: thin wrappers around scikit-learn ------------------------------


def to_numpy(values) -> np.ndarray:
    """Tensors (any device) and array-likes as NumPy arrays, the form scikit-learn expects."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def score(predictions, targets) -> tuple[float, float]:
    """``(top-1 accuracy, macro-F1)`` of predicted labels (or ``(N, C)`` scores) vs targets.

    Macro-F1 averages the per-class F1 with equal weight, so a class the model ignores
    costs as much as any other, however few test images it has.
    """
    preds, targets = to_numpy(predictions), to_numpy(targets)
    if preds.ndim == 2:
        preds = preds.argmax(axis=1)
    acc = float(accuracy_score(targets, preds))
    return acc, float(f1_score(targets, preds, average="macro", zero_division=0))


def confusion_matrix(
    targets, preds, num_classes: int | None = None, normalize: str | None = None
) -> np.ndarray:
    """Counts (or fractions) of true class ``i`` predicted as class ``j``, at ``[i, j]``.

    ``num_classes`` keeps a row and a column for classes that never occur, so the matrix always
    lines up with the class names. ``normalize``: None (counts), ``"true"`` (rows sum to 1:
    the diagonal is each class's recall), ``"pred"`` (columns sum to 1: the diagonal is each
    class's precision) or ``"all"``, as in ``sklearn.metrics.confusion_matrix``.
    """
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    targets, preds = to_numpy(targets), to_numpy(preds)
    n = num_classes or int(max(targets.max(initial=0), preds.max(initial=0))) + 1
    return sk_confusion_matrix(targets, preds, labels=list(range(n)), normalize=normalize)


def classification_report(predictions: Predictions, classes: Sequence[str], digits: int = 3) -> str:
    """scikit-learn's per-class precision, recall, F1 and support, with the class names.

    A class that is never predicted has no precision; it is reported as 0 rather than with a
    warning (``zero_division=0``), which is the honest score for a class the model ignores.
    """
    from sklearn.metrics import classification_report as sk_report

    return sk_report(
        to_numpy(predictions.targets),
        to_numpy(predictions.preds),
        labels=list(range(len(classes))),
        target_names=list(classes),
        digits=digits,
        zero_division=0,
    )


def roc_auc(scores, targets) -> float:
    """Area under the ROC curve, via ``sklearn.metrics.roc_auc_score``.

    Binary: ``scores`` is one score per sample (higher = more likely positive; probabilities,
    logits or any monotone function of them give the same AUC) and ``targets`` are 0/1.
    Multi-class: ``scores`` is ``(N, C)`` probabilities (rows summing to 1, e.g.
    ``Predictions.probs``); the result is the macro average of the C one-vs-rest AUCs.
    """
    from sklearn.metrics import roc_auc_score

    scores, targets = to_numpy(scores), to_numpy(targets)
    if scores.ndim == 1:
        return float(roc_auc_score(targets, scores))
    labels = list(range(scores.shape[1]))
    return float(roc_auc_score(targets, scores, multi_class="ovr", average="macro", labels=labels))


# --- Calibration: do the probabilities mean what they say? -----------------------------------


@dataclass
class CalibrationBins:
    """Predictions grouped by confidence into equal-width bins over [0, 1].

    ``confidence[b]`` and ``accuracy[b]`` are the mean top probability and the fraction
    correct of the ``count[b]`` predictions in bin ``b`` (NaN for an empty bin); ``edges``
    has ``n_bins + 1`` entries. A calibrated model has ``accuracy == confidence`` in every bin.
    """

    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    edges: np.ndarray


def calibration_bins(probs, targets, n_bins: int = 15) -> CalibrationBins:
    """Bin the top-label confidence of ``(N, C)`` probabilities, as a reliability diagram does.

    Bin ``b`` holds confidences in ``(edges[b], edges[b + 1]]`` (the first bin also holds 0),
    the same rule as ``sklearn.calibration.calibration_curve(strategy="uniform")``, which only
    handles one binary score, so the bins are computed here with NumPy.
    """
    probs, targets = to_numpy(probs).astype(np.float64), to_numpy(targets)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == targets).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_of = np.searchsorted(edges[1:-1], confidence)
    count = np.bincount(bin_of, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins become NaN on purpose
        mean_confidence = np.bincount(bin_of, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(bin_of, weights=correct, minlength=n_bins) / count
    return CalibrationBins(mean_confidence, accuracy, count, edges)


def expected_calibration_error(probs, targets, n_bins: int = 15) -> float:
    """ECE: the gap ``|accuracy - confidence|`` of each bin, weighted by its share of samples.

    0 means that, bin by bin, a model's confidence matches how often it is right. The value
    depends on ``n_bins`` (15 is the usual choice since Guo et al., 2017) and is noisy on
    small test sets, so compare ECEs computed with the same bins on the same data.
    """
    bins = calibration_bins(probs, targets, n_bins)
    filled = bins.count > 0
    gaps = np.abs(bins.accuracy[filled] - bins.confidence[filled])
    return float(np.sum(bins.count[filled] * gaps) / bins.count.sum())


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, max_iter: int = 100) -> float:
    """The temperature ``T > 0`` that minimises the cross-entropy of ``softmax(logits / T)``.

    Temperature scaling (Guo et al., 2017) divides every logit by one number: ``T > 1``
    softens overconfident probabilities, ``T < 1`` sharpens underconfident ones, and the
    predicted class never changes. Fit it on held-out data (a validation split), never on
    the test set and never on the training set, where the model is more confident than
    anywhere else. We optimise ``log T`` so that ``T`` stays positive, with L-BFGS.
    """
    logits = logits.detach().float().cpu()
    targets = torch.as_tensor(targets).long().cpu()
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.exp().item())
