"""Tools for comparing approaches fairly: one result record, timers and a results table.

A comparison is only as good as its bookkeeping. Every approach gets the same record
(:class:`Result`): accuracy and macro-F1 on the same test set, wall-clock training time,
inference time per image measured the same way, parameter counts and the training budget.
:func:`score` computes both quality numbers with scikit-learn, :class:`Stopwatch` times a
block of code, :func:`seconds_per_item` times predictions after a warm-up run (the first
call pays for one-off work such as memory allocation), and :func:`markdown_table` turns the
records into a table that Jupyter Book renders.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class Result:
    """What one approach achieved and what it cost, all measured on the same split."""

    name: str
    accuracy: float  # top-1 on the test set, in [0, 1]
    macro_f1: float  # F1 per class, averaged with equal weight per class
    train_seconds: float  # wall clock of everything training needs (features, pretext, fit)
    infer_seconds_per_image: float  # wall clock of predicting the test set, divided by N
    parameters: int  # numbers the trained predictor stores (see the chapter for the SVM)
    trainable: int  # of those, how many were fitted to this task's labelled images
    budget: str  # e.g. "8 epochs" or "C chosen on validation"
    pretrain_seconds: float = 0.0  # time spent before, on another task (0: none, or not timed)
    note: str = ""  # anything a reader must know to read the row right

    @property
    def accuracy_per_second(self) -> float:
        """Test accuracy per second of training: a crude "value for compute" number."""
        return self.accuracy / max(self.train_seconds, 1e-9)


class Stopwatch:
    """``with Stopwatch() as clock: ...`` then ``clock.seconds``: wall-clock time of a block.

    On a GPU, work is queued and runs later; the stopwatch waits for it (``synchronize``)
    at both ends, or it would time only the queueing.
    """

    def __enter__(self) -> Stopwatch:
        _synchronize()
        self.start, self.seconds = time.perf_counter(), 0.0
        return self

    def __exit__(self, *exc) -> None:
        _synchronize()
        self.seconds = time.perf_counter() - self.start


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def seconds_per_item(predict: Callable[[], object], n_items: int, *, warmup: int = 1) -> float:
    """Wall-clock seconds of ``predict()`` divided by ``n_items``, after ``warmup`` runs.

    ``predict`` should do all the work of predicting ``n_items`` inputs (features included),
    so every approach pays for the same thing.
    """
    for _ in range(warmup):
        predict()
    with Stopwatch() as clock:
        predict()
    return clock.seconds / n_items


def markdown_table(results: Sequence[Result]) -> str:
    """The results as a Markdown table (display it with ``IPython.display.Markdown``)."""
    rows = [
        "| approach | top-1 | macro-F1 | training (s) | pretraining (s) "
        "| inference (ms / image) | parameters (fitted here) | budget | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        frozen = r.trainable != r.parameters
        params = f"{r.parameters:,}" + (f" ({r.trainable:,})" if frozen else "")
        rows.append(
            f"| {r.name} | {r.accuracy:.3f} | {r.macro_f1:.3f} | {r.train_seconds:.1f} "
            f"| {r.pretrain_seconds:.1f} | {1000 * r.infer_seconds_per_image:.3f} | {params} "
            f"| {r.budget} | {r.note} |"
        )
    return "\n".join(rows)
