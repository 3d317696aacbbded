"""Auto-checks for the exercises at the end of each chapter.

A student's answer starts as ``None`` (not attempted): the check says so and returns False,
so the notebook still runs top to bottom. A wrong answer gets a hint, not a traceback. Every
check returns True or False, so an instructor's grading script (or our CI, on the hidden
solutions) can ``assert`` it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def _report(exercise: str, passed: bool, hint: str) -> bool:
    print(f"[{'PASS' if passed else 'TRY AGAIN'}] {exercise}" + ("" if passed else f": {hint}"))
    return passed


def _attempted(exercise: str, answer) -> bool:
    if answer is None or answer is Ellipsis:
        print(f"[NOT YET] {exercise}: replace None with your answer and run the cell again")
        return False
    return True


def check_close(exercise: str, answer, expected, *, atol: float = 1e-4, hint: str = "") -> bool:
    """Numbers or tensors equal to ``expected`` within ``atol``."""
    if not _attempted(exercise, answer):
        return False
    try:
        got, want = (
            torch.as_tensor(answer, dtype=torch.float64, device="cpu"),
            torch.as_tensor(expected, dtype=torch.float64, device="cpu"),
        )
        passed = got.shape == want.shape and torch.allclose(got, want, atol=atol, rtol=0)
    except (TypeError, ValueError, RuntimeError):
        passed = False
    return _report(
        exercise, passed, hint or f"expected {expected!r} (within {atol}), got {answer!r}"
    )


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

        def as_array(value):
            return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value

        try:
            return bool(np.array_equal(as_array(answer), as_array(expected)))
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
