"""Tools for comparing approaches fairly: one result record per run, timers, noise and a table.

A comparison is only as good as its bookkeeping. Every run of every approach gets the same
record (:class:`Result`): accuracy and macro-F1 on the same test set, wall-clock training
time, pretraining time, inference time per image measured the same way, parameter counts
and the training budget. :class:`Stopwatch` times a block of code; :func:`seconds_per_item`
times inference the way timm's ``benchmark.py`` does (10 warm-up calls, then 40 calls timed
one by one; their median). :func:`summarize` turns the runs of each approach (one per seed)
into a mean and a standard deviation, :func:`difference` says whether two approaches differ
by more than their seed-to-seed noise, and :func:`markdown_table` prints the summaries as a
table that Jupyter Book renders.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from scipy import stats

from . import viz
from .train import fast_dev_run


@dataclass
class Result:
    """What one run of one approach achieved and what it cost, all on the same split.

    ``pretrain_seconds`` is the time spent before, on another task: ``0.0`` when there was
    none, ``None`` when it happened elsewhere and was not timed here (downloaded weights).
    ``seed`` is ``None`` for an approach with no randomness (the same result for any seed).
    ``infer_seconds_per_image`` may be ``None`` for runs whose inference was not timed (it
    does not depend on the seed, so timing one run of an approach is enough).
    """

    name: str
    accuracy: float  # top-1 on the test set, in [0, 1]
    macro_f1: float  # F1 per class, averaged with equal weight per class
    train_seconds: float  # everything training on our task needs (features, fit, ...)
    parameters: int  # numbers the trained predictor stores
    trainable: int  # of those, how many were fitted to this task's labelled images
    budget: str  # e.g. "4 epochs" or "C chosen on validation"
    infer_seconds_per_image: float | None = None
    pretrain_seconds: float | None = 0.0
    seed: int | None = None
    note: str = ""  # anything a reader must know to read the row right

    @property
    def total_seconds(self) -> float | None:
        """Training plus pretraining; ``None`` when the pretraining was not timed here."""
        if self.pretrain_seconds is None:
            return None
        return self.train_seconds + self.pretrain_seconds

    @property
    def accuracy_per_second(self) -> float | None:
        """Test accuracy per second of all the training it took, pretraining included.

        ``None`` when the pretraining was not timed here: leaving it out would make a
        pretrained model look almost free.
        """
        total = self.total_seconds
        return None if total is None else self.accuracy / max(total, 1e-9)


class Stopwatch:
    """``with Stopwatch() as clock: ...`` then ``clock.seconds``: wall-clock time of a block.

    On a GPU, work is queued and runs later; the stopwatch waits for it (``synchronize``)
    at both ends, or it would time only the queueing. ``timer`` is the clock it reads
    (``time.perf_counter``; tests pass a fake one).
    """

    def __init__(self, timer: Callable[[], float] = time.perf_counter) -> None:
        self.timer, self.seconds = timer, 0.0

    def __enter__(self) -> Stopwatch:
        _synchronize()
        self.start, self.seconds = self.timer(), 0.0
        return self

    def __exit__(self, *exc) -> None:
        _synchronize()
        self.seconds = self.timer() - self.start


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def seconds_per_item(
    predict: Callable[[], object],
    n_items: int,
    *,
    warmup: int = 10,
    runs: int = 40,
    timer: Callable[[], float] = time.perf_counter,
) -> float:
    """Median wall-clock seconds of one ``predict()`` call, divided by ``n_items``.

    Like timm's ``benchmark.py`` (and with its defaults): ``warmup`` untimed calls first (the
    first calls pay for memory allocation, kernel selection and caches), then ``runs`` calls,
    each timed on its own, waiting for the GPU at both ends. timm reports their mean; the
    median used here also ignores the odd call that the operating system interrupted.
    ``predict`` should do all the work of predicting ``n_items`` inputs (features included),
    so every approach pays for the same thing; one fixed batch is enough. With
    ``IMGCLS_FAST_DEV_RUN`` set (:func:`~imgcls_helpers.train.fast_dev_run`), one warm-up
    and one timed call prove that the timing runs, like ``fit``'s one-batch epochs.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    if fast_dev_run() is not None:
        warmup, runs = min(warmup, 1), 1
    for _ in range(warmup):
        predict()
    times = []
    for _ in range(runs):
        with Stopwatch(timer) as clock:
            predict()
        times.append(clock.seconds)
    return statistics.median(times) / n_items


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``); the sd of a single value is 0."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd


@dataclass
class Difference:
    """``mean(a) - mean(b)``, its standard error and Welch's two-sided p-value."""

    diff: float
    se: float
    p_value: float
    within_noise: bool  # p >= alpha: seeds alone could plausibly give a difference this size


