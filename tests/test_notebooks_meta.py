"""Checks of the chapter notebooks as files: what nbmake (which runs them) cannot see.

Every chapter is in the book's table of contents, is stored without outputs, follows the
chapter conventions (objectives first, exercises last, hidden solutions), and installs the
helpers in Colab from the one repository URL set in book/_config.yml.
"""

from __future__ import annotations

import ast
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


def fit_calls(path: Path) -> list[tuple[int, ast.Call]]:
    """Every call of something named ``fit`` in a chapter's code: ``train.fit``,
    ``recipe.fit``, a scikit-learn ``.fit``; with its cell number."""
    found = []
    for i, cell in enumerate(cells(path)):
        if cell["cell_type"] != "code":
            continue
        # IPython lines (!pip, %matplotlib) are not Python: a `pass` keeps their indentation
        code = "\n".join(
            line[: len(line) - len(line.lstrip())] + "pass"
            if line.lstrip().startswith(("!", "%"))
            else line
            for line in source(cell).splitlines()
        )
        for node in ast.walk(ast.parse(code)):
            func = getattr(node, "func", None)
            name = getattr(func, "attr", getattr(func, "id", None))
            if isinstance(node, ast.Call) and name == "fit":
                found.append((i, node))
    return found


def names_in(node: ast.AST) -> set[str]:
    """The variable and attribute names an expression is built from."""
    return {
        getattr(n, "id", None) or getattr(n, "attr", None)
        for n in ast.walk(node)
        if isinstance(n, ast.Name | ast.Attribute)
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_chapter_selects_on_the_test_split(path):
    """fit() keeps the epoch that scores best on its val_loader, so a chapter that hands it
    test data reports the best of many test scores; a scikit-learn ``fit`` on test data
    trains on it. At run time train.fit() refuses loaders labelled as the test split; this
    catches an unlabelled one, passed to any ``fit``, by its name."""
    for i, call in fit_calls(path):
        for argument in [*call.args, *(k.value for k in call.keywords)]:
            suspicious = sorted(n for n in names_in(argument) if "test" in n.lower())
            assert not suspicious, (
                f"{path.name} cell {i}: {ast.unparse(call)[:120]} selects on test data "
                f"({', '.join(suspicious)})"
            )


def test_the_test_split_check_catches_a_test_loader(tmp_path):
    """The check above, on a chapter that selects on the test split, and on one that does not."""
    chapter = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    for code, bad in [
        ("h = train.fit(model, train_loader, val_loader=test_loader)", True),
        ("h = recipe.fit(model, loaders.train, val_loader=loaders.test, epochs=2)", True),
        ("svm.fit(test_features, test_labels)", True),
        ("h = train.fit(model, train_loader, val_loader=val_loader)\n!ls", False),
    ]:
        chapter["cells"] = [{"cell_type": "code", "source": code, "metadata": {}, "outputs": []}]
        path = tmp_path / "99_example.ipynb"
        path.write_text(json.dumps(chapter))
        if bad:
            with pytest.raises(AssertionError, match="selects on test data"):
                test_no_chapter_selects_on_the_test_split(path)
        else:
            test_no_chapter_selects_on_the_test_split(path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_chapter_ends_with_its_references(path):
    """The last cell is a References section that links to what the chapter draws on."""
    last = cells(path)[-1]
    text = source(last)
    assert last["cell_type"] == "markdown" and re.match(r"#+ .*references", text, re.I), (
        f"{path.name}: the last cell should be the References section"
    )
    assert len(re.findall(r"\]\(https?://", text)) >= 3, f"{path.name}: too few links"
