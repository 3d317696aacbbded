"""Time ``imgcls-grade`` on a class of crafted submissions of one chapter.

    .venv/bin/python -m rehearsal.grade_class --chapter 1 --count 30 --cell-timeout 60

The class goes round every kind of submission in ``rehearsal/submissions.py`` (correct,
partly correct, printed PASS, redefined checks, wrong types, a missing variable, an endless
loop, a kernel that dies, a forbidden helper, invalid JSON, a renamed file, the wrong
chapter). It prints the grader's own output and the total time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imgcls_helpers.grade import chapter_notebook
from rehearsal.submissions import write_class


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", type=int, default=1)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--cell-timeout", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imgcls-class-"))
    write_class(chapter_notebook(args.chapter), args.chapter, work / "submissions", args.count)
    start = time.perf_counter()
    command = [sys.executable, "-m", "imgcls_helpers.grade", str(work / "submissions")]
    command += ["--chapter", str(args.chapter), "--out", str(work / "grades.csv")]
    command += ["--cell-timeout", str(args.cell_timeout), "--jobs", str(args.jobs)]
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    print(f"{args.count} submissions of chapter {args.chapter}, key included: {seconds:.0f} s")


if __name__ == "__main__":
    main()
