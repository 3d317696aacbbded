"""Interleaved timing and result files, shared by every benchmark.

Why interleaved: on a shared machine the speed drifts over seconds (other jobs, clock
changes, caches). Timing all of A and then all of B puts that drift into the ratio A/B;
alternating A, B, A, B exposes both to the same conditions, and the median of each drops the
odd slow repeat. Each round also starts one case later (A, B, then B, A, ...), so no case is
always the first after a pause. Ratios measured this way in one run are the result;
absolute seconds from a shared machine are not, and the files say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def parser(description: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick`` (tiny sizes, 2 repeats, for the unit
    test), ``--repeats`` and ``--out`` (the results folder)."""
    options = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    options.add_argument("--quick", action="store_true", help="tiny sizes and 2 repeats")
    options.add_argument("--repeats", type=int, default=None, help="timed rounds per case")
    options.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    return options


def interleaved(
    cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds of each call of each case, in rounds of one call per case.

    ``warmup`` untimed rounds come first (worker processes start, caches fill). Round ``r``
    starts with case ``r mod len(cases)`` and goes round in order.
    """
    names = list(cases)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            cases[name]()
            if round_ >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def medians(seconds: dict[str, list[float]]) -> dict[str, float]:
    """The median of each case's timed calls."""
    return {name: statistics.median(values) for name, values in seconds.items()}


def machine() -> dict[str, object]:
    """What the numbers depend on: versions, cores, threads, and the thread settings."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cuda": torch.cuda.is_available(),
    }


def _cell(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def markdown_table(rows: list[dict[str, object]]) -> str:
    """``rows`` (dicts with the same keys) as a markdown table, numbers rounded for reading."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(row[key]) for key in header) + " |" for row in rows]
    return "\n".join(lines)


def write_results(
    name: str,
    *,
    settings: dict[str, object],
    rows: list[dict[str, object]],
    summary: dict[str, object],
    seconds: dict[str, list[float]],
    notes: list[str],
    out: Path = RESULTS,
) -> Path:
    """Write ``out/<name>.json`` (everything, raw seconds included) and ``out/<name>.md``
    (the table, the summary and the notes), print the markdown, and return the JSON path."""
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "settings": settings,
        "machine": machine(),
        "rows": rows,
        "summary": summary,
        "seconds": seconds,
        "notes": notes,
    }
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    given = ", ".join(f"{k}={v}" for k, v in {**settings, **machine()}.items())
    text = [f"# {name}", "", f"Settings: {given}.", "", markdown_table(rows), ""]
    text += [f"- **{key}**: {_cell(value)}" for key, value in summary.items()]
    text += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    (out / f"{name}.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    print(f"\nwrote {path} and {path.with_suffix('.md')}")
    return path
