"""Tests of the comparison helpers: scores against hand computations, timers on a fake
clock (no wall-clock assertions), noise, summaries and the table."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

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
    # predictions 0, 1, 0 against 0, 1, 1: class 0 P 1/2 R 1 -> F1 2/3; class 1 P 1 R 1/2
    # -> F1 2/3; macro-F1 2/3
    assert acc == pytest.approx(2 / 3)
    assert f1 == pytest.approx(2 / 3)


class FakeClock:
    """A clock that only moves when the fake ``predict`` says it took some time."""

    def __init__(self, durations):
        self.now, self.durations, self.calls = 0.0, list(durations), 0

    def __call__(self) -> float:
        return self.now

    def predict(self) -> None:
        self.now += self.durations[self.calls]
        self.calls += 1


def test_stopwatch_reads_its_clock_at_both_ends():
    clock = FakeClock([2.5])
    with compare.Stopwatch(timer=clock) as watch:
        clock.predict()
    assert watch.seconds == 2.5


def test_seconds_per_item_is_the_median_of_the_timed_runs_after_warmup(monkeypatch):
    monkeypatch.delenv("IMGCLS_FAST_DEV_RUN", raising=False)
    # 10 slow warm-up calls, then 30 timed ones: 29 take 1 s, one is an outlier of 100 s
    clock = FakeClock([50.0] * 10 + [1.0] * 14 + [100.0] + [1.0] * 15)
    per_item = compare.seconds_per_item(clock.predict, 4, warmup=10, runs=30, timer=clock)
    assert clock.calls == 40
    # the warm-ups and the outlier do not count: 1 s per call, 4 items per call
    assert per_item == 0.25


def test_seconds_per_item_defaults_follow_timm_benchmark(monkeypatch):
    monkeypatch.delenv("IMGCLS_FAST_DEV_RUN", raising=False)
    clock = FakeClock([1.0] * 100)
    compare.seconds_per_item(clock.predict, 1, timer=clock)
    assert clock.calls == 10 + 40
    with pytest.raises(ValueError, match="runs"):
        compare.seconds_per_item(clock.predict, 1, runs=0, timer=clock)


def test_seconds_per_item_honours_fast_dev_run(monkeypatch):
    monkeypatch.setenv("IMGCLS_FAST_DEV_RUN", "1")
    clock = FakeClock([1.0] * 100)
    assert compare.seconds_per_item(clock.predict, 2, timer=clock) == 0.5
    # one warm-up call and one timed call, whatever was asked for
    assert clock.calls == 2


def test_mean_sd_uses_the_sample_standard_deviation():
    assert compare.mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert compare.mean_sd([0.5]) == (0.5, 0.0)


def test_difference_agrees_with_scipy_welch_test():
    a, b = [0.40, 0.42, 0.47], [0.30, 0.36, 0.31]
    result = compare.difference(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False)
    assert result.diff == pytest.approx(1.29 / 3 - 0.97 / 3)
    assert result.p_value == pytest.approx(welch.pvalue)
    assert result.within_noise == (welch.pvalue >= 0.05)


def test_difference_within_and_beyond_noise():
    # 0.01 apart with seeds that spread by 0.05: noise
    assert compare.difference([0.50, 0.55, 0.45], [0.49, 0.54, 0.44]).within_noise
    # 0.2 apart with a spread of 0.01: beyond noise
    assert not compare.difference([0.70, 0.71, 0.69], [0.50, 0.51, 0.49]).within_noise


def test_difference_with_a_deterministic_side():
    # one deterministic run (no spread) against three seeds: only the seeds' spread counts
    result = compare.difference([0.6], [0.40, 0.45, 0.50])
    assert result.se == pytest.approx(0.05 / 3**0.5)
    assert not result.within_noise
    # two deterministic approaches: equal or not, there is no noise to hide in
    assert compare.difference([0.5], [0.5]).within_noise
    assert not compare.difference([0.5], [0.49]).within_noise


def _run(name, accuracy, seed, **changes):
    fields = {
        "name": name,
        "accuracy": accuracy,
        "macro_f1": accuracy - 0.1,
        "train_seconds": 2.0,
        "parameters": 100,
        "trainable": 100,
        "budget": "1 epoch",
        "seed": seed,
    }
    return compare.Result(**{**fields, **changes})


def test_summarize_groups_runs_by_name_in_order():
    results = [
        _run("net", 0.4, 0, infer_seconds_per_image=1e-3, train_seconds=1.0),
        _run("svm", 0.6, None, pretrain_seconds=None),
        _run("net", 0.5, 1, train_seconds=3.0),
        _run("net", 0.6, 2, train_seconds=2.0),
    ]
    net, svm = compare.summarize(results)
    assert (net.name, net.runs, svm.name, svm.runs) == ("net", 3, "svm", 1)
    assert net.accuracy == pytest.approx(0.5) and net.accuracy_sd == pytest.approx(0.1)
    assert net.train_seconds == pytest.approx(2.0) and net.train_seconds_sd == pytest.approx(1.0)
    # only the first run was timed; the others do not dilute it
    assert net.infer_seconds_per_image == 1e-3 and svm.infer_seconds_per_image is None
    assert svm.deterministic and not net.deterministic
    assert svm.accuracy_per_second is None


def test_accuracy_per_second_counts_pretraining():
    scratch = _run("scratch", 0.5, 0, train_seconds=10.0)
    pretrained = _run("pretrained", 0.6, 0, train_seconds=1.0, pretrain_seconds=29.0)
    downloaded = _run("downloaded", 0.9, 0, train_seconds=1.0, pretrain_seconds=None)
    assert scratch.accuracy_per_second == pytest.approx(0.05)
    assert pretrained.accuracy_per_second == pytest.approx(0.02)
    assert pretrained.total_seconds == 30.0
    # untimed pretraining: no number rather than a flattering one
    assert downloaded.accuracy_per_second is None and downloaded.total_seconds is None


def test_markdown_table_has_a_row_per_approach_with_mean_and_sd():
    results = [
        _run("a", 0.5, 0, infer_seconds_per_image=1e-3),
        _run("a", 0.7, 1),
        _run("b", 0.9, None, parameters=1000, trainable=10, pretrain_seconds=None),
    ]
    scores = compare.markdown_table(results).splitlines()
    costs = compare.markdown_table(results, part="costs").splitlines()
    for table in (scores, costs):
        assert len(table) == 2 + 2
        assert all(line.count("|") == table[0].count("|") for line in table)
    cells = [c.strip() for c in scores[2].split("|")[1:-1]]
    assert cells[:4] == ["a", "2 seeds", "0.600 ± 0.141", "0.500 ± 0.141"]
    cells = [c.strip() for c in scores[3].split("|")[1:-1]]
    assert cells[1:3] == ["1 (no randomness)", "0.900"]
    cells = [c.strip() for c in costs[2].split("|")[1:-1]]
    assert cells[:2] == ["a", "2.0 ± 0.0"] and cells[3] == "1.000"
    cells = [c.strip() for c in costs[3].split("|")[1:-1]]
    assert cells[2:5] == ["not timed here", "", "1,000 (10)"]
    with pytest.raises(ValueError, match="'scores' or 'costs'"):
        compare.markdown_table(results, part="all")
