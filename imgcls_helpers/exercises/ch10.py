"""Chapter 10, every approach measured side by side: the judges of its exercises."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .. import compare
from ..labs import Exercise, as_array, close


def _macro_f1(context, value):
    if not isinstance(value, int | float | np.floating):
        return "give one number (a float)"
    cm = as_array(context["cm"])
    tp, predicted, actual = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    precision, recall = tp / predicted, tp / actual
    f1 = 2 * precision * recall / (precision + recall)
    if close(value, f1.mean(), atol=1e-6):
        return None
    if close(value, tp.sum() / cm.sum(), atol=1e-6):
        return "that is the accuracy (micro-F1): average the F1 of each class instead"
    if close(value, (f1 * actual).sum() / actual.sum(), atol=1e-6):
        return "that weights the classes by their size: macro-F1 gives each class equal weight"
    if close(value, ((precision + recall) / 2).mean(), atol=1e-6):
        return "F1 is the harmonic mean of precision and recall, not their average"
    return "per class: precision = diagonal / column sum, recall = diagonal / row sum"


def _ratios(summaries, *, pretraining: bool = True) -> dict[str, float]:
    return {
        s.name: s.accuracy / max(s.train_seconds + (s.pretrain_seconds if pretraining else 0), 1e-9)
        for s in summaries
        if s.pretrain_seconds is not None
    }


def _best_value(context, name):
    summaries = list(context["summaries"].values())
    if not isinstance(name, str):
        return "give the approach's name, a string from the table's first column"
    names = {s.name.lower(): s.name for s in summaries}
    if name.strip().lower() not in names:
        return "give a name exactly as the table's first column spells it"
    chosen = names[name.strip().lower()]
    ratios = _ratios(summaries)
    if chosen == max(ratios, key=ratios.get):
        return None
    if chosen not in ratios:
        return "leave out the rows whose pretraining was not timed here"
    without = _ratios(summaries, pretraining=False)
    if chosen == max(without, key=without.get):
        return "count the pretraining time too: accuracy / (train_seconds + pretrain_seconds)"
    if chosen == max(summaries, key=lambda s: s.accuracy).name:
        return "that is the most accurate row: divide each accuracy by its time first"
    return "compute accuracy / (train_seconds + pretrain_seconds) for every timed row"


def _throughput(context, throughput, ms_per_image):
    images, seconds = float(context["batch_images"]), float(context["batch_seconds"])
    for value, name in ((throughput, "throughput"), (ms_per_image, "ms_per_image")):
        if not isinstance(value, int | float | np.floating):
            return f"{name}: give one number"
    if close(throughput, seconds / images, atol=1e-9):
        return "throughput: images per second is images divided by seconds"
    if not close(throughput, images / seconds, atol=1e-6):
        return "throughput: how many images the model classifies in one second"
    if close(ms_per_image, seconds / images, atol=1e-9):
        return "ms_per_image: that is in seconds; a millisecond is 1/1000 of a second"
    if not close(ms_per_image, 1000 * seconds / images, atol=1e-6):
        return "ms_per_image: the batch's time in milliseconds, shared among its images"
    return None


AUGMENTED, PLAIN = "ResNet + augmentation + MixUp/CutMix", "ResNet"  # exercise 10.4's pair

# (size of a, size of b, the difference of their means): the judge's random per-seed scores
_WELCH_CASES = ((3, 3, 0.05), (3, 5, 0.0), (5, 2, 0.2), (4, 4, -0.1))


def _welch_reference(a, b, *, ddof=1, pooled=False, welch_df=True):
    """(t, df, p) of two samples; the keywords make the common mistakes for the hints."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va, vb = a.var(ddof=ddof) / len(a), b.var(ddof=ddof) / len(b)
    if pooled:
        pooled_var = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (
            len(a) + len(b) - 2
        )
        se = math.sqrt(pooled_var * (1 / len(a) + 1 / len(b)))
    else:
        se = math.sqrt(va + vb)
    t = (a.mean() - b.mean()) / se
    if welch_df:
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    else:
        df = len(a) + len(b) - 2
    return t, df, 2 * stats.t.sf(abs(t), df)


