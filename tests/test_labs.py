"""imgcls_helpers.labs: verdicts, the student's check, and what every chapter's exercises owe."""

from __future__ import annotations

import importlib
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from imgcls_helpers import labs

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _exercise(judge=lambda context, x: None if x == 4 else "count again", **kwargs):
    return labs.Exercise("0.1", "four", 2, ("x",), judge, "x is 4", **kwargs)


@pytest.mark.parametrize(
    ("answers", "status"),
    [
        ({"x": 4}, "correct"),
        ({"x": 5}, "incorrect"),
        ({"x": None}, "not attempted"),
        ({"x": ...}, "not attempted"),
        ({}, "missing"),
        ({"x": "four"}, "incorrect"),
    ],
)
def test_verdict_statuses(answers, status):
    result = labs.verdict(_exercise(), answers, {})
    assert result.status == status
    assert result.points == (2 if status == "correct" else 0)
    assert bool(result.message) == (status != "correct")


def test_a_judge_that_raises_is_a_wrong_answer_with_a_message():
    result = labs.verdict(_exercise(judge=lambda context, x: x.shape), {"x": 3}, {})
    assert result.status == "incorrect" and "AttributeError" in result.message


def test_a_judge_leaves_the_notebook_random_state_alone():
    def judge(context, x):
        torch.manual_seed(123)
        np.random.seed(123)  # noqa: NPY002 (the state a notebook uses)
        return None

    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (the state a notebook uses)
    expected = torch.rand(3), np.random.rand(3)  # noqa: NPY002
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (the state a notebook uses)
    labs.verdict(_exercise(judge=judge), {"x": 4}, {})
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])  # noqa: NPY002


def test_a_forbidden_call_fails_however_it_is_spelled():
    ex = _exercise(forbidden=("hog_length",))
    for source in [
        "x = features.hog_length(64, 64)",
        "from f import hog_length as h\nx = hog_length(1)",
    ]:
        assert labs.verdict(ex, {"x": 4}, {}, [source]).status == "forbidden call"
    assert labs.verdict(ex, {"x": 4}, {}, ["x = 4  # hog_length would say so"]).status == "correct"
    assert labs.used_names("%time x = f(1)\ny = a.b.g(2)") == {"f", "a", "b", "g"}
    assert "accuracy_per_second" in labs.used_names("best = s.accuracy_per_second")
    assert "f1_score" in labs.used_names("scores = [f(t, p) for f in (f1_score, recall)]")
    assert "score" not in labs.used_names("score = 0.5\nprint(score)")


def test_check_prints_without_the_expected_value(capsys):
    def judge(context, x):
        return None if x == context["secret"] else "try again"

    module = type("M", (), {})
    ex = labs.Exercise("0.2", "secret", 1, ("x",), judge, "", context=("secret",))
    labs_exercise = labs.exercise
    try:
        labs.exercise = lambda _id: ex
        assert labs.check("0.2", {"x": 12345, "secret": 12345}) is True
        assert labs.check("0.2", {"x": 1, "secret": 12345}) is False
        assert labs.check("0.2", {"x": None, "secret": 12345}) is False
        with pytest.raises(NameError, match="run the chapter's cells above"):
            labs.check("0.2", {"x": 1})
    finally:
        labs.exercise = labs_exercise
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[PASS] Exercise 0.2: secret"
    assert out[1].startswith("[TRY AGAIN] Exercise 0.2") and "12345" not in out[1]
    assert out[2].startswith("[NOT YET] Exercise 0.2")
    del module


def test_digest_counts_equal_answers_as_one():
    assert labs.digest(3) == labs.digest(np.int64(3)) == labs.digest(torch.tensor(3))
    assert labs.digest(["Fine-tuning "]) == labs.digest(("fine-tuning",))
    assert labs.digest(3) != labs.digest(4) and labs.digest([True]) != labs.digest([False])


def test_close_reads_views_and_tensors_on_any_device():
    bgr = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)  # students flip channels with a view
    assert labs.close(bgr[..., ::-1], bgr[..., [2, 1, 0]])
    if torch.cuda.is_available():
        assert labs.close(torch.tensor([1.0, 2.0], device="cuda"), [1, 2])


def test_close_does_not_broadcast_or_read_strings():
    assert labs.close([1.0, 2.0], torch.tensor([1.0, 2.00001]))
    assert not labs.close([1.0, 1.0], 1.0)
    assert not labs.close(float("nan"), float("nan"))
    with pytest.raises(TypeError):
        labs.close("0.5", 0.5)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_exercise_is_declared_checked_and_tested(path):
    number = int(path.name[:2])
    chapter = nbformat.read(path, as_version=4)
    exercises = labs.exercises(number)
    assert len(exercises) >= 4
    assert [e.id for e in exercises] == [f"{number}.{k}" for k in range(1, len(exercises) + 1)]
    headings = [c.source for c in chapter.cells if c.source.startswith("### Exercise ")]
    assert len(headings) == len(exercises)
    code = [c for c in chapter.cells if c.cell_type == "code"]
    for ex in exercises:
        student = [c for c in code if f'passed = labs.check("{ex.id}", globals())' in c.source]
        solution = [c for c in code if f'assert labs.check("{ex.id}", globals())' in c.source]
        assert len(student) == 1 and len(solution) == 1, ex.id
        assert solution[0].metadata["tags"] == ["solution", "hide-input", "remove-output"]
        assert "solution" not in student[0].metadata.get("tags", [])
        assert not labs.used_names(solution[0].source) & set(ex.forbidden), ex.id
    tests = importlib.import_module(f"test_exercises_ch{number:02d}")
    assert tests.test_exercise.pytestmark[0].args[1] == [e.id for e in exercises]


def test_no_chapter_uses_the_old_checks():
    for path in CHAPTERS:
        text = path.read_text()
        for old in ("check_close", "check_equal", "check_shape", "check_true"):
            assert old not in text, f"{path.name} still calls checks.{old}"


def test_the_instructor_guide_lists_every_exercise_with_its_points():
    guide = (ROOT / "book/instructors.md").read_text()
    for path in CHAPTERS:
        number = int(path.name[:2])
        exercises = labs.exercises(number)
        total = sum(e.points for e in exercises)
        assert f"**Exercises** ({len(exercises)}, {total} points)" in guide, path.name
        for ex in exercises:
            assert f"| {ex.id} {ex.title} | {ex.points} |" in guide, ex.id
