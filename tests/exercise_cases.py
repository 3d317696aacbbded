"""What every chapter's exercise tests share: a solution that must pass, and wrong answers
(the common mistake, and a trivial answer of the right type and shape) that must fail.

Each ``tests/test_exercises_chNN.py`` holds ``CASES``, one :class:`Case` per exercise, and
calls :func:`assert_case`; ``tests/test_labs.py`` checks that every exercise has a case with at
least two wrong answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imgcls_helpers import labs


@dataclass
class Case:
    """``solution`` and each of ``wrong`` are the answers, in the order of the exercise's
    ``answers``; ``forbidden`` is a cell that gets the answer from a helper the exercise
    forbids (for exercises that say "compute it yourself")."""

    solution: tuple
    wrong: dict[str, tuple] = field(default_factory=dict)
    forbidden: str | None = None


def _answers(exercise: labs.Exercise, values: tuple) -> dict:
    return dict(zip(exercise.answers, values, strict=True))


def assert_case(exercise_id: str, case: Case, context: dict) -> None:
    exercise = labs.exercise(exercise_id)
    assert set(exercise.context) <= set(context), "the test's context lacks a variable"
    right = labs.verdict(exercise, _answers(exercise, case.solution), context)
    assert right.status == "correct", right.message
    assert right.points == exercise.points
    assert len(case.wrong) >= 2, "at least two wrong answers per exercise"
    for name, values in case.wrong.items():
        wrong = labs.verdict(exercise, _answers(exercise, values), context)
        assert wrong.status == "incorrect", f"the wrong answer {name!r} passed"
        assert wrong.points == 0 and wrong.message
    if exercise.forbidden:
        assert case.forbidden, f"exercise {exercise_id} forbids helpers: give a cell that calls one"
    if case.forbidden:
        cheat = labs.verdict(exercise, _answers(exercise, case.solution), context, [case.forbidden])
        assert cheat.status == "forbidden call", cheat.message


def hint(exercise_id: str, case: Case, wrong: str, context: dict) -> str:
    """The message the judge gives the wrong answer named ``wrong`` in ``case``: tests check
    that a common mistake gets its own hint."""
    exercise = labs.exercise(exercise_id)
    return labs.verdict(exercise, _answers(exercise, case.wrong[wrong]), context).message
