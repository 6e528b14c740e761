"""Smoke test of ``benchmarks/bench_axis_quantile.py`` (per-column exact median): it runs
at 64 MiB with a budget of a few columns (several groups) and arraystore's medians equal
numpy's in RAM, bit for bit; no timing is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_axis_quantile_bench_runs_and_agrees(tmp_path: Path) -> None:
    out = tmp_path / "results"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "bench_axis_quantile.py"),
        *("--size", "64MiB", "--memory", "24MiB", "--repeat", "1", "--retries", "0"),
        *("--quiet-wait", "0", "--dir", str(tmp_path / "data"), "--out", str(out)),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = out.glob("axis-quantile-64MiB-*.json")
    doc = json.loads(path.read_text())
    keys = {r["key"]: r for r in doc["results"]}
    assert set(keys) == {"arraystore/memmap", "numpy-ram/memmap"}
    for r in keys.values():
        assert r["runs"] and not r["failed"] and r["check"] == "ok", r
    assert [c["target"] for c in doc["acceptance"]] == [150, 3.0]
