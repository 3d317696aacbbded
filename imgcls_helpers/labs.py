"""Exercises that grade themselves, the same way in the student's notebook and in the grader.

Each chapter's exercises are declared in ``imgcls_helpers/exercises/chNN.py`` as
:class:`Exercise` objects. An exercise names the variables the student sets (``answers``) and
holds a ``judge``: a function that returns ``None`` when the answers are right and a hint
when they are not. The judge computes what it expects itself, from the helpers or from the
chapter's own data (``context``), so nothing in the student's cell computes or prints the
expected value, and the hint never gives it away.

Two callers:

- the student's cell, ``passed = labs.check("3.1", globals())``, prints NOT YET, TRY AGAIN
  with a hint, or PASS (formative feedback while working);
- ``imgcls-grade`` (:mod:`imgcls_helpers.grade`), which runs a submitted notebook, takes its
  answers out of the kernel, and judges them here, in its own process, against the
  ``context`` of a run of the chapter with its hidden solutions. Printed PASS lines and the
  student's copy of this module play no part in it.

An exercise that says "compute it yourself" lists the helpers that would do it for the
student in ``forbidden``: an answer from a cell that calls, reads or imports one of them
does not pass.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

MISSING = object()
"""Stands for an answer variable the notebook never defined."""


@dataclass(frozen=True)
class Exercise:
    """One graded exercise of a chapter.

    ``judge(context, *answers)`` gets the chapter variables named in ``context`` (as a dict)
    and the student's answers in the order of ``answers``; it returns ``None`` when they are
    right, else a hint that does not contain the expected value.
    """

    id: str
    title: str
    points: int
    answers: tuple[str, ...]
    judge: Callable[..., str | None]
    checks: str
    context: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()

    @property
    def chapter(self) -> int:
        return int(self.id.split(".")[0])


@dataclass(frozen=True)
class Verdict:
    """How one exercise went: ``status`` is one of :data:`STATUSES`."""

    exercise: Exercise
    status: str
    message: str

    @property
    def points(self) -> int:
        return self.exercise.points if self.status == "correct" else 0


STATUSES = ("correct", "incorrect", "not attempted", "missing", "forbidden call")

PARAMETER_COUNTERS = (
    "count_parameters",
    "numel",
    "nelement",
    "parameters",
    "named_parameters",
    "state_dict",
)
"""What an exercise that says "count the parameters by hand" forbids."""


def exercises(chapter: int) -> list[Exercise]:
    """The exercises of a chapter, in order (imported on demand: no import cycle)."""
    module = importlib.import_module(f"imgcls_helpers.exercises.ch{chapter:02d}")
    return list(module.EXERCISES)


def exercise(exercise_id: str) -> Exercise:
    """The exercise with this id, such as ``"3.1"``."""
    chapter = int(exercise_id.split(".")[0])
    for candidate in exercises(chapter):
        if candidate.id == exercise_id:
            return candidate
    raise KeyError(f"chapter {chapter} has no exercise {exercise_id!r}")


def used_names(source: str) -> set[str]:
    """The functions and attributes a piece of code uses: every attribute it reads
    (``a.b.f(x)`` gives ``b`` and ``f``), every name it imports, and every name it reads
    without assigning it (``for f in (precision_score, recall_score)``),
    so that a forbidden helper is caught however it was imported or renamed. The code of an
    IPython magic (``%time x = f(1)``, or IPython's own ``run_line_magic('time', ...)``) is
    read too; lines that do not parse are skipped."""
    try:
        trees = [ast.parse(source)]
    except SyntaxError:
        trees = []
        for line in source.splitlines():
            line = line.strip()
            if line.startswith(("%", "!")):
                line = line.split(maxsplit=1)[1] if " " in line else ""
            try:
                trees.append(ast.parse(line))
            except SyntaxError:
                continue
    names, loaded, bound = set(), set(), set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names |= {alias.name.split(".")[-1] for alias in node.names}
            elif isinstance(node, ast.Name):
                (bound if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                bound.add(node.name)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("run_line_magic", "run_cell_magic"):
                    code = [a.value for a in node.args[1:] if isinstance(a, ast.Constant)]
                    names |= set().union(*(used_names(str(c)) for c in code))
    # A name read but never assigned here comes from outside: (precision_score, f1_score)
    # counts, a variable of the student's own called `score` does not.
    return names | (loaded - bound)


def _unanswered(value: Any) -> bool:
    return value is None or value is Ellipsis


def verdict(
    exercise: Exercise,
    answers: Mapping[str, Any],
    context: Mapping[str, Any],
    sources: Iterable[str] = (),
) -> Verdict:
    """Judge one exercise: ``answers`` maps each answer name to its value (or
    :data:`MISSING`); ``sources`` is the code the student wrote for it, where a forbidden
    call is looked for. The judge's own errors (an answer of the wrong type) are a wrong
    answer with a message, never a traceback."""
    values = [answers.get(name, MISSING) for name in exercise.answers]
    missing = [n for n, v in zip(exercise.answers, values, strict=True) if v is MISSING]
    if missing:
        return Verdict(
            exercise,
            "missing",
            f"`{missing[0]}` is not defined: did its cell run without an error?",
        )
    if all(_unanswered(v) for v in values):
        return Verdict(exercise, "not attempted", "replace None with your answer")
    unset = [n for n, v in zip(exercise.answers, values, strict=True) if _unanswered(v)]
    if unset:
        return Verdict(exercise, "incorrect", f"`{unset[0]}` is still None")
    used = set().union(*(used_names(s) for s in sources)) & set(exercise.forbidden)
    if used:
        return Verdict(
            exercise,
            "forbidden call",
            f"this exercise asks you to work it out yourself, and your code uses "
            f"{', '.join(sorted(used))}",
        )
    # A judge that trains something seeds the random generators: the notebook's own random
    # state is put back afterwards, so a check never changes what the next cell draws.
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    try:
        with torch.random.fork_rng(devices=[]):
            hint = exercise.judge(dict(context), *values)
    except Exception as error:  # a wrong type or shape must not stop the notebook
        hint = f"checking your answer raised {type(error).__name__}: {error}"
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002 (the legacy global state)
    if hint is None:
        return Verdict(exercise, "correct", "")
    return Verdict(exercise, "incorrect", hint)


def _current_cell() -> str:
    """The source of the cell being run, when in IPython (empty elsewhere)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return ""
    shell = get_ipython()
    history = getattr(shell, "user_ns", {}).get("In", []) if shell is not None else []
    return history[-1] if history else ""


def review(exercise_id: str, namespace: Mapping[str, Any]) -> Verdict:
    """The verdict on one exercise, reading the answers and the chapter variables it needs
    from ``namespace`` (a notebook's ``globals()``), without printing anything."""
    ex = exercise(exercise_id)
    absent = [name for name in ex.context if name not in namespace]
    if absent:
        raise NameError(
            f"Exercise {ex.id} needs `{absent[0]}` from the chapter: run the chapter's cells "
            "above first (Run > Run All Above Selected Cell)"
        )
    answers = {name: namespace.get(name, MISSING) for name in ex.answers}
    context = {name: namespace[name] for name in ex.context}
    return verdict(ex, answers, context, [_current_cell()])


def check(exercise_id: str, namespace: Mapping[str, Any]) -> bool:
    """Check the student's answer to one exercise and print the verdict; return whether it
    passed. ``namespace`` is the notebook's ``globals()``: the answers and the chapter
    variables the exercise needs are read from it."""
    result = review(exercise_id, namespace)
    ex = result.exercise
    label = {"correct": "PASS", "not attempted": "NOT YET"}.get(result.status, "TRY AGAIN")
    message = f": {result.message}" if result.message else ""
    print(f"[{label}] Exercise {ex.id}: {ex.title}{message}")
    return result.status == "correct"


# --------------------------------------------------------------------- tools for the judges


def as_array(value: Any) -> np.ndarray:
    """A number, list, array or tensor (any device) as a float64 array; anything else, such
    as a string, raises ``TypeError`` (the string "0.5" is not the number 0.5)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"expected numbers, got {type(value).__name__}")
    return array.astype(np.float64)


def close(answer: Any, expected: Any, atol: float = 1e-4) -> bool:
    """Same shape (no broadcasting) and every value within ``atol``; NaN is never close."""
    got, want = as_array(answer), as_array(expected)
    return got.shape == want.shape and bool(np.allclose(got, want, atol=atol, rtol=0))


def is_integer(value: Any) -> bool:
    """A whole number given as a number (``1764`` or ``1764.0``, not ``"1764"``)."""
    return isinstance(value, int | float | np.integer | np.floating) and float(value).is_integer()


def _canonical(value: Any) -> Any:
    """Plain Python values: ``np.int64(3)``, ``torch.tensor(3)`` and ``3`` are one answer."""
    if isinstance(value, torch.Tensor | np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, str):
        return value.strip().lower()
    return value


def digest(value: Any) -> str:
    """A fingerprint of an answer, so that an exercise whose answer is a choice (a word, a
    list of booleans, an index) can be checked without writing the answer in this package.
    Tensors, arrays and NumPy scalars count as the plain values they hold; strings ignore
    case and surrounding spaces; a tuple counts as a list."""
    return hashlib.sha256(repr(_canonical(value)).encode()).hexdigest()[:16]


def same_under_seeds(candidate: Callable, reference: Callable, inputs: Sequence, seeds=(0, 1, 2)):
    """Whether ``candidate(x)`` equals ``reference(x)`` for every input under the same
    random seed: two random pipelines that draw the same numbers in the same order."""
    for seed in seeds:
        for x in inputs:
            torch.manual_seed(seed)
            got = candidate(x)
            torch.manual_seed(seed)
            want = reference(x)
            if not (
                isinstance(got, torch.Tensor) and got.shape == want.shape and torch.equal(got, want)
            ):
                return False
    return True


@contextmanager
def one_thread() -> Iterator[None]:
    """Run a judge's small training on one thread, then restore the notebook's setting: a
    network this small gains nothing from more, and on a busy machine threads that wait for
    each other can make it many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
