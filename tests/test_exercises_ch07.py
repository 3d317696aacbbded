"""Chapter 7's exercises: the solution passes, plausible wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_cases import Case, assert_case

from imgcls_helpers import labs, metrics


def _predictions(n: int, temperature: float, seed: int) -> metrics.Predictions:
    """Logits whose labels are drawn from softmax(logits / temperature): a model that is
    overconfident (temperature > 1) or underconfident (< 1) on this set."""
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, 8, generator=generator)
    targets = torch.multinomial((logits / temperature).softmax(dim=1), 1, generator=generator)
    return metrics.Predictions(logits, targets.squeeze(1))


@pytest.fixture(scope="module")
def context():
    rng = np.random.default_rng(0)
    is_pos = np.zeros(200, dtype=bool)
    is_pos[rng.choice(200, 30, replace=False)] = True
    score = np.where(is_pos, rng.beta(4, 2, 200), rng.beta(2, 4, 200))
    g = torch.Generator().manual_seed(7)
    logits_ex2 = torch.randn(12, 6, generator=g)
    return {
        "cm_ex1": np.array([[8, 2, 0], [3, 6, 1], [1, 4, 5]]),
        "logits_ex2": logits_ex2,
        "targets_ex2": torch.randint(0, 6, (12,), generator=g),
        "val_score": score,
        "val_is_pos": is_pos,
        "probs_ex4": torch.tensor(
            [
                [0.90, 0.05, 0.05],
                [0.70, 0.20, 0.10],
                [0.10, 0.85, 0.05],
                [0.30, 0.32, 0.38],
                [0.20, 0.70, 0.10],
                [0.27, 0.35, 0.38],
            ]
        ),
        "targets_ex4": torch.tensor([0, 1, 1, 2, 1, 0]),
        "val_pred": _predictions(300, 3.0, 1),
        "train_pred": _predictions(400, 0.7, 2),
        "test_pred": _predictions(300, 3.0, 3),
    }


def fit_t(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The solution's fit: the best of 50 temperatures on a log scale from 0.05 to 20, then
    the best of 50 between that one's neighbours."""

    def best(grid: torch.Tensor) -> int:
        return int(torch.stack([F.cross_entropy(logits / t, targets) for t in grid]).argmin())

    coarse = torch.logspace(np.log10(0.05), np.log10(20), 50)
    i = best(coarse)
    fine = torch.linspace(coarse[max(i - 1, 0)], coarse[min(i + 1, 49)], 50)
    return fine[best(fine)].item()


def _coarse_fit_t(logits, targets):
    grid = torch.tensor([0.5, 1.0, 2.0, 5.0, 10.0])
    nll = torch.stack([F.cross_entropy(logits / t, targets) for t in grid])
    return grid[nll.argmin()].item()


def _ece(pred: metrics.Predictions, temperature: float) -> float:
    probs = (pred.logits / temperature).softmax(dim=1)
    return metrics.expected_calibration_error(probs, pred.targets, 15)


def cases(context):
    cm = context["cm_ex1"]
    precision, recall = cm[1, 1] / cm[:, 1].sum(), cm[1, 1] / cm[1].sum()
    f1 = 2 * precision * recall / (precision + recall)

    logits, targets = context["logits_ex2"], context["targets_ex2"]
    hits = (logits.topk(3, dim=1).indices == targets[:, None]).any(dim=1)
    top1 = (logits.argmax(dim=1) == targets).float().mean().item()
    assert not np.isclose(top1, hits.float().mean().item())

    score, is_pos = context["val_score"], context["val_is_pos"]
    positives = np.sort(score[is_pos])[::-1]
    k = next(k for k in range(1, len(positives) + 1) if k / len(positives) >= 0.9)
    highest = float(positives[k - 1])

    probs = context["probs_ex4"]
    ece = (abs(0.5 - 0.38) + abs(0.5 - 0.70) + abs(1.0 - 0.875)) / 3

    val_pred, train_pred, test_pred = (context[n] for n in ("val_pred", "train_pred", "test_pred"))
    t_val = fit_t(val_pred.logits, val_pred.targets)
    t_train = fit_t(train_pred.logits, train_pred.targets)
    ece_val, ece_train = _ece(test_pred, t_val), _ece(test_pred, t_train)
    assert t_train < 1 < t_val
    return {
        "7.1": Case(
            ([precision, recall, f1],),
            {
                "precision and recall swapped": ([recall, precision, f1],),
                "F1 as the plain mean": ([precision, recall, (precision + recall) / 2],),
                "percentages": ([100 * precision, 100 * recall, 100 * f1],),
                "class a's scores": ([8 / 12, 8 / 10, 2 * (8 / 12 * 0.8) / (8 / 12 + 0.8)],),
                "two numbers": ([precision, recall],),
                "zeros": ([0.0, 0.0, 0.0],),
            },
            forbidden="prf_b = [precision_score(true, pred, labels=[1], average=None)[0], 0, 0]",
        ),
        "7.2": Case(
            (hits.float().mean().item(),),
            {
                "a count": (float(hits.sum()),),
                "top-1": (top1,),
                "a percentage": (100 * hits.float().mean().item(),),
                "zero": (0.0,),
                "text": ("0.25",),
            },
            forbidden="top3 = top_k_accuracy_score(targets_ex2, logits_ex2, k=3)",
        ),
        "7.3": Case(
            (highest,),
            {
                "the minimum score": (float(score.min()),),
                "the maximum score": (float(score.max()),),
                "one positive too high": (float(positives[k - 2]),),
                "one positive too low": (float(positives[k]),),
                "0.5": (0.5,),
                "a boolean": (True,),
            },
        ),
        "7.4": Case(
            (ece,),
            {
                "signed gaps": ((0.12 - 0.20 + 0.125) / 3,),
                "no bins: mean |correct - confidence|": (
                    (0.1 + 0.7 + 0.15 + 0.62 + 0.3 + 0.38) / 6,
                ),
                "zero": (0.0,),
                "the mean confidence": (probs.max(dim=1).values.mean().item(),),
                "text": ("0.148",),
            },
            forbidden="ece_ex4 = metrics.expected_calibration_error(probs_ex4, targets_ex4, 5)",
        ),
        "7.5": Case(
            (fit_t, ece_val, ece_train),
            {
                "ECEs swapped": (fit_t, ece_train, ece_val),
                "ECE before scaling": (fit_t, _ece(test_pred, 1.0), ece_train),
                "ECE on the validation set": (fit_t, _ece(val_pred, t_val), ece_train),
                "a constant temperature": (lambda logits, targets: 1.0, ece_val, ece_train),
                "multiplied by T": (lambda lg, tg: 1 / fit_t(lg, tg), ece_val, ece_train),
                "a coarse grid": (_coarse_fit_t, ece_val, ece_train),
                "not a function": (t_val, ece_val, ece_train),
            },
            forbidden="def fit_t(logits, targets):\n"
            "    return metrics.fit_temperature(logits, targets)",
        ),
    }


