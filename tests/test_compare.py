"""Tests of the comparison helpers: scores against hand computations, timers, the table."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from imgcls_helpers import compare, metrics


def test_score_matches_a_hand_computation():
    targets = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 2, 0]
    # per class: precision 1/2, 2/3, 1; recall 1/2, 1, 1/2 -> F1 1/2, 4/5, 2/3
    acc, f1 = metrics.score(preds, targets)
    assert acc == pytest.approx(4 / 6)
    assert f1 == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)


def test_score_accepts_logits_as_tensors():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    acc, f1 = metrics.score(logits, torch.tensor([0, 1, 1]))
    assert acc == pytest.approx(2 / 3)
    assert 0 < f1 < 1


def test_stopwatch_and_seconds_per_item_measure_wall_clock():
    with compare.Stopwatch() as clock:
        time.sleep(0.05)
    assert 0.04 < clock.seconds < 1.0
    calls = []
    per_item = compare.seconds_per_item(lambda: (calls.append(1), time.sleep(0.02)), 10)
    assert len(calls) == 2  # one warm-up run, then the timed one
    assert 0.0015 < per_item < 0.1


def test_markdown_table_has_a_row_per_result_and_marks_partial_training():
    results = [
        compare.Result("a", 0.5, 0.4, 2.0, 1e-3, 100, 100, "1 epoch"),
        compare.Result("b", 0.9, 0.8, 1.0, 2e-3, 1000, 10, "2 epochs", pretrain_seconds=3.0),
    ]
    table = compare.markdown_table(results).splitlines()
    assert len(table) == 2 + len(results)
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert "| 1,000 (10) |" in table[3] and "| 100 |" in table[2]
    assert results[1].accuracy_per_second == pytest.approx(0.9)
    assert np.argmax([r.accuracy_per_second for r in results]) == 1
