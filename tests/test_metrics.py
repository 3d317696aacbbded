"""Tests for imgcls_helpers.metrics, against scikit-learn and hand-computed values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    precision_score,
    recall_score,
    roc_auc_score,
    top_k_accuracy_score,
)
from sklearn.metrics import classification_report as sk_classification_report
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from torch import nn

from imgcls_helpers.metrics import (
    Predictions,
    accuracy,
    calibration_bins,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    predict,
    roc_auc,
    topk_accuracy,
)


def random_scores(n=200, c=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_of_logits_and_labels_matches_sklearn(seed):
    logits, targets = random_scores(seed=seed)
    # make it better than chance so the number is not trivially ~0.1
    logits[torch.arange(0, 200, 3), targets[::3]] += 5
    expected = accuracy_score(targets.numpy(), logits.argmax(1).numpy())
    assert accuracy(logits, targets) == pytest.approx(expected)
    assert accuracy(logits.argmax(1), targets) == pytest.approx(expected)
    assert isinstance(accuracy(logits, targets), float)


def test_accuracy_hand_computed():
    preds, targets = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])
    assert accuracy(preds, targets) == pytest.approx(0.75)
    logits = torch.tensor([[0.1, 0.9], [2.0, -1.0], [0.0, 3.0]])
    assert accuracy(logits, torch.tensor([1, 1, 1])) == pytest.approx(2 / 3)


def test_accuracy_length_mismatch():
    with pytest.raises(ValueError, match="3 predictions but 4 targets"):
        accuracy(torch.zeros(3), torch.zeros(4))


@pytest.mark.parametrize("ks", [(1,), (1, 5), (2, 3, 7), (9,)])
@pytest.mark.parametrize("seed", [0, 1])
def test_topk_accuracy_matches_sklearn(ks, seed):
    logits, targets = random_scores(n=300, c=10, seed=seed)
    result = topk_accuracy(logits, targets, ks)
    assert sorted(result) == sorted(ks)
    for k in ks:
        expected = top_k_accuracy_score(
            targets.numpy(), logits.numpy(), k=k, labels=list(range(10))
        )
        assert result[k] == pytest.approx(expected), k
    if len(ks) > 1:
        values = [result[k] for k in sorted(ks)]
        assert values == sorted(values)  # top-k accuracy never drops as k grows


def test_topk_accuracy_hand_computed():
    logits = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    targets = torch.tensor([1, 2, 2])  # ranks 2, 1 and 3
    assert topk_accuracy(logits, targets, (1, 2, 3)) == pytest.approx({1: 1 / 3, 2: 2 / 3, 3: 1})


@pytest.mark.parametrize("ks", [(11,), (1, 5, 12)])
def test_topk_more_than_classes_raises(ks):
    logits, targets = random_scores(n=5, c=10)
    with pytest.raises(ValueError, match=f"k={max(ks)}"):
        topk_accuracy(logits, targets, ks)


class Noisy(nn.Module):
    """Linear layer followed by dropout, so train and eval mode give different outputs."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.linear(x))


def batches(n=10, batch_size=4):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n, batch_size)], x, y


@pytest.mark.parametrize("training", [True, False])
def test_predict_collects_in_order_in_eval_mode_and_restores_mode(training):
    model = Noisy()
    model.train(training)
    loader, x, y = batches()
    result = predict(model, loader)
    assert model.training is training
    assert isinstance(result, Predictions)
    expected = model.linear(x).detach()  # eval mode: dropout is the identity
    torch.testing.assert_close(result.logits, expected)
    assert torch.equal(result.targets, y) and result.targets.dtype == torch.long
    assert not result.logits.requires_grad


def test_predict_probs_and_preds():
    loader, x, y = batches(n=9, batch_size=2)
    result = predict(Noisy(), loader, device="cpu")
    assert result.probs.shape == (9, 3)
    torch.testing.assert_close(result.probs.sum(dim=1), torch.ones(9))
    assert (result.probs >= 0).all()
    torch.testing.assert_close(result.probs, torch.softmax(result.logits, dim=1))
    assert torch.equal(result.preds, result.probs.argmax(dim=1))


