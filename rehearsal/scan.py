"""Read executed chapters and list every output a reader of the real path must never see.

The rehearsal runs each chapter in ``cpu`` and ``full`` against format-exact stand-ins of the
real datasets and weights. If the real path works, no chapter falls back to its offline path,
so any of these in an output is a bug on the path users run:

- a loud notice that the offline path ran: ``OFFLINE STAND-IN``, ``RANDOM WEIGHTS``, ``NOT RUN``,
  or a dataset named as the shapes stand-in;
- an error or a traceback;
- a library warning (``UserWarning``, ``FutureWarning``, ``ConvergenceWarning``, a logged
  ``WARNING:``), such as open_clip's "QuickGELU mismatch".

Usage: ``python -m rehearsal.scan EXECUTED.ipynb ...``; exits 1 and lists the findings.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

FORBIDDEN = [
    ("offline notice", re.compile(r"OFFLINE STAND-IN|RANDOM WEIGHTS|NOT RUN\b")),
    ("shapes stand-in for a real dataset", re.compile(r"offline stand-in for \w+")),
    ("traceback", re.compile(r"Traceback \(most recent call last\)")),
    ("library warning", re.compile(r"\b[A-Z]\w*Warning\b|^WARNING:|QuickGELU mismatch", re.M)),
]


def output_texts(output: dict) -> list[str]:
    """Every text a reader could see in one cell output: streams, plain text, HTML, errors."""
    if output.get("output_type") == "stream":
        return ["".join(output.get("text", ""))]
    if output.get("output_type") == "error":
        return [f"{output.get('ename')}: {output.get('evalue')}\nTraceback (most recent call last)"]
    bundle = output.get("data", {})
    return ["".join(bundle[m]) for m in ("text/plain", "text/html", "text/markdown") if m in bundle]


def findings(notebook: Path) -> list[str]:
    """One line per forbidden output in an executed notebook: chapter, cell, what, the text."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    found = []
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            for what, pattern in FORBIDDEN:
                # The first representation that shows it (plain text before HTML) is enough.
                for text in output_texts(output):
                    match = pattern.search(text)
                    if match:
                        line = text[text.rfind("\n", 0, match.start()) + 1 :].split("\n")[0]
                        found.append(f"{Path(notebook).name} cell {index}: {what}: {line[:160]}")
                        break
    return found


def main(paths: list[str]) -> int:
    problems = [line for path in paths for line in findings(Path(path))]
    executed = sum(
        1 for p in paths for c in json.loads(Path(p).read_text())["cells"] if c.get("outputs")
    )
    if not executed:
        print("rehearsal scan: no outputs at all; were the notebooks executed?")
        return 1
    for line in problems:
        print(line)
    print(f"rehearsal scan: {len(paths)} notebook(s), {len(problems)} finding(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
