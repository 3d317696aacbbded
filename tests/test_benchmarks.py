"""Every benchmark runs end to end in ``--quick`` mode and writes the results it promises.

Only that: speed is measured by ``make bench`` (benchmarks/), never asserted in a test, since
a shared CI machine's timings are noise.
"""

from __future__ import annotations

import importlib
import json
import numbers

import pytest

# summary keys each benchmark must report
EXPECTED = {
    "loaders": ["TensorLoader / DataLoader, bs=128, workers=0"],
    "fit_overhead": ["fit / bare", "guard: (bare + _tally) / (bare + sums)", "_tally us per batch"],
    "hog": ["speed-up 2 / 1"],
    "augment": [
        "TensorLoader + per-image transform, images/s",
        "verdict vs A100 (assumed 25,000 img/s)",
    ],
    "book": ["total unpinned s", "total OMP_NUM_THREADS=1 s", "pinned / unpinned"],
}
# summary values known in advance: the thread setting reaches the notebook kernel
EXACT = {
    "book": {
        "kernel sees, unpinned": "OMP_NUM_THREADS=unset",
        "kernel sees, OMP_NUM_THREADS=1": "OMP_NUM_THREADS=1",
    },
}
KEYS = {"benchmark", "settings", "machine", "rows", "summary", "seconds", "notes"}


def numbers_in(values) -> list:
    """The numbers among ``values`` (booleans left out)."""
    return [v for v in values if isinstance(v, numbers.Real) and not isinstance(v, bool)]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_quick_run_writes_json_and_markdown(name, tmp_path):
    importlib.import_module(f"benchmarks.{name}").main(["--quick", "--out", str(tmp_path)])

    result = json.loads((tmp_path / f"{name}.json").read_text())
    assert set(result) >= KEYS
    assert result["benchmark"] == name and result["settings"]["quick"] is True
    summary, rows = result["summary"], result["rows"]
    assert set(summary) >= set(EXPECTED[name])
    assert summary.items() >= EXACT.get(name, {}).items()
    assert rows and all(set(row) == set(rows[0]) for row in rows)
    values = numbers_in(summary.values()) + [v for row in rows for v in numbers_in(row.values())]
    # measured numbers (floats) are positive, NaN fails too; counts (ints) such as workers=0 not
    assert values and all(v > 0 if isinstance(v, float) else v >= 0 for v in values)
    for samples in result["seconds"].values():
        assert len(samples) == 2 and all(s > 0 for s in samples)  # --quick: 2 repeats
    assert (tmp_path / f"{name}.md").read_text().startswith(f"# {name}\n")
