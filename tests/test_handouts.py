"""The lab handouts keep every exercise and its check, and lose every solution."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

from imgcls_helpers import grade

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
spec = importlib.util.spec_from_file_location("make_handouts", ROOT / "book/make_handouts.py")
make_handouts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_handouts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_handout_has_the_exercises_and_none_of_the_solutions(path):
    chapter = nbformat.read(path, as_version=4)
    lab = grade.handout(chapter)
    solutions = [c for c in chapter.cells if "solution" in c.metadata.get("tags", [])]
    assert solutions
    assert not [c for c in lab.cells if "solution" in c.metadata.get("tags", [])]
    assert not [c for c in lab.cells if c.source.startswith(grade.SOLUTION_NOTE)]
    checks = [c for c in chapter.cells if c.cell_type == "code" and "passed = " in c.source]
    assert checks and all(c in lab.cells for c in checks)
    assert len(lab.cells) < len(chapter.cells)
    for solution in solutions:  # a solution's answer never leaks through another cell
        assert solution not in lab.cells
    nbformat.validate(lab)


def test_main_writes_one_lab_per_chapter(tmp_path):
    make_handouts.main(tmp_path)
    written = sorted(p.name for p in tmp_path.glob("lab*.ipynb"))
    assert written == [f"lab{p.name[:2]}.ipynb" for p in NOTEBOOKS]
