"""The GitHub Actions workflows, for what would break CI or the published book without a sound.

ci.yml must run .ci/run (what the project's own CI runs) on every push and pull request.
publish.yml must build in a profile that downloads (GitHub sets CI=true, which alone means the
offline smoke profile), cache the folders the libraries really download into, check the pages
before they are uploaded, and deploy from the book's branch with the Pages permissions. The page
check, .github/scripts/check_site.py, is tried on pages shaped like the ones myst-nb writes.
"""

from __future__ import annotations

import contextlib
import html
import importlib.util
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from imgcls_helpers import config

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on:` as True
    return workflow


def _steps(job: dict, uses: str) -> list[dict]:
    return [step for step in job["steps"] if step.get("uses", "").split("@")[0] == uses]


def _position(job: dict, predicate) -> int:
    found = [i for i, step in enumerate(job["steps"]) if predicate(step)]
    assert len(found) == 1, f"expected one such step, found {len(found)}"
    return found[0]


def _check_site():
    path = ROOT / ".github" / "scripts" / "check_site.py"
    spec = importlib.util.spec_from_file_location("check_site", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- ci.yml ----------------------------------------------------------------------------------


def test_ci_runs_the_ci_script_on_every_push_and_pull_request():
    workflow = _load("ci.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    assert not (workflow["on"]["push"] or {}).get("branches"), "every branch, not some"
    (job,) = workflow["jobs"].values()
    assert any(step.get("run", "").strip() == "bash .ci/run" for step in job["steps"])
    (python,) = _steps(job, "actions/setup-python")
    assert str(python["with"]["python-version"]) == "3.11"  # the README's one requirement


# -- publish.yml: the profile ----------------------------------------------------------------


def test_publish_builds_a_downloading_profile_although_github_sets_ci(monkeypatch):
    workflow = _load("publish.yml")
    build = workflow["jobs"]["build"]
    profile = build["env"]["IMGCLS_PROFILE"]
    # Without it, CI=true (GitHub sets it) and the Makefile's default both give `smoke`.
    assert "'cpu'" in profile and "smoke" not in profile
    choice = workflow["on"]["workflow_dispatch"]["inputs"]["profile"]
    assert choice["options"] == ["cpu", "full"] and choice["default"] == "cpu"
    runs = [step.get("run", "") for step in build["steps"]]
    assert any("rehearsal/chapters notebooks" in run for run in runs)  # in IMGCLS_PROFILE
    # ...and the helpers agree that a named profile wins over CI=true.
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("IMGCLS_PROFILE", "cpu")
    assert config.get_profile() == "cpu" and not config.is_offline()


# -- publish.yml: the download cache ---------------------------------------------------------


def _default_download_dirs(home: Path, monkeypatch) -> dict[str, Path]:
    """Where datasets, torchvision weights and open_clip's Hugging Face weights go by default."""
    for name in ("IMGCLS_DATA", "TORCH_HOME", "XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # as if torch.hub.set_dir was never called
    env = dict(os.environ)
    code = "from huggingface_hub import constants; print(constants.HF_HUB_CACHE)"
    hf_hub = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        "datasets": config.data_dir(),
        "torchvision weights": Path(torch.hub.get_dir()) / "checkpoints",
        "open_clip weights": Path(hf_hub),
    }


def test_publish_caches_the_folders_the_libraries_download_into(tmp_path, monkeypatch):
    workflow = _load("publish.yml")
    build = workflow["jobs"]["build"]
    (restore,) = _steps(build, "actions/cache/restore")
    (save,) = _steps(build, "actions/cache/save")
    # The cache's version hashes its paths: a save with other paths is never restored.
    assert restore["with"]["path"] == save["with"]["path"]
    assert restore["with"]["restore-keys"], "without a prefix key nothing is ever restored"
    # The defaults below only hold while no step moves the folders.
    for scope in [workflow, build, *build["steps"]]:
        moved = {"IMGCLS_DATA", "TORCH_HOME", "XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE"}
        assert not moved & set(scope.get("env") or {})
    cached = [
        Path(line.replace("~", str(tmp_path), 1))
        for line in restore["with"]["path"].split()
        if line.strip()
    ]
    for what, folder in _default_download_dirs(tmp_path, monkeypatch).items():
        assert any(folder == c or c in folder.parents for c in cached), f"{what}: {folder}"


# -- publish.yml: check, upload, deploy ------------------------------------------------------


def test_publish_checks_the_pages_before_uploading_them():
    build = _load("publish.yml")["jobs"]["build"]
    download = _position(build, lambda step: "load_dataset" in step.get("run", ""))
    chapters = _position(build, lambda step: "rehearsal/chapters" in step.get("run", ""))
    make = _position(build, lambda step: "make site" in step.get("run", ""))
    check = _position(build, lambda step: "check_site.py" in step.get("run", ""))
    upload = _position(build, lambda step: "upload-pages-artifact" in step.get("uses", ""))
    # two chapters run at a time, so the datasets are downloaded once before them
    assert download < chapters < make < check < upload
    step = build["steps"][check]
    assert "$IMGCLS_PROFILE" in step["run"]  # checked against the profile that was built
    assert not step.get("continue-on-error") and "always()" not in str(step.get("if", ""))
    uploaded = ROOT / build["steps"][upload]["with"]["path"]
    assert uploaded == _check_site().SITE  # the site that was checked is the one uploaded


def test_publish_deploys_the_books_branch_with_pages_permissions():
    workflow = _load("publish.yml")
    book = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    branch = book["repository"]["branch"]  # the launch buttons open notebooks from it
    assert workflow["on"]["push"]["branches"] == [branch]
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build" and f"refs/heads/{branch}" in deploy["if"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert _steps(deploy, "actions/deploy-pages")
    assert workflow["concurrency"]["group"] == "pages"


# -- .github/scripts/check_site.py -----------------------------------------------------------


def _stream(text: str) -> str:
    return (
        '<div class="output stream highlight-myst-ansi notranslate"><div class="highlight">'
        f"<pre><span></span>{html.escape(text)}</pre></div>\n</div>\n"
    )


def _box(message: str) -> str:
    """A notice as a chapter displays it in the book: a warning admonition, titled by its label."""
    return (
        '<div class="output text_html"><div class="admonition warning imgcls-notice">\n'
        f'<p class="admonition-title">{message.split(":")[0]}</p>\n'
        f"<p>{html.escape(message, quote=False)}</p>\n</div></div>\n"
    )


def _ruled(message: str) -> str:
    """A notice printed as text (outside a notebook kernel), wrapped between rules of '!'."""
    return _stream("\n".join(["!" * 78, *textwrap.wrap(message, 78), "!" * 78]))


def _page(outputs: list[str], source: str) -> str:
    """A chapter page as myst-nb writes it: the cell's highlighted source, then its outputs."""
    return (
        '<div class="cell docutils container">\n<div class="cell_input docutils container">\n'
        '<div class="highlight-ipython3 notranslate"><div class="highlight"><pre><span></span>'
        f"{html.escape(source)}</pre></div>\n</div>\n</div>\n"
        f'<div class="cell_output docutils container">\n{"".join(outputs)}</div>\n</div>\n'
    )


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Writes two chapter pages that start with the real banner of `profile`; the second one
    then shows `outputs`. Returns the site and its toc."""
    toc = tmp_path / "_toc.yml"
    toc.write_text("root: intro\nchapters:\n- file: notebooks/01_a\n- file: notebooks/02_b\n")
    (tmp_path / "html" / "notebooks").mkdir(parents=True)

    def write(profile="cpu", outputs=(), source="print('hello')"):
        monkeypatch.setenv("IMGCLS_PROFILE", profile)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            config.describe_run("CIFAR-10")
        banner = _stream(out.getvalue())
        for name, shown in [("01_a", [banner]), ("02_b", [banner, *outputs])]:
            page = tmp_path / "html" / "notebooks" / f"{name}.html"
            page.write_text(_page(shown, source))
        return tmp_path / "html", toc

    return write


FALLBACKS = (
    "OFFLINE STAND-IN: cifar10 is not available (download failed: URLError). Using 'shapes'",
    "RANDOM WEIGHTS: the pretrained weights ResNet18_Weights.IMAGENET1K_V1 are not available",
    "NOT RUN: the Flowers-102 experiment needs the 'cpu' or 'full' profile and the dataset",
    "OFFLINE STAND-IN CLIP: the CLIP rows use a tiny CLIP trained in this notebook",
)


def test_site_check_reads_the_outputs_not_the_source_code(site):
    # Chapters hold their notices as strings in their source, which the pages show too.
    source = "\n".join(f'config.announce("{notice}")' for notice in FALLBACKS)
    html_dir, toc = site("cpu", [_stream("top-1 accuracy: 93.1%")], source=source)
    assert _check_site().check(html_dir, toc, "cpu") == []


@pytest.mark.parametrize("show", [_box, _ruled], ids=["box", "text"])
@pytest.mark.parametrize("notice", FALLBACKS, ids=["data", "weights", "not-run", "clip"])
@pytest.mark.parametrize("profile", ["cpu", "full"])
def test_site_check_stops_a_site_that_fell_back_offline(site, profile, notice, show):
    html_dir, toc = site(profile, [show(notice)])
    problems = _check_site().check(html_dir, toc, profile)
    assert len(problems) == 1 and "02_b.html" in problems[0]
    assert f": {notice[:40]}" in problems[0]  # quotes the notice itself, not its box's title


def test_site_check_wants_every_chapter_executed_in_the_profile_published(site):
    check_site = _check_site()
    html_dir, toc = site("smoke")  # e.g. IMGCLS_PROFILE lost: GitHub's CI=true means smoke
    problems = check_site.check(html_dir, toc, "cpu")
    assert len(problems) == 2 and all("smoke profile, not cpu" in p for p in problems)
    html_dir, toc = site("cpu")
    (html_dir / "notebooks" / "01_a.html").write_text(_page([], "x = 1"))  # not executed
    (html_dir / "notebooks" / "02_b.html").unlink()
    problems = check_site.check(html_dir, toc, "cpu")
    assert "no run banner" in problems[0] and "was not built" in problems[1]
    assert check_site.main(["--profile", "cpu", "--site", str(html_dir), "--toc", str(toc)]) == 1
    html_dir, toc = site("full")
    assert check_site.main(["--profile", "full", "--site", str(html_dir), "--toc", str(toc)]) == 0