def test_predict_accepts_list_targets_and_half_logits():
    class Half(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.eye(2))

        def forward(self, x):
            return (x @ self.w).half()

    loader = [(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), [0, 1]), (torch.tensor([[3.0, 1.0]]), [1])]
    result = predict(Half(), loader)
    assert result.logits.dtype == torch.float32
    assert result.targets.tolist() == [0, 1, 1]
    assert result.preds.tolist() == [0, 1, 0]


# --- confusion matrix, classification report, ROC AUC: against scikit-learn ------------------


def random_predictions(n=300, c=6, seed=0, skill=2.0):
    """Logits that are better than chance (the true class gets a bonus) and their targets."""
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, c, (n,), generator=g)
    logits = torch.randn(n, c, generator=g)
    logits[torch.arange(n), targets] += skill * torch.rand(n, generator=g)
    return Predictions(logits, targets)


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
@pytest.mark.parametrize("seed", [0, 1])
def test_confusion_matrix_matches_sklearn(normalize, seed):
    p = random_predictions(seed=seed)
    expected = sk_confusion_matrix(p.targets.numpy(), p.preds.numpy(), normalize=normalize)
    np.testing.assert_allclose(confusion_matrix(p.targets, p.preds, normalize=normalize), expected)


def test_confusion_matrix_diagonals_are_recall_and_precision():
    p = random_predictions(seed=3)
    y, yhat = p.targets.numpy(), p.preds.numpy()
    rows = confusion_matrix(y, yhat, normalize="true")
    cols = confusion_matrix(y, yhat, normalize="pred")
    np.testing.assert_allclose(np.diag(rows), recall_score(y, yhat, average=None))
    np.testing.assert_allclose(np.diag(cols), precision_score(y, yhat, average=None))


def test_confusion_matrix_hand_computed_and_padded_to_num_classes():
    targets, preds = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2]
    counts = confusion_matrix(targets, preds, num_classes=4)  # class 3 never occurs
    expected = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(counts, expected)
    assert confusion_matrix(targets, preds).shape == (3, 3)


def test_classification_report_is_sklearns_with_names_and_no_warning_for_unused_class():
    classes = ["cat", "dog", "fox", "owl"]
    p = Predictions(torch.eye(4)[[0, 1, 1, 0, 1, 0]] * 3, torch.tensor([0, 1, 2, 0, 3, 1]))
    assert set(p.preds.tolist()) == {0, 1}  # fox and owl are never predicted
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn warns on undefined precision unless told
        report = classification_report(p, classes, digits=2)
    expected = sk_classification_report(
        p.targets.numpy(), p.preds.numpy(), target_names=classes, digits=2, zero_division=0
    )
    assert report == expected
    owl = next(line for line in report.splitlines() if line.strip().startswith("owl"))
    assert owl.split()[1:4] == ["0.00", "0.00", "0.00"]


def test_roc_auc_binary_matches_sklearn_and_pair_counting():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 2, (400,), generator=g)
    scores = torch.randn(400, generator=g) + targets  # positives score higher on average
    expected = roc_auc_score(targets.numpy(), scores.numpy())
    assert roc_auc(scores, targets) == pytest.approx(expected)
    # AUC is a ranking measure: a monotone transform of the scores does not change it
    assert roc_auc(torch.sigmoid(scores), targets) == pytest.approx(expected)
    # and it is the chance that a random positive outscores a random negative
    pos, neg = scores[targets == 1], scores[targets == 0]
    pairs = (pos.view(-1, 1) > neg.view(1, -1)).float().mean().item()
    assert roc_auc(scores, targets) == pytest.approx(pairs)


@pytest.mark.parametrize("seed", [0, 1])
def test_roc_auc_multiclass_is_macro_one_vs_rest(seed):
    p = random_predictions(seed=seed)
    probs, y = p.probs.numpy(), p.targets.numpy()
    expected = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert roc_auc(p.probs, p.targets) == pytest.approx(expected)
    by_hand = np.mean([roc_auc_score(y == k, probs[:, k]) for k in range(probs.shape[1])])
    assert roc_auc(p.probs, p.targets) == pytest.approx(by_hand)


