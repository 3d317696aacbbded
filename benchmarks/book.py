"""Each chapter in the smoke profile, executed as jupyter-book's executor does, with and
without ``OMP_NUM_THREADS=1``: seconds per chapter and in total.

Why: jupyter-book's executor runs the chapters one at a time through nbclient, with
PyTorch's threads left alone, while ``make test`` runs two kernels side by side with one
thread each. On a small shared machine unpinned threads can wait on each other; this
measures what pinning does to that one-at-a-time path. Each chapter runs in both
configurations back to back (the order alternates from chapter to chapter), in a fresh
kernel, with IMGCLS_PROFILE=smoke, TQDM_DISABLE=1 and CI=true. It takes 10 minutes or more,
so ``make bench`` runs it only when asked: ``make bench BENCH=book``. ``--quick`` runs a
one-cell notebook instead of the chapters, to check the machinery.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .timing import interleaved, medians, parser, write_results

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SMOKE = {"IMGCLS_PROFILE": "smoke", "TQDM_DISABLE": "1", "CI": "true"}


def kernel_env(threads: str | None) -> dict[str, str]:
    """This process's environment plus the smoke settings, with OMP_NUM_THREADS set or not."""
    env = {**os.environ, **SMOKE}
    env.pop("OMP_NUM_THREADS", None)
    return env if threads is None else {**env, "OMP_NUM_THREADS": threads}


def execute(notebook: nbformat.NotebookNode, env: dict[str, str]) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel started in notebooks/, as jupyter-book does."""
    client = NotebookClient(
        nbformat.from_dict(notebook),
        timeout=3600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    return client.execute(env=env)


def kernel_settings(env: dict[str, str], torch: bool) -> str:
    """OMP_NUM_THREADS and (with ``torch``) PyTorch's thread count, as a kernel started with
    ``env`` sees them: proof that the setting reaches the kernel. With ``torch`` it is also
    the warm-up, since the first kernel to import torch reads it from disk."""
    code = "import os\nprint('OMP_NUM_THREADS=' + os.environ.get('OMP_NUM_THREADS', 'unset'))"
    if torch:
        code += "\nimport torch\nprint('torch threads', torch.get_num_threads())"
    cell = nbformat.v4.new_code_cell(code)
    executed = execute(nbformat.v4.new_notebook(cells=[cell]), env)
    return " ".join("".join(o.get("text", "") for o in executed.cells[0].outputs).split())


def main(argv: list[str] | None = None) -> dict:
    """Execute the chosen chapters in both configurations and write the results."""
    options = parser(__doc__)
    options.add_argument("--chapters", nargs="+", default=None, help="e.g. 01 03 (default: all)")
    args = options.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 1)
    configs = {"unpinned": kernel_env(None), "OMP_NUM_THREADS=1": kernel_env("1")}

    if args.quick:
        cell = nbformat.v4.new_code_cell("import os\nos.environ.get('OMP_NUM_THREADS')")
        chapters = {"one-cell notebook": nbformat.v4.new_notebook(cells=[cell])}
    else:
        paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
        if args.chapters:
            paths = [p for p in paths if p.name[:2] in args.chapters]
        if not paths:
            options.error(f"no chapter notebook matches {args.chapters}")
        chapters = {p.stem: nbformat.read(p, as_version=4) for p in paths}

    seen = {c: kernel_settings(env, torch=not args.quick) for c, env in configs.items()}
    rows, seconds = [], {}
    for index, (name, notebook) in enumerate(chapters.items()):
        order = list(configs) if index % 2 == 0 else list(configs)[::-1]
        cases = {c: partial(execute, notebook, configs[c]) for c in order}
        timed = interleaved(cases, repeats, warmup=0)
        median = medians(timed)
        seconds |= {f"{name} {c}": timed[c] for c in configs}
        rows.append({"chapter": name, **{f"{c} s": median[c] for c in configs}})
        print(f"{name}: " + ", ".join(f"{c} {median[c]:.1f} s" for c in configs), flush=True)
    totals = {f"{c} s": sum(row[f"{c} s"] for row in rows) for c in configs}
    rows.append({"chapter": "total", **totals})
    for row in rows:
        row["pinned / unpinned"] = row["OMP_NUM_THREADS=1 s"] / row["unpinned s"]
    summary = {
        "total unpinned s": totals["unpinned s"],
        "total OMP_NUM_THREADS=1 s": totals["OMP_NUM_THREADS=1 s"],
        "pinned / unpinned": totals["OMP_NUM_THREADS=1 s"] / totals["unpinned s"],
        **{f"kernel sees, {c}": text for c, text in seen.items()},
    }
    notes = [
        "Each time includes starting the kernel and importing the chapter's libraries; the "
        "chapters run from notebooks/, unchanged and unsaved.",
        "pinned / unpinned below 1 means OMP_NUM_THREADS=1 is faster.",
    ]
    settings = {"chapters": " ".join(chapters), "repeats": repeats, "quick": args.quick}
    write_results(
        "book",
        settings=settings,
        rows=rows,
        summary=summary,
        seconds=seconds,
        notes=notes,
        out=args.out,
    )
    return summary


if __name__ == "__main__":
    main()
