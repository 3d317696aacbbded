"""Crafted lab submissions, to test ``imgcls-grade`` on what a class really hands in.

Each function turns a chapter (the notebook with its solutions) into what one kind of
student would submit: the correct work, part of it, and the ways a submission breaks
(:data:`KINDS`). ``write_class`` writes a folder of them; ``tests/test_grade.py`` grades one
such folder and checks each verdict, and ``rehearsal/grade_class.py`` times a class of 30.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat

from imgcls_helpers import labs
from imgcls_helpers.grade import SOLUTION_NOTE, handout


def _exercise_of(cells, index: int) -> int | None:
    """The number k of the '### Exercise k:' heading above cell ``index``."""
    for cell in reversed(cells[:index]):
        text = cell.source.lstrip()
        if cell.cell_type == "markdown" and text.startswith("### Exercise "):
            return int(text.split()[2].rstrip(":"))
        if cell.cell_type == "markdown" and text.startswith("## "):
            return None
    return None


def solved(chapter: nbformat.NotebookNode, numbers: set[int] | None = None):
    """The handout with the student's own answer cells for exercises ``numbers`` (all by
    default): each solution becomes an ordinary cell below the exercise's student cell."""
    result = nbformat.from_dict(chapter)
    cells = []
    for index, cell in enumerate(chapter.cells):
        if cell.cell_type == "markdown" and cell.source.startswith(SOLUTION_NOTE):
            continue
        if "solution" in cell.metadata.get("tags", []):
            if numbers is not None and _exercise_of(chapter.cells, index) not in numbers:
                continue
            cell = nbformat.from_dict(cell)
            cell.metadata["tags"] = []
            cell.source = cell.source.replace("assert labs.check(", "labs.check(")
        cells.append(cell)
    result.cells = cells
    return result


def _insert_after_exercise(notebook, number: int, source: str, *, before_solution=False):
    """Add a code cell at the end of exercise ``number`` (or just after its student cell)."""
    cells = notebook.cells
    start = next(
        i
        for i, c in enumerate(cells)
        if c.cell_type == "markdown" and c.source.lstrip().startswith(f"### Exercise {number}:")
    )
    end = start + 1
    while end < len(cells) and not (
        cells[end].cell_type == "markdown"
        and cells[end].source.lstrip().startswith(("#", "**Going"))
    ):
        end += 1
    position = start + 2 if before_solution else end
    cells.insert(position, nbformat.v4.new_code_cell(source))
    return notebook


def _answers(chapter_number: int) -> list[str]:
    return [n for e in labs.exercises(chapter_number) for n in e.answers]


def correct(chapter, number):
    return solved(chapter)


def partly_correct(chapter, number):
    """Only the odd-numbered exercises done."""
    count = len(labs.exercises(number))
    return solved(chapter, {k for k in range(1, count + 1) if k % 2})


def printed_pass(chapter, number):
    """Nothing solved, but PASS printed for every exercise, and ``passed = True``."""
    notebook = handout(chapter)
    for exercise in labs.exercises(number):
        k = int(exercise.id.split(".")[1])
        _insert_after_exercise(
            notebook, k, f'print("[PASS] Exercise {exercise.id}: {exercise.title}")\npassed = True'
        )
    return notebook


def redefined_checks(chapter, number):
    """Wrong answers, with ``labs`` and ``checks`` replaced by functions that always pass."""
    notebook = handout(chapter)
    cheat = (
        "import imgcls_helpers.labs, imgcls_helpers.checks\n"
        "imgcls_helpers.labs.check = lambda *args, **kwargs: True\n"
        "imgcls_helpers.labs.verdict = lambda *args, **kwargs: None\n"
        "labs = checks = imgcls_helpers.labs\n"
        + "\n".join(f"{name} = 0" for name in _answers(number))
        + '\nprint("[PASS]")'
    )
    for exercise in labs.exercises(number):
        _insert_after_exercise(notebook, int(exercise.id.split(".")[1]), cheat)
    return notebook


def wrong_types(chapter, number):
    """Every answer set to a string."""
    notebook = handout(chapter)
    for exercise in labs.exercises(number):
        text = "\n".join(f'{name} = "my answer"' for name in exercise.answers)
        _insert_after_exercise(notebook, int(exercise.id.split(".")[1]), text)
    return notebook


def missing_variable(chapter, number):
    """The correct work, but the first exercise's answer cells deleted."""
    notebook = solved(chapter)
    first = labs.exercises(number)[0]
    notebook.cells = [
        c
        for c in notebook.cells
        if not (c.cell_type == "code" and any(f"{n} =" in c.source for n in first.answers))
    ]
    return notebook


def endless_loop(chapter, number):
    """The correct work, except that the first exercise's cell never finishes."""
    notebook = solved(chapter)
    return _insert_after_exercise(notebook, 1, "while True:\n    pass", before_solution=True)


def kernel_dies(chapter, number):
    """The correct work, with a cell that kills Python in the middle."""
    notebook = solved(chapter)
    return _insert_after_exercise(notebook, 2, "import os\n\nos._exit(1)", before_solution=True)


def forbidden_helper(chapter, number):
    """The correct work, plus a call to a helper that an exercise forbids, in that exercise."""
    notebook = solved(chapter)
    for exercise in labs.exercises(number):
        if exercise.forbidden:
            call = f"try:\n    {exercise.forbidden[0]}()\nexcept Exception:\n    pass"
            return _insert_after_exercise(notebook, int(exercise.id.split(".")[1]), call)
    return notebook


KINDS: dict[str, Callable] = {
    "correct": correct,
    "partly_correct": partly_correct,
    "printed_pass": printed_pass,
    "redefined_checks": redefined_checks,
    "wrong_types": wrong_types,
    "missing_variable": missing_variable,
    "endless_loop": endless_loop,
    "kernel_dies": kernel_dies,
    "forbidden_helper": forbidden_helper,
}


def write_class(chapter_path: Path, number: int, folder: Path, count: int | None = None):
    """Write one submission of every kind to ``folder``, plus three that are not a notebook
    of this chapter: invalid JSON, a renamed file, and another chapter's handout. With
    ``count``, write that many, going round the kinds (a class of 30 for timing)."""
    folder.mkdir(parents=True, exist_ok=True)
    chapter = nbformat.read(chapter_path, as_version=4)
    other = sorted(chapter_path.parent.glob("[0-9][0-9]_*.ipynb"))
    other = next(p for p in other if p != chapter_path)
    kinds = [*KINDS, "invalid_json", "renamed", "wrong_chapter"]
    written = []
    for index in range(count or len(kinds)):
        kind = kinds[index % len(kinds)]
        name = f"{kind}_{index}" if count else kind
        if kind == "invalid_json":
            path = folder / f"{name}.ipynb"
            path.write_text('{"cells": [ this is not JSON')
        elif kind == "renamed":
            path = folder / f"{name}.ipynb (1).txt"
            nbformat.write(correct(chapter, number), path)
        elif kind == "wrong_chapter":
            path = folder / f"{name}.ipynb"
            nbformat.write(handout(nbformat.read(other, as_version=4)), path)
        else:
            path = folder / f"{name}.ipynb"
            nbformat.write(KINDS[kind](chapter, number), path)
        written.append(path)
    return written
