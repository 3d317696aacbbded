"""The Python half of ``rehearsal/colab_bootstrap``: run and check the Colab install cell.

Each subcommand runs with the fresh "Colab" venv's own Python, so that what it reads
(installed distributions, torch) is that venv's:

- ``snapshot OUT.json``: every installed distribution, its version and when its files were
  installed (the mtime of its ``RECORD``), plus ``torch.__version__`` and
  ``torchvision.__version__`` as imported;
- ``compare BEFORE.json AFTER.json``: fails when a distribution that was there before was
  removed, changed version or was reinstalled; lists what was added;
- ``install-cell NOTEBOOK --url URL --to URL``: the chapter's Colab install cell, its own
  source, with ``git+URL`` replaced by ``git+TO``, run by IPython the way Colab runs it
  (``google.colab`` imported, ``%pip`` a magic); fails when pip did;
- ``installed-from DIST URL COMMIT``: the distribution was installed from that URL at that
  commit (pip's ``direct_url.json``);
- ``rewrite NOTEBOOK OUT --url URL --to URL``: a copy of the chapter with the same
  substitution in its install cell, to execute;
- ``execute NOTEBOOK --colab``: runs every cell with nbclient, in the notebook's folder, in
  a kernel of this Python; ``--colab`` makes ``google.colab`` importable-looking in the
  kernel (an IPython start-up file), so the chapter's Colab branches run as in Colab. Then
  it checks that the chapter's banner names the torch this process imports.

Nothing here is needed in Colab: it is the test bench only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

# The start-up file that makes a process look like Colab to ``"google.colab" in sys.modules``,
# which is the test the chapters and the helpers use. Only the key is added: the real
# ``google`` namespace package (protobuf, ...) stays importable.
FAKE_COLAB = """import sys, types
sys.modules.setdefault("google.colab", types.ModuleType("google.colab"))
"""


def _cells(notebook: Path) -> list[dict]:
    return json.loads(Path(notebook).read_text())["cells"]


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _install_cell_index(cells: list[dict]) -> int:
    """The one code cell that pip-installs the book from a git URL (as the tests define it)."""
    found = [
        i
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "code"
        and "pip install" in _source(cell)
        and "git+" in _source(cell)
    ]
    if len(found) != 1:
        sys.exit(f"expected one Colab install cell (pip install ... git+...), found {len(found)}")
    return found[0]


def _substituted(source: str, url: str, to: str) -> str:
    """``source`` with ``git+URL`` replaced by ``git+TO``; fails when the URL is not there."""
    pattern = re.compile(r"git\+" + re.escape(url.rstrip("/")) + r"(?:\.git)?/?(?=[\"'\s@#]|$)")
    new, count = pattern.subn(lambda _: "git+" + to, source)
    if count != 1:
        sys.exit(
            f"the install cell installs from git+{url} {count} times, not once; "
            f"has the cell changed?\n--- cell ---\n{source}"
        )
    return new


def snapshot(out: Path) -> None:
    dists = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        record = next((f for f in dist.files or [] if f.name == "RECORD"), None)
        mtime = os.stat(dist.locate_file(record)).st_mtime_ns if record else None
        dists[name.lower().replace("_", "-")] = {"version": dist.version, "record_mtime": mtime}
    imported = {}
    for module in ("torch", "torchvision"):
        try:
            imported[module] = __import__(module).__version__
        except Exception as error:  # reported, not raised
            imported[module] = f"not importable: {error!r}"
    out.write_text(json.dumps({"dists": dists, "imported": imported}, indent=1))
    print(f"torch {imported['torch']}, torchvision {imported['torchvision']}, {len(dists)} dists")


def compare(before_path: Path, after_path: Path) -> int:
    before, after = (json.loads(Path(p).read_text()) for p in (before_path, after_path))
    problems = []
    for name, old in sorted(before["dists"].items()):
        new = after["dists"].get(name)
        if new is None:
            problems.append(f"{name} {old['version']} was REMOVED")
        elif new["version"] != old["version"]:
            problems.append(f"{name} {old['version']} was REPLACED by {new['version']}")
        elif new["record_mtime"] != old["record_mtime"]:
            problems.append(f"{name} {old['version']} was REINSTALLED (same version)")
    for module, version in before["imported"].items():
        if after["imported"].get(module) != version:
            problems.append(
                f"import {module}: {version} before, {after['imported'].get(module)} after"
            )
    added = sorted(
        f"{n}-{d['version']}" for n, d in after["dists"].items() if n not in before["dists"]
    )
    print(f"added {len(added)}: {' '.join(added) or '(none)'}")
    for line in problems:
        print(f"FAIL: {line}")
    print(
        f"torch {before['imported']['torch']} -> {after['imported']['torch']}, "
        f"torchvision {before['imported']['torchvision']} -> {after['imported']['torchvision']}: "
        + ("CHANGED" if problems else f"kept ({len(before['dists'])} dists untouched)")
    )
    return 1 if problems else 0


def install_cell(notebook: Path, url: str, to: str) -> int:
    cells = _cells(notebook)
    source = _substituted(_source(cells[_install_cell_index(cells)]), url, to)
    print("--- the install cell, as run (URL substituted) ---")
    print(source)
    print("---")
    exec(FAKE_COLAB)  # this process is Colab now, as far as the cell can tell
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    start = time.perf_counter()
    result = shell.run_cell(source)
    seconds = time.perf_counter() - start
    exit_code = shell.user_ns.get("_exit_code")
    print(f"install cell: {seconds:.1f} s, pip exit code {exit_code}")
    if not result.success:
        print(f"FAIL: the cell raised {result.error_in_exec or result.error_before_exec!r}")
        return 1
    if exit_code is None:
        print("FAIL: the cell ran no %pip (is the google.colab guard still what it was?)")
        return 1
    return 0 if exit_code == 0 else 1


def installed_from(dist: str, url: str, commit: str) -> int:
    direct = json.loads(metadata.distribution(dist).read_text("direct_url.json") or "{}")
    got = (direct.get("url"), direct.get("vcs_info", {}).get("commit_id"))
    print(f"{dist} {metadata.version(dist)} installed from {got[0]} at {got[1]}")
    if got != (url, commit):
        print(f"FAIL: expected {url} at {commit}")
        return 1
    return 0


def rewrite(notebook: Path, out: Path, url: str, to: str) -> None:
    nb = json.loads(Path(notebook).read_text())
    cell = nb["cells"][_install_cell_index(nb["cells"])]
    cell["source"] = _substituted(_source(cell), url, to)
    out.write_text(json.dumps(nb, indent=1))


def execute(notebook: Path, colab: bool, timeout: int) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    if colab:
        ipython_dir = Path(tempfile.mkdtemp(prefix="ipython-colab-"))
        startup = ipython_dir / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-google-colab.py").write_text(FAKE_COLAB)
        os.environ["IPYTHONDIR"] = str(ipython_dir)  # the kernel inherits this environment
    # Only this venv's kernel: no user-wide kernelspec may stand in for it.
    os.environ["JUPYTER_DATA_DIR"] = tempfile.mkdtemp(prefix="jupyter-data-")
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(Path(notebook).parent)}},
    )
    start = time.perf_counter()
    status = 0
    try:
        client.execute()
    except CellExecutionError as error:
        print(f"FAIL: a cell raised:\n{str(error)[-3000:]}")
        status = 1
    seconds = time.perf_counter() - start
    nbformat.write(nb, notebook)
    print(f"executed {notebook.name}: {seconds:.1f} s")
    import torch

    texts = [
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        for o in cell.get("outputs", [])
    ]
    # %pip does not raise when pip fails: read what the install cell printed.
    install = nb.cells[_install_cell_index(nb.cells)]
    pip_said = "".join("".join(o.get("text", "")) for o in install.get("outputs", []))
    if colab and "ERROR" in pip_said:
        print(f"FAIL: pip failed in the chapter's install cell:\n{pip_said.strip()}")
        status = 1
    banner = next((t for t in texts if "versions:" in t), "")
    print(banner.strip() or "(no banner printed)")
    if f"torch {torch.__version__}," not in banner:
        print(f"FAIL: the banner does not name torch {torch.__version__}: another kernel ran")
        status = 1
    return status


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("snapshot").add_argument("out", type=Path)
    p = sub.add_parser("compare")
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    for name in ("install-cell", "rewrite"):
        p = sub.add_parser(name)
        p.add_argument("notebook", type=Path)
        if name == "rewrite":
            p.add_argument("out", type=Path)
        p.add_argument("--url", required=True, help="the repository URL the cell installs from")
        p.add_argument("--to", required=True, help="the URL to install from instead")
    p = sub.add_parser("installed-from")
    for arg in ("dist", "url", "commit"):
        p.add_argument(arg)
    p = sub.add_parser("execute")
    p.add_argument("notebook", type=Path)
    p.add_argument("--colab", action="store_true", help="google.colab in the kernel's modules")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    if args.command == "snapshot":
        snapshot(args.out)
        return 0
    if args.command == "compare":
        return compare(args.before, args.after)
    if args.command == "install-cell":
        return install_cell(args.notebook, args.url, args.to)
    if args.command == "installed-from":
        return installed_from(args.dist, args.url, args.commit)
    if args.command == "rewrite":
        rewrite(args.notebook, args.out, args.url, args.to)
        return 0
    return execute(args.notebook, args.colab, args.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