def _welch_mistake(got, a, b) -> str:
    t, df, p = got
    if close(t, -_welch_reference(a, b)[0], atol=1e-5):
        return "welch: t is (mean(a) - mean(b)) / se, in that order"
    if close(t, _welch_reference(a, b, ddof=0)[0], atol=1e-5):
        return "welch: use the sample variances, which divide by n - 1 (ddof=1)"
    if close(t, _welch_reference(a, b, pooled=True)[0], atol=1e-5):
        return "welch: Welch's t does not pool the variances: se = sqrt(var_a / n_a + var_b / n_b)"
    want_t, want_df, want_p = _welch_reference(a, b)
    if not close(t, want_t, atol=1e-5):
        return "welch: t = (mean(a) - mean(b)) / sqrt(var_a / n_a + var_b / n_b)"
    if close(df, len(a) + len(b) - 2, atol=1e-5):
        return "welch: n_a + n_b - 2 is Student's df; Welch's comes from Welch-Satterthwaite"
    if not close(df, want_df, atol=1e-5):
        return "welch: df by the Welch-Satterthwaite formula, with the sample variances"
    if close(p, want_p / 2, atol=1e-6):
        return "welch: the p-value is two-sided: twice the upper tail at |t|"
    return "welch: p = 2 * stats.t.sf(abs(t), df)"


def _noise(context, welch, noise_verdict):
    if not callable(welch):
        return "welch must be a function (a, b) -> (t, df, p)"
    rng = np.random.default_rng(10)
    for n_a, n_b, shift in _WELCH_CASES:
        a = rng.normal(0.5 + shift, rng.uniform(0.01, 0.05), n_a).tolist()
        b = rng.normal(0.5, rng.uniform(0.01, 0.05), n_b).tolist()
        got = welch(list(a), list(b))
        if not isinstance(got, tuple | list) or len(got) != 3:
            return "welch must return three numbers: (t, df, p)"
        got = [float(as_array(x)) for x in got]
        if not all(
            close(g, w, atol=1e-5) for g, w in zip(got, _welch_reference(a, b), strict=True)
        ):
            return _welch_mistake(got, a, b)
    if not isinstance(noise_verdict, str) or noise_verdict.strip().lower() not in (
        "within noise",
        "beyond noise",
    ):
        return 'noise_verdict: "within noise" or "beyond noise"'
    runs = context["results"]
    a = [r.accuracy for r in runs if r.name == AUGMENTED]
    b = [r.accuracy for r in runs if r.name == PLAIN]
    if not a or not b:
        return f"the chapter's results lack the rows {AUGMENTED!r} and {PLAIN!r}"
    # one seed a side (a quick test run of the chapter): no spread, nothing shown to differ
    within = min(len(a), len(b)) < 2 or compare.difference(a, b).within_noise
    if (noise_verdict.strip().lower() == "within noise") != within:
        return (
            "noise_verdict: apply welch to the per-seed top-1 of the two rows (augmentation "
            "first), and compare its p-value with 0.05"
        )
    return None


EXERCISES = [
    Exercise(
        "10.1",
        "macro-F1 by hand",
        2,
        ("macro_f1_by_hand",),
        _macro_f1,
        "the number equals the mean over the classes of the F1 computed from cm",
        context=("cm",),
        forbidden=(
            "f1_score",
            "fbeta_score",
            "precision_recall_fscore_support",
            "classification_report",
            "score",
        ),
    ),
    Exercise(
        "10.2",
        "the best accuracy per second of training",
        2,
        ("best_value_name",),
        _best_value,
        "the name is the summary row with the highest accuracy / (training + pretraining "
        "seconds), among the rows whose pretraining was timed here",
        context=("summaries",),
        forbidden=("accuracy_per_second", "total_seconds"),
    ),
    Exercise(
        "10.3",
        "throughput from a timing",
        1,
        ("throughput", "ms_per_image"),
        _throughput,
        "images per second and milliseconds per image, from batch_images and batch_seconds",
        context=("batch_images", "batch_seconds"),
    ),
    Exercise(
        "10.4",
        "is the difference within noise?",
        3,
        ("welch", "noise_verdict"),
        _noise,
        "welch(a, b) gives Welch's t, df and two-sided p on four seeded random pairs of "
        "samples of different sizes, and the verdict for augmentation against plain ResNet "
        "agrees with compare.difference on the chapter's per-seed results (with one seed a side, "
        "as in a quick test run, there is no spread and the verdict is within noise)",
        context=("results",),
        forbidden=("ttest_ind", "ttest_ind_from_stats", "difference", "mean_sd", "versus"),
    ),
]
