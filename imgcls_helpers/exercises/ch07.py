"""Chapter 7, metrics: the judges of its exercises."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, precision_score, recall_score

from ..labs import Exercise, as_array, close
from ..metrics import expected_calibration_error, fit_temperature, topk_accuracy


def _one_number(value) -> bool:
    """A number, or a tensor or array holding one (not a string, not a bool)."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | float | np.integer | np.floating):
        return True
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and value.dtype != torch.bool
    if isinstance(value, np.ndarray):
        return value.size == 1 and value.dtype.kind in "iuf"
    return False


# -------------------------------------------------------- 7.1 precision, recall and F1 by hand


def _prf_b(context, prf_b):
    try:
        values = as_array(prf_b)
    except TypeError:
        return "give a list of three numbers: [precision, recall, F1]"
    if values.shape != (3,):
        return "give exactly three numbers, in the order precision, recall, F1"
    counts = np.asarray(context["cm_ex1"])
    n = len(counts)
    true = np.repeat(np.repeat(np.arange(n), n), counts.flatten())
    pred = np.repeat(np.tile(np.arange(n), n), counts.flatten())
    expected = np.array(
        [f(true, pred, labels=[1], average=None)[0] for f in (precision_score, recall_score)]
    )
    f1 = f1_score(true, pred, labels=[1], average=None)[0]
    if close(values, [expected[1], expected[0], f1], atol=1e-3) and not close(
        expected[0], expected[1], atol=1e-3
    ):
        return "precision and recall are swapped: precision uses column b, recall row b"
    if values.max() > 1:
        return "give fractions between 0 and 1, not percentages"
    if not close(values[:2], expected, atol=1e-3):
        return "precision uses column b (everything predicted b), recall uses row b"
    if close(values[2], expected.mean(), atol=1e-3):
        return "F1 is the harmonic mean of precision and recall, not their plain mean"
    if not close(values[2], f1, atol=1e-3):
        return "F1 = 2 · precision · recall / (precision + recall)"
    return None


# ------------------------------------------------------------------- 7.2 top-3 accuracy by hand


def _top3(context, top3):
    if not _one_number(top3):
        return "give one number: the fraction of images counted as right"
    logits, targets = context["logits_ex2"], context["targets_ex2"]
    scores = topk_accuracy(logits, targets, ks=(1, 3))
    value = float(as_array(top3).reshape(()))
    if close(value, scores[3]):
        return None
    if close(value, scores[3] * len(targets)):
        return "that is a count of images: divide by the number of images"
    if close(value, 100 * scores[3]):
        return "give a fraction between 0 and 1, not a percentage"
    if close(value, scores[1]):
        return "that is top-1: count an image when its label is among its 3 largest scores"
    return "an image counts when its label is among the indices of its 3 largest scores"


# --------------------------------------------------- 7.3 a threshold for a recall of at least 0.9


def _recall(score: np.ndarray, is_pos: np.ndarray, threshold: float) -> float:
    return np.count_nonzero(score[is_pos] >= threshold) / np.count_nonzero(is_pos)


def _screening_threshold(context, screening_threshold):
    if not _one_number(screening_threshold):
        return "give one number: the threshold"
    score = np.asarray(context["val_score"], dtype=np.float64)
    is_pos = np.asarray(context["val_is_pos"], dtype=bool)
    # the highest threshold that keeps the validation recall at 0.9: a positive's score
    candidates = np.sort(np.unique(score[is_pos]))[::-1]
    highest = next(t for t in candidates if _recall(score, is_pos, t) >= 0.9)
    threshold = float(as_array(screening_threshold).reshape(()))
    if np.array_equal(score >= threshold, score >= highest):
        return None
    if _recall(score, is_pos, threshold) < 0.9:
        return "at this threshold the validation recall is below 0.9: lower it"
    return "the recall is at least 0.9, but a higher threshold still gives that: raise it"


# ----------------------------------------------------------------------- 7.4 ECE by hand


