"""Export every chapter as an Otter-Grader assignment, for courses on Gradescope or Colab.

Otter-Grader (https://otter-grader.readthedocs.io) reads a "master notebook": the chapter,
with each exercise marked as a question (``# BEGIN QUESTION``), its solution marked so that
the student's copy drops it, and hidden tests. ``otter assign`` turns that into the student's
notebook and an autograder zip for Gradescope, or for ``otter grade`` / ``otter run`` on a
machine of your own.

The hidden test of every question runs the book's own judge for that exercise
(:func:`imgcls_helpers.labs.check`), after reloading it, so that a student's notebook that
replaced ``labs.check`` gains nothing. Run ``make otter``; the masters go to
``otter/labNN/labNN.ipynb``, and ``otter assign`` writes ``otter/labNN/dist``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

from imgcls_helpers import labs
from imgcls_helpers.grade import SOLUTION_NOTE

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """\
# ASSIGNMENT CONFIG
name: lab{number:02d}
init_cell: false
check_all_cell: false
export_cell: false
run_tests: false
requirements: requirements.txt
generate:
  show_hidden: true
"""

TEST = '''\
""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
import importlib

import imgcls_helpers.exercises.ch{number:02d}
import imgcls_helpers.labs

# the book's own judges, not ones the notebook may have replaced
_ = importlib.reload(imgcls_helpers.exercises.ch{number:02d})
_ = importlib.reload(imgcls_helpers.labs)
_verdict = imgcls_helpers.labs.review("{id}", globals())
assert _verdict.status == "correct", f"{{_verdict.status}}: {{_verdict.message}}"
'''


def requirements() -> str:
    """What Gradescope installs before grading: the book's helpers (and so torch), from the
    repository named in book/_config.yml, the URL's one source (see sync_repository_url.py)."""
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    return f"imgcls-helpers @ git+{config['repository']['url']}\n"


def _raw(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_raw_cell(text)


def master(chapter: nbformat.NotebookNode, number: int) -> nbformat.NotebookNode:
    """The chapter in Otter's master-notebook format (v1): one question per exercise."""
    by_number = {int(e.id.split(".")[1]): e for e in labs.exercises(number)}
    cells = [_raw(CONFIG.format(number=number))]
    current = None

    def close_question():
        nonlocal current
        if current is not None:
            cells.extend(
                [
                    _raw("# BEGIN TESTS"),
                    nbformat.v4.new_code_cell(TEST.format(number=number, id=current.id)),
                    _raw("# END TESTS"),
                    _raw("# END QUESTION"),
                ]
            )
        current = None

    for cell in chapter.cells:
        text = cell.source.lstrip()
        if cell.cell_type == "markdown" and text.startswith("#"):
            close_question()
            if text.startswith("### Exercise "):
                current = by_number[int(text.split()[2].rstrip(":"))]
                name = f"q{current.id.replace('.', '_')}"
                cells.append(_raw(f"# BEGIN QUESTION\nname: {name}\npoints: {current.points}"))
        elif cell.cell_type == "markdown" and (
            text.startswith(SOLUTION_NOTE) or text.startswith("**Going further**")
        ):
            if text.startswith("**Going further**"):
                close_question()
            else:
                continue
        if "solution" in cell.metadata.get("tags", []) and cells[-1].cell_type == "code":
            # The student's cell becomes the question's prompt, and the solution replaces it
            # in the autograder's copy.
            student = cells.pop()
            cells += [_raw("# BEGIN PROMPT"), student, _raw("# END PROMPT")]
            solution = nbformat.v4.new_code_cell(
                f"# BEGIN SOLUTION NO PROMPT\n{cell.source}\n# END SOLUTION"
            )
            cells += [_raw("# BEGIN SOLUTION"), solution, _raw("# END SOLUTION")]
            continue
        cells.append(cell)
    close_question()
    result = nbformat.from_dict(chapter)
    result.cells = cells
    return result


def export(chapter_path: Path, out_dir: Path, *, assign: bool = True) -> Path:
    """Write the master notebook of one chapter to ``out_dir`` and run ``otter assign`` on
    it (into ``out_dir/dist``); return the master's path."""
    number = int(chapter_path.name[:2])
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"lab{number:02d}.ipynb"
    nbformat.write(master(nbformat.read(chapter_path, as_version=4), number), target)
    (out_dir / "requirements.txt").write_text(requirements())
    if assign:
        otter = Path(sys.executable).with_name("otter")
        subprocess.run(
            [str(otter), "assign", "--no-pdfs", target.name, "dist"], cwd=out_dir, check=True
        )
    return target


def main(out_dir: Path) -> None:
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        target = export(path, out_dir / f"lab{path.name[:2]}")
        print(f"{target}: {path.name} as an Otter-Grader assignment ({target.parent}/dist)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "otter")
