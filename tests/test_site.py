"""On the site, a solution cell's code is folded away and its output is not there at all.

Builds a one-page Jupyter Book whose exercise uses the same cell tags as the chapters
(``tests/test_labs.py`` checks that every solution cell carries them), and reads the HTML.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from imgcls_helpers.grade import SOLUTION_NOTE

TAGS = ["solution", "hide-input", "remove-output"]


@pytest.mark.slow
def test_solution_output_is_removed_and_its_code_folded(tmp_path):
    page = nbformat.v4.new_notebook()
    page.cells = [
        nbformat.v4.new_markdown_cell("# A lab\n\n## Exercises\n\n### Exercise 1: add"),
        nbformat.v4.new_code_cell('answer = None\nprint("[NOT YET] Exercise 0.1")'),
        nbformat.v4.new_markdown_cell(f"{SOLUTION_NOTE} Try it first."),
        nbformat.v4.new_code_cell("answer = 1234 + 4321\nprint('the answer is', answer)"),
    ]
    page.cells[-1].metadata["tags"] = TAGS
    page.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(page, tmp_path / "lab.ipynb")
    (tmp_path / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: force\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: lab\n")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    subprocess.run(
        [str(jupyter_book), "build", str(tmp_path), "-W"], check=True, capture_output=True
    )
    html = (tmp_path / "_build/html/lab.html").read_text()
    assert "[NOT YET] Exercise 0.1" in html  # the student's cell ran and shows
    assert "5555" not in html and "the answer is 5555" not in html  # the solution's output is gone
    assert "4321" in html  # its code is still there for readers...
    folded = re.search(r'class="[^"]*tag_hide-input[^"]*"', html)
    assert folded, "...but folded away behind a toggle"