def _binned_ece(confidence: np.ndarray, correct: np.ndarray, weighted: bool = True) -> float:
    """ECE over 5 equal-width bins (an edge belongs to the lower bin), or, unweighted, the
    plain mean of the filled bins' gaps: for recognising the usual mistakes."""
    bins = np.searchsorted(np.linspace(0, 1, 6)[1:-1], confidence)
    gaps, shares = [], []
    for b in np.unique(bins):
        members = bins == b
        gaps.append(abs(correct[members].mean() - confidence[members].mean()))
        shares.append(members.mean())
    return float(np.dot(shares, gaps) if weighted else np.mean(gaps))


def _ece_ex4(context, ece_ex4):
    if not _one_number(ece_ex4):
        return "give one number: the expected calibration error"
    probs = torch.as_tensor(context["probs_ex4"]).double()
    targets = torch.as_tensor(context["targets_ex4"])
    value = float(as_array(ece_ex4).reshape(()))
    if close(value, expected_calibration_error(probs, targets, n_bins=5)):
        return None
    top = probs.max(dim=1).values.numpy()
    true_class = probs[torch.arange(len(targets)), targets].numpy()
    correct = (probs.argmax(dim=1) == targets).double().numpy()
    if close(value, _binned_ece(top, correct, weighted=False)):
        return "weight each bin's gap by its share of the six predictions"
    if close(value, _binned_ece(true_class, correct)):
        return "a prediction's confidence is its largest probability, whatever the true class"
    return (
        "list each prediction's confidence (its largest probability) and whether it is "
        "correct, bin the confidences, then sum (share of predictions) × |accuracy − confidence|"
    )


# ------------------------------------------------- 7.5 temperature scaling, fitted by hand

N_BINS = 15
_NLL_TOLERANCE = 1e-4  # a grid of 1% steps in T is well inside it; five guesses are not


