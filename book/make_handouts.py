"""Write lab handouts: every chapter without its solutions, ready to give to students.

A chapter's exercises each have a student cell (the answer starts as ``None`` and
``labs.check`` prints NOT YET / TRY AGAIN / PASS) and a solution cell tagged ``solution``,
introduced by a short "**Solution.**" note. The handout (``imgcls_helpers.grade.handout``,
which the grader compares submissions with) keeps everything but those two, so the checks
still run for the students. Run ``make handouts``; the files go to ``handouts/labNN.ipynb``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from imgcls_helpers.grade import handout

ROOT = Path(__file__).resolve().parents[1]


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        chapter = nbformat.read(path, as_version=4)
        target = out_dir / f"lab{path.name[:2]}.ipynb"
        nbformat.write(handout(chapter), target)
        removed = len(chapter.cells) - len(nbformat.read(target, as_version=4).cells)
        print(f"{target}: {path.name} without {removed} solution cells")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "handouts")
