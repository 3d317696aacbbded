"""Chapter 10's exercises: the solution passes, plausible wrong answers fail."""

from __future__ import annotations

import math

import numpy as np
import pytest
from exercise_cases import Case, assert_case
from scipy import stats

from imgcls_helpers import compare, labs

AUGMENTED, PLAIN = "ResNet + augmentation + MixUp/CutMix", "ResNet"


def _run(name, accuracy, seconds, pretrain=0.0, seed=None):
    return compare.Result(
        name=name,
        accuracy=accuracy,
        macro_f1=accuracy,
        train_seconds=seconds,
        parameters=1000,
        trainable=1000,
        budget="4 epochs",
        pretrain_seconds=pretrain,
        seed=seed,
    )


@pytest.fixture(scope="module")
def context():
    results = [
        _run("HOG + SVM", 0.6, 10.0),
        # the fastest learner per second of training, and of all the training it took
        *(
            _run("CNN from scratch", a, s, seed=i)
            for i, (a, s) in enumerate([(0.45, 1.5), (0.5, 2.0), (0.55, 2.5)])
        ),
        # the most accurate, and slow
        *(_run(PLAIN, a, 50.0, seed=i) for i, a in enumerate([0.93, 0.95, 0.97])),
        *(_run(AUGMENTED, a, 55.0, seed=i) for i, a in enumerate([0.90, 0.94, 0.91])),
        # fast on our task, but pretrained here for a long time
        _run("CLIP zero-shot", 0.4, 0.01, pretrain=20.0),
        # pretrained elsewhere: no accuracy per second at all
        _run("transfer, ImageNet", 0.9, 1.0, pretrain=None),
    ]
    return {
        "cm": np.array([[40, 3, 2], [4, 6, 5], [1, 3, 6]]),
        "summaries": {s.name: s for s in compare.summarize(results)},
        "batch_images": 256,
        "batch_seconds": 0.64,
        "results": results,
    }


def _welch(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df, 2 * stats.t.sf(abs(t), df)


def _student(a, b):
    result = stats.ttest_ind(a, b)
    return result.statistic, len(a) + len(b) - 2, result.pvalue


def _population_variance(a, b):
    a, b = np.asarray(a), np.asarray(b)
    va, vb = a.var() / len(a), b.var() / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df, 2 * stats.t.sf(abs(t), df)


def _student_df(a, b):
    t, _, _ = _welch(a, b)
    df = len(a) + len(b) - 2
    return t, df, 2 * stats.t.sf(abs(t), df)


def _one_sided(a, b):
    t, df, p = _welch(a, b)
    return t, df, p / 2


def _reversed(a, b):
    return _welch(b, a)


def cases(context):
    cm = context["cm"]
    precision, recall = np.diag(cm) / cm.sum(0), np.diag(cm) / cm.sum(1)
    f1 = 2 * precision * recall / (precision + recall)
    augmented = [r.accuracy for r in context["results"] if r.name == AUGMENTED]
    plain = [r.accuracy for r in context["results"] if r.name == PLAIN]
    verdict = "within noise" if _welch(augmented, plain)[2] >= 0.05 else "beyond noise"
    other = "beyond noise" if verdict == "within noise" else "within noise"
    return {
        "10.1": Case(
            (float(f1.mean()),),
            {
                "accuracy": (float(np.trace(cm) / cm.sum()),),
                "weighted by support": (float((f1 * cm.sum(1)).sum() / cm.sum()),),
                "arithmetic mean of precision and recall": (
                    float(((precision + recall) / 2).mean()),
                ),
                "mean precision": (float(precision.mean()),),
                "a list of the F1 per class": (f1.tolist(),),
            },
            forbidden="macro_f1_by_hand = metrics.score(pred, true)[1]",
        ),
        "10.2": Case(
            ("CNN from scratch",),
            {
                "pretraining left out": ("CLIP zero-shot",),
                "the untimed row": ("transfer, ImageNet",),
                "the most accurate": (PLAIN,),
                "not a row": ("CNN",),
                "a number": (0.25,),
            },
            forbidden="best_value_name = max(timed, key=lambda s: s.accuracy_per_second).name",
        ),
        "10.3": Case(
            (256 / 0.64, 1000 * 0.64 / 256),
            {
                "inverted throughput": (0.64 / 256, 1000 * 0.64 / 256),
                "ms per image in seconds": (256 / 0.64, 0.64 / 256),
                "swapped": (1000 * 0.64 / 256, 256 / 0.64),
                "text": ("400", "2.5"),
            },
        ),
        "10.4": Case(
            (_welch, verdict),
            {
                "Student's t-test (pooled, n_a + n_b - 2)": (_student, verdict),
                "population variances": (_population_variance, verdict),
                "Welch's t with Student's df": (_student_df, verdict),
                "one-sided p": (_one_sided, verdict),
                "b minus a": (_reversed, verdict),
                "a constant": (lambda a, b: (0.0, 4.0, 1.0), verdict),
                "the other verdict": (_welch, other),
                "not a verdict": (_welch, "yes"),
                "not a function": ((1.0, 4.0, 0.3), verdict),
            },
            forbidden="d = compare.difference(top1(a), top1(b))",
        ),
    }


@pytest.mark.parametrize("exercise_id", ["10.1", "10.2", "10.3", "10.4"])
def test_exercise(context, exercise_id):
    assert_case(exercise_id, cases(context)[exercise_id], context)


def test_the_pair_differs_from_its_verdict_when_shuffled(context):
    # the test's own data must make a real verdict: within noise here, beyond with a gap
    augmented = [r.accuracy for r in context["results"] if r.name == AUGMENTED]
    plain = [r.accuracy for r in context["results"] if r.name == PLAIN]
    assert compare.difference(augmented, plain).within_noise
    assert not compare.difference([a - 0.2 for a in augmented], plain).within_noise


def test_one_seed_a_side_is_within_noise(context):
    # a quick test run of the chapter trains one seed: no spread, nothing shown to differ
    one_seed = {
        **context,
        "results": [_run(AUGMENTED, 0.2, 1.0, seed=0), _run(PLAIN, 0.3, 1.0, seed=0)],
    }
    exercise = labs.exercise("10.4")
    right = labs.verdict(exercise, {"welch": _welch, "noise_verdict": "within noise"}, one_seed)
    wrong = labs.verdict(exercise, {"welch": _welch, "noise_verdict": "beyond noise"}, one_seed)
    assert right.status == "correct" and wrong.status == "incorrect"