def _made_up_logits(temperature: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose labels are drawn from ``softmax(logits / temperature)``: data on which
    the best temperature is known to be near ``temperature``."""
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(600, 6, generator=generator)
    targets = torch.multinomial((logits / temperature).softmax(dim=1), 1, generator=generator)
    return logits, targets.squeeze(1)


def _nll(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> float:
    return F.cross_entropy(logits.float() / temperature, targets).item()


_best: dict[str, tuple[float, float]] = {}


def _best_temperature(logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """The temperature with the lowest NLL, and that NLL: the better of metrics.fit_temperature
    and a log grid of 801 temperatures from 0.01 to 100 (L-BFGS can stop at its start, T = 1,
    when the loss is nearly flat, as for a network trained on one batch). Remembered: every
    check of an answer needs the same four."""
    key = hashlib.sha256(logits.cpu().numpy().tobytes() + targets.cpu().numpy().tobytes())
    if key.hexdigest() not in _best:
        candidates = [fit_temperature(logits, targets), *torch.logspace(-2, 2, 801).tolist()]
        _best[key.hexdigest()] = min((_nll(logits, targets, t), t) for t in candidates)[::-1]
    return _best[key.hexdigest()]


def _test_ece(test_pred, temperature: float) -> float:
    probs = (test_pred.logits / temperature).softmax(dim=1)
    return expected_calibration_error(probs, test_pred.targets, N_BINS)


def _temperature_by_hand(context, fit_t, ece_t_val, ece_t_train):
    if not callable(fit_t):
        return "fit_t must be a function: fit_t(logits, targets) returns a temperature"
    for name, value in [("ece_t_val", ece_t_val), ("ece_t_train", ece_t_train)]:
        if not _one_number(value):
            return f"{name}: give one number, an ECE"
    val_pred, train_pred, test_pred = (context[n] for n in ("val_pred", "train_pred", "test_pred"))
    fitted = {}
    for name, logits, targets in [
        ("the validation logits", val_pred.logits, val_pred.targets),
        ("the training logits", train_pred.logits, train_pred.targets),
        ("made-up logits of an overconfident model", *_made_up_logits(3.0, 0)),
        ("made-up logits of an underconfident model", *_made_up_logits(0.4, 1)),
    ]:
        got = fit_t(logits.clone(), targets.clone())
        if not _one_number(got):
            return "fit_t must return one number, the temperature"
        got = float(as_array(got).reshape(()))
        want, lowest = _best_temperature(logits, targets)
        if not got > 0 or _nll(logits, targets, got) > lowest + _NLL_TOLERANCE:
            if abs(got * want - 1) <= 0.01:
                return "fit_t: divide the logits by T (softmax(logits / T)), do not multiply"
            return (
                f"fit_t on {name} does not give the temperature that minimises "
                "F.cross_entropy(logits / T, targets): search T on a log scale from 0.05 "
                "to 20, finely enough (or with an optimiser)"
            )
        fitted[name] = got
    t_val, t_train = fitted["the validation logits"], fitted["the training logits"]
    want_val, want_train = _test_ece(test_pred, t_val), _test_ece(test_pred, t_train)
    got_val, got_train = float(as_array(ece_t_val)), float(as_array(ece_t_train))
    if close(got_val, want_val, 5e-4) and close(got_train, want_train, 5e-4):
        return None  # first: when both temperatures give the same ECE, swapping is no mistake
    if close(got_val, want_train, 5e-4) and close(got_train, want_val, 5e-4):
        return "the two ECEs are swapped: ece_t_val uses the temperature fitted on validation"
    for name, got, want, t in [
        ("ece_t_val", got_val, want_val, t_val),
        ("ece_t_train", got_train, want_train, t_train),
    ]:
        if close(got, want, 5e-4):
            continue
        if close(got, _test_ece(test_pred, 1.0), 5e-4):
            return f"{name}: that is the ECE before scaling: divide the test logits by T"
        if close(got, _test_ece(val_pred, t), 5e-4):
            return f"{name}: measure on the test predictions, not the validation ones"
        return (
            f"{name}: the ECE with {N_BINS} bins of softmax(test logits / T), with T from "
            "your fit_t"
        )
    return None


EXERCISES = [
    Exercise(
        "7.1",
        "precision, recall and F1 from a confusion matrix",
        2,
        ("prf_b",),
        _prf_b,
        "the three numbers equal scikit-learn's precision, recall and F1 of class b on the "
        "matrix's labels, within 1e-3; scikit-learn's scores may not be called",
        context=("cm_ex1",),
        forbidden=(
            "precision_score",
            "recall_score",
            "f1_score",
            "fbeta_score",
            "precision_recall_fscore_support",
            "classification_report",
        ),
    ),
    Exercise(
        "7.2",
        "top-3 accuracy by hand",
        2,
        ("top3",),
        _top3,
        "the number equals metrics.topk_accuracy(...)[3] on the exercise's scores; "
        "topk_accuracy and top_k_accuracy_score may not be called",
        context=("logits_ex2", "targets_ex2"),
        forbidden=("topk_accuracy", "top_k_accuracy_score"),
    ),
    Exercise(
        "7.3",
        "a threshold for a recall of at least 0.9",
        2,
        ("screening_threshold",),
        _screening_threshold,
        "on the validation scores the threshold makes the same decisions as the highest "
        "threshold with a recall of at least 0.9, which the check finds itself",
        context=("val_score", "val_is_pos"),
    ),
    Exercise(
        "7.4",
        "ECE of a tiny example",
        2,
        ("ece_ex4",),
        _ece_ex4,
        "the number equals metrics.expected_calibration_error with 5 bins within 1e-4; the "
        "calibration helpers may not be called",
        context=("probs_ex4", "targets_ex4"),
        forbidden=("expected_calibration_error", "calibration_bins", "calibration_curve"),
    ),
    Exercise(
        "7.5",
        "temperature scaling, fitted by hand",
        3,
        ("fit_t", "ece_t_val", "ece_t_train"),
        _temperature_by_hand,
        "fit_t's T has the lowest NLL (within 1e-4 of the best of fit_temperature and a fine "
        "grid) on the validation and training "
        "logits and on two made-up sets; both test ECEs (15 bins) equal the check's own "
        "with the temperatures fit_t gives; fit_temperature may not be called",
        context=("val_pred", "train_pred", "test_pred"),
        forbidden=("fit_temperature",),
    ),
]
