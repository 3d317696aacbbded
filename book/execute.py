"""Prepare the sources `make book` builds from: the book's pages, with every chapter executed.

Why not let jupyter-book execute the chapters? Its executor runs them one after another, and
each kernel's PyTorch takes every core, so on a 2-core machine the book took twice as long as
`make test`, which runs two chapters side by side with one thread each. This script runs them
the way `make test` does, then jupyter-book builds the site with its own execution off.

It mirrors what the toc and the config name (the pages, book/_toc.yml, book/_static, and
book/_config.yml with `execute_notebooks: "off"`) into book/_build/src, with the same paths, so
every page (and its Colab link to notebooks/NN_*.ipynb) is as before. Chapters are executed as
copies in book/_build/executed/PROFILE/, never in notebooks/; one runs again only when its
notebook, imgcls_helpers/, requirements.txt, pyproject.toml or the profile changed. A failing
chapter is named with its error, the others still run, and the script exits non-zero.

Usage: python book/execute.py [--jobs N]   (`make book`; N chapters at a time, default 2)
       python book/execute.py --no-execute (`make site`: the notebooks as stored, outputs and all)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "book" / "_build"
SRC = BUILD / "src"
# What a chapter's outputs depend on besides its own notebook and the profile.
INPUTS = ["imgcls_helpers", "requirements.txt", "pyproject.toml"]
# Seconds per chapter in smoke, measured under `make test`: longest first, so that the two
# workers finish together. After a build, the times it measured (times.json) are used instead.
SMOKE_SECONDS = {"01": 17, "02": 46, "03": 36, "04": 60, "05": 149}
SMOKE_SECONDS |= {"06": 56, "07": 27, "08": 36, "09": 80, "10": 106}
SMOKE_SECONDS |= {"11": 160, "12": 40}


def toc_pages(toc: dict) -> list[str]:
    """Every page the toc names, as paths without suffix (notebooks/01_input_pipeline)."""
    pages = [toc["root"]] if "root" in toc else []
    for key, value in toc.items():
        if key == "file":
            pages.append(value)
        for item in value if isinstance(value, list) else []:
            pages += toc_pages(item)
    return pages


def write_if_changed(path: Path, data: bytes) -> None:
    """Write only what changed, so that Sphinx reads again only the pages that did."""
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def digest(paths: list[Path], profile: str) -> str:
    sha = hashlib.sha256(profile.encode())
    for path in paths:
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts:
                sha.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes())
    return sha.hexdigest()


def execute(source: Path, target: Path, timeout: int) -> tuple[float, str | None]:
    """Run ``source`` in a kernel (in ``target``'s folder), save it with outputs to ``target``.

    Returns the seconds it took and, if it failed, the error as text (nbclient's errors do not
    all survive the trip back from a worker process)."""
    start = time.monotonic()
    notebook = nbformat.read(source, as_version=4)
    resources = {"metadata": {"path": str(target.parent)}}
    try:
        NotebookClient(notebook, timeout=timeout, resources=resources).execute()
    except Exception as error:  # a cell raised or timed out, or the kernel died
        return time.monotonic() - start, f"{type(error).__name__}: {error}"
    nbformat.write(notebook, target)
    return time.monotonic() - start, None


def run_chapters(chapters: list[Path], profile: str, timeout: int, jobs: int) -> dict[Path, Path]:
    """Execute the chapters that changed; the executed copy of each, or exit naming failures."""
    out = BUILD / "executed" / profile
    out.mkdir(parents=True, exist_ok=True)
    times_file = out / "times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    common = digest([ROOT / name for name in INPUTS], profile)
    keys = {c: hashlib.sha256(common.encode() + c.read_bytes()).hexdigest() for c in chapters}
    key_file = {c: out / f"{c.stem}.key" for c in chapters}
    done = [c for c in chapters if key_file[c].exists() and key_file[c].read_text() == keys[c]]
    stale = [c for c in chapters if c not in done or not (out / c.name).exists()]
    # Unknown chapters first (no idea how long they take), then the longest.
    stale.sort(key=lambda c: -times.get(c.stem, SMOKE_SECONDS.get(c.stem[:2], 10**6)))
    print(f"{len(chapters) - len(stale)} chapter(s) unchanged since they last ran ({profile})")
    if stale:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        # Kernels inherit this; two kernels with two threads each on two cores run much slower.
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (cores or 1) // jobs)))
        threads = os.environ["OMP_NUM_THREADS"]
        print(f"executing {len(stale)}, {jobs} at a time with {threads} thread(s) each:")
    start = time.monotonic()
    failed = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(execute, c, out / c.name, timeout): c for c in stale}
        for future in concurrent.futures.as_completed(running):
            chapter = running[future]
            name = chapter.relative_to(ROOT)
            seconds, error = future.result()
            if error:
                failed.append(name)
                key_file[chapter].unlink(missing_ok=True)
                print(f"FAILED after {seconds:.0f} s: {name}\n{error}", file=sys.stderr, flush=True)
                continue
            times[chapter.stem] = round(seconds, 1)
            key_file[chapter].write_text(keys[chapter])
            print(f"  {seconds:7.1f} s  {name}", flush=True)
    times_file.write_text(json.dumps(times, indent=1, sort_keys=True))
    if stale:
        print(f"chapters executed in {time.monotonic() - start:.0f} s")
    if failed:
        sys.exit(f"{len(failed)} chapter(s) failed: {', '.join(map(str, failed))}")
    return {c: out / c.name for c in chapters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="chapters at a time (default 2)")
    parser.add_argument("--no-execute", action="store_true", help="use the notebooks as stored")
    args = parser.parse_args()

    config_text = (ROOT / "book" / "_config.yml").read_text()
    config = yaml.safe_load(config_text)
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    pages = []
    for page in toc_pages(toc):
        found = [ROOT / f"{page}{suffix}" for suffix in (".md", ".ipynb")]
        found = [path for path in found if path.exists()]
        if not found:
            sys.exit(f"book/_toc.yml names {page}, which has no .md or .ipynb file")
        pages += found
    chapters = [page for page in pages if page.suffix == ".ipynb"]

    executed = {}
    if not args.no_execute:
        profile = os.environ.setdefault("IMGCLS_PROFILE", "smoke")  # the Makefile's default
        timeout = config["execute"]["timeout"]
        executed = run_chapters(chapters, profile, timeout, args.jobs)

    for page in pages:
        source = executed.get(page, page)
        write_if_changed(SRC / page.relative_to(ROOT), source.read_bytes())
    write_if_changed(SRC / "book" / "_toc.yml", (ROOT / "book" / "_toc.yml").read_bytes())
    for folder in config["sphinx"]["config"].get("html_static_path", []):
        for file in (ROOT / folder).rglob("*"):
            if file.is_file():
                write_if_changed(SRC / file.relative_to(ROOT), file.read_bytes())
    setting = '  execute_notebooks: "off"'
    lines = config_text.splitlines()
    lines = [setting if line.startswith("  execute_notebooks:") else line for line in lines]
    if setting not in lines:
        sys.exit("book/_config.yml: no `execute_notebooks:` line under `execute:` to turn off")
    write_if_changed(SRC / "book" / "_config.yml", "\n".join(lines + [""]).encode())


if __name__ == "__main__":
    main()
