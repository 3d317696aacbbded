"""Auto-checks for the exercises at the end of each chapter, and for the chapters' own text.

A student's answer starts as ``None`` (not attempted): the check says so and returns False,
so the notebook still runs top to bottom. A wrong answer gets a hint, not a traceback. Every
check returns True or False, so an instructor's grading script (or our CI, on the hidden
solutions) can ``assert`` it.

:func:`claim` guards a sentence of a chapter's prose ("no augmentation overfits most") with
the numbers the run printed, so the text cannot silently become false.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from .config import announce, get_profile
from .metrics import to_numpy
from .train import fast_dev_run


def claim(holds: bool, text: str) -> None:
    """Check that what the prose says about this run's results (``text``) is true.

    When it holds, nothing is shown. When it does not:

    - in the ``smoke`` profile and under CI (which build the book's pages), it raises
      ``AssertionError``: a page must not say what its numbers contradict;
    - in a fast dev run (``IMGCLS_FAST_DEV_RUN``, one batch of training) it only says the
      claim was not checked: nothing has learned enough for it to mean anything;
    - anywhere else (a reader's own ``cpu`` or ``full`` run, whose data and hardware differ) a
      box says that the text and the numbers disagree, and the chapter carries on.

    It returns nothing, so a cell that ends with it shows no stray ``True``.
    """
    if holds:
        return
    if fast_dev_run() is not None:
        print(f"(not checked in a fast dev run, which trains on one batch: {text})")
        return
    ci = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
    if ci or get_profile() == "smoke":
        raise AssertionError(f"the chapter's text says: {text}; this run's numbers disagree")
    announce(
        f"THE TEXT SAYS: {text}. THIS RUN'S NUMBERS DISAGREE: your data, profile or hardware "
        "differ from the run the text describes. Trust the numbers printed above."
    )


def _report(exercise: str, passed: bool, hint: str) -> bool:
    print(f"[{'PASS' if passed else 'TRY AGAIN'}] {exercise}" + ("" if passed else f": {hint}"))
    return passed


def _attempted(exercise: str, answer) -> bool:
    if answer is None or answer is Ellipsis:
        print(f"[NOT YET] {exercise}: replace None with your answer and run the cell again")
        return False
    return True


def _describe(value) -> str:
    """A short description for hints: big arrays by shape, small values by repr."""
    shape = getattr(value, "shape", None)
    return f"an array of shape {tuple(shape)}" if shape is not None and len(shape) else repr(value)


def check_close(exercise: str, answer, expected, *, atol: float = 1e-4, hint: str = "") -> bool:
    """Numbers, arrays or tensors (any device) equal to ``expected`` within ``atol``."""
    if not _attempted(exercise, answer):
        return False
    try:
        got, want = to_numpy(answer), to_numpy(expected).astype(np.float64)
        numeric = got.dtype.kind in "biuf"  # the string "0.5" is not an answer of 0.5
        passed = (
            numeric and got.shape == want.shape and bool(np.allclose(got, want, atol=atol, rtol=0))
        )
    except (TypeError, ValueError):
        passed = False
    default = f"expected {_describe(expected)} within {atol}, got {_describe(answer)}"
    return _report(exercise, passed, hint or default)


def check_shape(exercise: str, tensor, expected: Sequence[int], *, hint: str = "") -> bool:
    """A tensor or array with exactly this shape."""
    if not _attempted(exercise, tensor):
        return False
    shape = tuple(getattr(tensor, "shape", ()))
    return _report(
        exercise, shape == tuple(expected), hint or f"expected shape {tuple(expected)}, got {shape}"
    )


def _equal(answer, expected) -> bool:
    """``answer == expected`` as one bool; arrays and tensors compare whole (shape and values)."""
    array_like = (torch.Tensor, np.ndarray, np.generic)
    if isinstance(answer, array_like) or isinstance(expected, array_like):
        try:
            return bool(np.array_equal(to_numpy(answer), to_numpy(expected)))
        except (TypeError, ValueError):
            return False
    return bool(answer == expected)


def check_equal(exercise: str, answer, expected, *, hint: str = "") -> bool:
    """An answer equal to ``expected`` (strings, ints, lists, arrays, tensors...)."""
    if not _attempted(exercise, answer):
        return False
    passed = _equal(answer, expected)
    return _report(exercise, passed, hint or f"expected {expected!r}, got {answer!r}")


def check_true(exercise: str, condition: bool | None, *, hint: str) -> bool:
    """A condition the answer must satisfy, e.g. ``value.min() < 0``."""
    if not _attempted(exercise, condition):
        return False
    return _report(exercise, bool(condition), hint)
