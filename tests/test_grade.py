"""imgcls-grade: the pieces, and a whole class of crafted chapter 1 submissions."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from imgcls_helpers import grade, labs
from rehearsal import submissions

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_1 = ROOT / "notebooks/01_input_pipeline.ipynb"


def test_the_handout_drops_solutions_and_their_notes():
    chapter = nbformat.read(CHAPTER_1, as_version=4)
    lab = grade.handout(chapter)
    assert not [c for c in lab.cells if "solution" in c.metadata.get("tags", [])]
    assert not [c for c in lab.cells if c.source.startswith(grade.SOLUTION_NOTE)]
    assert len(lab.cells) == len(chapter.cells) - 2 * len(labs.exercises(1))


def test_student_code_is_what_differs_from_the_handout_under_the_exercise():
    chapter = nbformat.read(CHAPTER_1, as_version=4)
    reference = grade.handout(chapter)
    first, second = labs.exercises(1)[:2]
    done = submissions.solved(chapter)
    mine = grade.student_code(done, reference, first)
    assert len(mine) == 1 and "200 / 255" in mine[0]
    assert grade.student_code(reference, reference, first) == []
    # an answer computed in a cell far from its exercise still counts as the student's code
    done.cells.insert(10, nbformat.v4.new_code_cell("small = data.eval_transforms(160)(x)"))
    assert any("eval_transforms" in s for s in grade.student_code(done, reference, second))
    assert not any("eval_transforms" in s for s in grade.student_code(done, reference, first))


@pytest.mark.parametrize(
    ("status", "message"), [("kernel died", "the kernel died"), ("invalid notebook", "not JSON")]
)
def test_a_broken_submission_gets_its_status_on_every_exercise(status, message):
    rows = grade._rows("ann", 1, {"status": status, "message": message, "verdicts": []})
    assert [r["exercise"] for r in rows] == [e.id for e in labs.exercises(1)]
    assert {(r["status"], r["message"], r["points"]) for r in rows} == {(status, message, 0)}


EXPECTED = {  # student: status of exercises 1.1 ... 1.5
    "correct": ["correct"] * 5,
    "renamed": ["correct"] * 5,
    "endless_loop": ["correct"] * 5,  # the loop is interrupted, the cells after it run
    "partly_correct": ["correct", "not attempted", "correct", "not attempted", "correct"],
    "printed_pass": ["not attempted"] * 5,
    "redefined_checks": ["incorrect"] * 5,
    "wrong_types": ["incorrect"] * 5,
    "missing_variable": ["missing"] + ["correct"] * 4,
    "forbidden_helper": ["forbidden call"] + ["correct"] * 4,
    "kernel_dies": ["kernel died"] * 5,
    "invalid_json": ["invalid notebook"] * 5,
    "wrong_chapter": ["wrong chapter"] * 5,
}


@pytest.mark.slow
def test_grading_a_class_of_crafted_submissions(tmp_path):
    folder = tmp_path / "submissions"
    written = submissions.write_class(CHAPTER_1, 1, folder)
    assert len(written) == len(EXPECTED)
    out = tmp_path / "grades.csv"
    command = [sys.executable, "-m", "imgcls_helpers.grade", str(folder), "--chapter", "1"]
    command += ["--out", str(out), "--cell-timeout", "45", "--jobs", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out) as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == list(grade.FIELDS)
    got = {}
    for row in rows:
        got.setdefault(row["student"], []).append(row["status"])
        assert row["chapter"] == "1"
        if row["status"] != "correct":
            assert row["points"] == "0" and row["message"]
    assert got == EXPECTED
    points = {r["student"]: 0 for r in rows}
    for row in rows:
        points[row["student"]] += int(row["points"])
    assert points["correct"] == points["renamed"] == sum(e.points for e in labs.exercises(1))
    feedback = (tmp_path / "grades" / "endless_loop.md").read_text()
    assert "KeyboardInterrupt" in feedback or "CellTimeoutError" in feedback
    assert sorted(p.stem for p in (tmp_path / "grades").glob("*.md")) == sorted(EXPECTED)
