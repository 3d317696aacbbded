"""Tests for imgcls_helpers.metrics, against scikit-learn and hand-computed values."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import accuracy_score, top_k_accuracy_score
from torch import nn

from imgcls_helpers.metrics import Predictions, accuracy, predict, topk_accuracy


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