@pytest.fixture(scope="module")
def all_cases(context):
    return cases(context)


@pytest.mark.parametrize("exercise_id", ["7.1", "7.2", "7.3", "7.4", "7.5"])
def test_exercise(context, all_cases, exercise_id):
    assert_case(exercise_id, all_cases[exercise_id], context)


def test_specific_hints(context, all_cases):
    """The common mistakes get their own hint."""

    def hint(exercise_id, name):
        exercise = labs.exercise(exercise_id)
        values = all_cases[exercise_id].wrong[name]
        return labs.verdict(exercise, dict(zip(exercise.answers, values, strict=True)), context)

    assert "swapped" in hint("7.1", "precision and recall swapped").message
    assert "harmonic" in hint("7.1", "F1 as the plain mean").message
    assert "count" in hint("7.2", "a count").message
    assert "top-1" in hint("7.2", "top-1").message
    assert "below 0.9" in hint("7.3", "the maximum score").message
    assert "raise it" in hint("7.3", "the minimum score").message
    assert "swapped" in hint("7.5", "ECEs swapped").message
    assert "before scaling" in hint("7.5", "ECE before scaling").message
    assert "not multiply" in hint("7.5", "multiplied by T").message


def test_ece_hints(context):
    """The unweighted mean of the bins' gaps, and the true class's probability as the
    confidence, get their own hints (on data where they differ from the ECE)."""
    exercise = labs.exercise("7.4")
    # confidences 0.9 (right) and 0.85 (wrong) in (0.8, 1], 0.55 (wrong) in (0.4, 0.6]
    probs = torch.tensor([[0.9, 0.1], [0.85, 0.15], [0.55, 0.45]])
    uneven = dict(context, probs_ex4=probs, targets_ex4=torch.tensor([0, 1, 1]))
    right = 2 / 3 * abs(0.5 - 0.875) + 1 / 3 * 0.55
    assert labs.verdict(exercise, {"ece_ex4": right}, uneven).status == "correct"
    unweighted = (abs(0.5 - 0.875) + 0.55) / 2
    message = labs.verdict(exercise, {"ece_ex4": unweighted}, uneven).message
    assert "share" in message
    # the second prediction is wrong: its true class has 0.45, in the same bin as 0.55
    probs = torch.tensor([[0.9, 0.1], [0.55, 0.45], [0.7, 0.3]])
    other = dict(context, probs_ex4=probs, targets_ex4=torch.tensor([0, 1, 0]))
    right = (abs(1 - 0.9) + abs(0 - 0.55) + abs(1 - 0.7)) / 3
    assert labs.verdict(exercise, {"ece_ex4": right}, other).status == "correct"
    true_class = (abs(1 - 0.9) + abs(0 - 0.45) + abs(1 - 0.7)) / 3
    message = labs.verdict(exercise, {"ece_ex4": true_class}, other).message
    assert "largest probability" in message


def test_a_nearly_flat_loss_still_accepts_the_best_temperature():
    """A network trained on one batch (a fast dev run) gives nearly equal logits: L-BFGS in
    fit_temperature stops where it starts, T = 1, though another T has a lower loss. A
    search that finds that lower loss must pass."""
    generator = torch.Generator().manual_seed(3)
    logits = 0.02 * torch.randn(400, 10, generator=generator)
    targets = torch.randint(0, 10, (400,), generator=generator)
    flat = metrics.Predictions(logits, targets)
    assert metrics.fit_temperature(logits, targets) == pytest.approx(1.0, abs=1e-3)
    assert F.cross_entropy(logits / fit_t(logits, targets), targets) < F.cross_entropy(
        logits, targets
    )
    context = {"val_pred": flat, "train_pred": flat, "test_pred": flat}
    answers = {
        "fit_t": fit_t,
        "ece_t_val": _ece(flat, fit_t(logits, targets)),
        "ece_t_train": _ece(flat, fit_t(logits, targets)),
    }
    verdict = labs.verdict(labs.exercise("7.5"), answers, context)
    assert verdict.status == "correct", verdict.message
