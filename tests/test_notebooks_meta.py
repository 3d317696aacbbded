"""Checks of the chapter notebooks as files: what nbmake (which runs them) cannot see.

Every chapter is in the book's table of contents, is stored without outputs, follows the
chapter conventions (objectives first, exercises last, hidden solutions), and installs the
helpers in Colab from the one repository URL set in book/_config.yml.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_chapters_and_the_toc_lists_exactly_them():
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    listed = {
        entry["file"]
        for part in toc["parts"]
        for entry in part["chapters"]
        if entry["file"].startswith("notebooks/")
    }
    assert NOTEBOOKS, "no chapter notebooks found"
    assert listed == {f"notebooks/{p.stem}" for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    for i, cell in enumerate(cells(path)):
        if cell["cell_type"] == "code":
            assert not cell["outputs"], f"{path.name} cell {i} has outputs"
            assert cell["execution_count"] is None, f"{path.name} cell {i} has a count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_conventions(path):
    chapter = cells(path)
    markdown = [source(c) for c in chapter if c["cell_type"] == "markdown"]
    assert chapter[0]["cell_type"] == "markdown" and source(chapter[0]).startswith("# ")
    assert "learning objectives" in markdown[0].lower(), "objectives belong in the first cell"
    assert any(re.search(r"^#+ .*exercises", m, re.I | re.M) for m in markdown)
    code = [c for c in chapter if c["cell_type"] == "code"]
    assert any("describe_run(" in source(c) for c in code), "the profile banner is missing"
    solutions = [c for c in code if "solution" in c["metadata"].get("tags", [])]
    assert solutions, "exercises need solution cells"
    for cell in solutions:
        assert "hide-input" in cell["metadata"]["tags"], "solutions are hidden in the book"
        assert "assert " in source(cell), "a solution asserts that its check passes"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_install_uses_the_repository_url_from_the_book_config(path):
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    url = config["repository"]["url"]
    installs = [
        source(c) for c in cells(path) if "pip install" in source(c) and "git+" in source(c)
    ]
    assert installs, f"{path.name} has no Colab install cell"
    for text in installs:
        found = re.findall(r"git\+(\S+?)[\"'\s]", text)
        assert found == [url], f"{path.name} installs from {found}, not {url}: run make sync-url"