def difference(a: Sequence[float], b: Sequence[float], *, alpha: float = 0.05) -> Difference:
    """Is ``mean(a) - mean(b)`` more than the seed-to-seed noise of the two approaches?

    Welch's t-test (unequal variances): ``se = sqrt(sd_a**2 / n_a + sd_b**2 / n_b)``,
    ``t = diff / se``, degrees of freedom by the Welch-Satterthwaite formula. A single value
    counts as having no spread, which is right for an approach without randomness (the
    same result for every seed) and wrong otherwise. With three seeds a side the test is
    weak: "within noise" means "not shown to differ", not "equal".
    """
    (mean_a, sd_a), (mean_b, sd_b) = mean_sd(a), mean_sd(b)
    diff = mean_a - mean_b
    va, vb = sd_a**2 / len(a), sd_b**2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0:  # no spread on either side: any difference is real, none is noise
        return Difference(diff, 0.0, 1.0 if diff == 0 else 0.0, diff == 0)
    df = (va + vb) ** 2 / sum(v**2 / (len(x) - 1) for v, x in ((va, a), (vb, b)) if v > 0)
    p_value = float(2 * stats.t.sf(abs(diff) / se, df))
    return Difference(diff, se, p_value, p_value >= alpha)


@dataclass
class Summary:
    """The runs of one approach in one row: means, standard deviations, costs."""

    name: str
    runs: int
    accuracy: float
    accuracy_sd: float
    macro_f1: float
    macro_f1_sd: float
    train_seconds: float
    train_seconds_sd: float
    infer_seconds_per_image: float | None  # median over the runs that were timed
    pretrain_seconds: float | None
    parameters: int
    trainable: int
    budget: str
    deterministic: bool  # no seed: one run says it all
    note: str

    @property
    def accuracy_per_second(self) -> float | None:
        """Mean accuracy per second of mean training plus pretraining (None: not timed)."""
        if self.pretrain_seconds is None:
            return None
        return self.accuracy / max(self.train_seconds + self.pretrain_seconds, 1e-9)


def summarize(results: Sequence[Result]) -> list[Summary]:
    """One :class:`Summary` per approach name, in the order the approaches first appear."""
    by_name: dict[str, list[Result]] = {}
    for r in results:
        by_name.setdefault(r.name, []).append(r)
    summaries = []
    for name, runs in by_name.items():
        first = runs[0]
        accuracy, accuracy_sd = mean_sd([r.accuracy for r in runs])
        macro_f1, macro_f1_sd = mean_sd([r.macro_f1 for r in runs])
        seconds, seconds_sd = mean_sd([r.train_seconds for r in runs])
        timed = [r.infer_seconds_per_image for r in runs if r.infer_seconds_per_image is not None]
        summaries.append(
            Summary(
                name=name,
                runs=len(runs),
                accuracy=accuracy,
                accuracy_sd=accuracy_sd,
                macro_f1=macro_f1,
                macro_f1_sd=macro_f1_sd,
                train_seconds=seconds,
                train_seconds_sd=seconds_sd,
                infer_seconds_per_image=statistics.median(timed) if timed else None,
                pretrain_seconds=first.pretrain_seconds,
                parameters=first.parameters,
                trainable=first.trainable,
                budget=first.budget,
                deterministic=all(r.seed is None for r in runs),
                note=first.note,
            )
        )
    return summaries


def _plus_minus(mean: float, sd: float, runs: int, digits: int) -> str:
    return f"{mean:.{digits}f}" if runs == 1 else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def markdown_table(results: Sequence[Result], part: str = "scores") -> str:
    """The runs as a Markdown table, one row per approach, mean ± standard deviation over the
    seeds (display it with ``IPython.display.Markdown``).

    ``part="scores"``: what each approach reached, with its budget; ``part="costs"``: what it
    cost (time, parameters). Two tables, because ten columns do not fit a page.
    """
    if part not in ("scores", "costs"):
        raise ValueError(f"part must be 'scores' or 'costs', not {part!r}")
    header = {
        "scores": ["approach", "runs", "top-1", "macro-F1", "budget"],
        "costs": [
            "approach",
            "training (s)",
            "pretraining (s)",
            "inference (ms / image)",
            "parameters (fitted here)",
            "note",
        ],
    }[part]
    rows = []
    for s in summarize(results):
        if part == "scores":
            rows.append(
                [
                    s.name,
                    "1 (no randomness)" if s.deterministic else f"{s.runs} seeds",
                    _plus_minus(s.accuracy, s.accuracy_sd, s.runs, 3),
                    _plus_minus(s.macro_f1, s.macro_f1_sd, s.runs, 3),
                    s.budget,
                ]
            )
            continue
        frozen = s.trainable != s.parameters
        per_image = s.infer_seconds_per_image
        rows.append(
            [
                s.name,
                _plus_minus(s.train_seconds, s.train_seconds_sd, s.runs, 1),
                "not timed here" if s.pretrain_seconds is None else f"{s.pretrain_seconds:.1f}",
                "" if per_image is None else f"{1000 * per_image:.3f}",
                f"{s.parameters:,}" + (f" ({s.trainable:,})" if frozen else ""),
                s.note,
            ]
        )
    return viz.markdown_table(header, rows)