# --- calibration ----------------------------------------------------------------------------


@pytest.mark.parametrize("n_bins", [5, 10, 15])
@pytest.mark.parametrize("seed", [0, 1])
def test_calibration_bins_match_sklearn_calibration_curve(n_bins, seed):
    p = random_predictions(n=500, seed=seed)
    bins = calibration_bins(p.probs, p.targets, n_bins)
    confidence = p.probs.max(dim=1).values.numpy()
    correct = (p.preds == p.targets).numpy()
    prob_true, prob_pred = calibration_curve(correct, confidence, n_bins=n_bins)
    filled = bins.count > 0
    np.testing.assert_allclose(bins.accuracy[filled], prob_true)
    np.testing.assert_allclose(bins.confidence[filled], prob_pred)
    assert np.isnan(bins.accuracy[~filled]).all()
    assert bins.count.sum() == 500 and len(bins.edges) == n_bins + 1


def test_calibration_bins_put_an_edge_value_in_the_lower_bin():
    probs = torch.tensor([[0.5, 0.5], [0.6, 0.4], [0.9, 0.1], [0.0, 1.0]])
    bins = calibration_bins(probs, torch.tensor([0, 1, 0, 1]), n_bins=2)
    np.testing.assert_array_equal(bins.count, [1, 3])  # 0.5 is in (0, 0.5]; the rest above


def test_expected_calibration_error_hand_computed():
    # confidences 0.9, 0.9, 0.6, 0.6, 0.6 with correctness 1, 0, 1, 1, 0; two bins
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.6, 0.4]])
    targets = torch.tensor([0, 1, 1, 0, 1])
    # bin (0.5, 1] holds all five: accuracy 3/5, confidence 3.6/5 -> gap 0.12
    assert expected_calibration_error(probs, targets, n_bins=2) == pytest.approx(0.12)
    # with 10 bins: (0.5, 0.6] holds 3 (acc 2/3, conf 0.6), (0.8, 0.9] holds 2 (acc 1/2, conf 0.9)
    expected = 3 / 5 * abs(2 / 3 - 0.6) + 2 / 5 * abs(0.5 - 0.9)
    assert expected_calibration_error(probs, targets, n_bins=10) == pytest.approx(expected)


def test_expected_calibration_error_zero_when_confidence_matches_accuracy():
    # 10 predictions at confidence 0.8, 8 of them right: calibrated, so ECE is 0
    probs = torch.tensor([[0.8, 0.2]] * 10)
    targets = torch.tensor([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, targets) == pytest.approx(
        0.0, abs=1e-6
    )  # 0.8 in float32
    assert expected_calibration_error(probs, torch.zeros(10, dtype=torch.long)) == pytest.approx(
        0.2
    )


def sample_labels(logits: torch.Tensor, temperature: float, seed: int = 0) -> torch.Tensor:
    """Labels drawn from softmax(logits / temperature): the logits are calibrated at that T."""
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial((logits / temperature).softmax(dim=1), 1, generator=g).squeeze(1)


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.0])
def test_fit_temperature_recovers_the_temperature_of_synthetic_data(true_t):
    logits = 3 * torch.randn(20_000, 5, generator=torch.Generator().manual_seed(1))
    targets = sample_labels(logits, true_t)
    assert fit_temperature(logits, targets) == pytest.approx(true_t, rel=0.05)


def test_fit_temperature_minimises_nll_and_keeps_predictions():
    p = random_predictions(n=400, seed=2, skill=6.0)
    t = fit_temperature(p.logits, p.targets)

    def nll(temp: float) -> float:
        return nn.functional.cross_entropy(p.logits / temp, p.targets).item()

    assert nll(t) < nll(1.0)
    best = minimize_scalar(nll, bounds=(0.05, 20), method="bounded", options={"xatol": 1e-6})
    assert t == pytest.approx(best.x, rel=1e-3)  # the same minimum as SciPy's 1-D search
    assert torch.equal((p.logits / t).argmax(dim=1), p.preds)  # the predicted class is unchanged
