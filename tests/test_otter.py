"""Otter-Grader's own autograder grades a chapter exported by book/make_otter.py: full marks
for the solutions, none for a wrong submission."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_otter", ROOT / "book/make_otter.py")
make_otter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_otter)
OTTER = Path(sys.executable).with_name("otter")


def test_every_exercise_becomes_a_question_with_a_hidden_test():
    chapter = nbformat.read(ROOT / "notebooks/01_input_pipeline.ipynb", as_version=4)
    master = make_otter.master(chapter, 1)
    raw = [c.source for c in master.cells if c.cell_type == "raw"]
    questions = [s for s in raw if s.startswith("# BEGIN QUESTION")]
    assert len(questions) == 5 and "name: q1_4\npoints: 2" in questions[3]
    assert raw.count("# BEGIN TESTS") == raw.count("# END QUESTION") == 5
    tests = [c.source for c in master.cells if "labs.review(" in c.source]
    assert len(tests) == 5 and all("hidden: true" in t for t in tests)


def _score(autograder: Path, notebook: Path, out: Path) -> float:
    out.mkdir()
    env = dict(os.environ, IMGCLS_PROFILE="smoke", TQDM_DISABLE="1")
    subprocess.run(
        [str(OTTER), "run", "--no-logo", "-a", str(autograder), "-o", str(out), str(notebook)],
        check=True,
        capture_output=True,
        env=env,
    )
    results = json.loads((out / "results.json").read_text())
    return sum(t["score"] for t in results["tests"] if "score" in t)


@pytest.mark.slow
def test_otter_autograder_scores_a_correct_and_a_wrong_submission(tmp_path):
    make_otter.export(ROOT / "notebooks/01_input_pipeline.ipynb", tmp_path / "lab01")
    dist = tmp_path / "lab01/dist"
    (autograder,) = (dist / "autograder").glob("lab01-autograder_*.zip")
    student = nbformat.read(dist / "student/lab01.ipynb", as_version=4)
    assert "(200 / 255" not in json.dumps(student.cells), "the student's copy has a solution"

    assert _score(autograder, dist / "autograder/lab01.ipynb", tmp_path / "right") == 7

    # A wrong answer (the pixel not scaled to [0, 1]), and PASS printed by hand.
    for cell in student.cells:
        if cell.source.startswith("normalised_red = None"):
            cell.source = 'normalised_red = (200 - 0.485) / 0.229\nprint("[PASS] Exercise 1.1")'
    wrong = tmp_path / "wrong.ipynb"
    nbformat.write(student, wrong)
    assert _score(autograder, wrong, tmp_path / "wrong") == 0
