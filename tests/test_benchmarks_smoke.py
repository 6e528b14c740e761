"""Smoke test of the benchmark suite (``benchmarks/run.py``), so the benchmarks never rot.

Runs the whole suite at 64 MiB with one run per candidate (cold runs only for the cheap
``dd`` anchors: the eviction path is the same for every system) and checks the
results, never a timing: every scenario has
arraystore's result, every candidate's answer agrees with the others (the suite's own
checks), and arraystore's answers equal numpy's computed here from the same files.
Anchors whose package is absent are reported as skipped, not failed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "benchmarks" / "run.py"
sys.path.insert(0, str(REPO / "benchmarks"))  # run.py, common.py (imported in the tests)
pytestmark = pytest.mark.slow


def _suite(tmp: Path, *extra: str) -> dict[str, Any]:
    out = tmp / "results"
    cmd = [
        sys.executable,
        str(RUN),
        "--size",
        "64MiB",
        "--repeats",
        "1",
        "--out",
        str(out),
        "--data-dir",
        str(tmp / "data"),
        "--quiet-wait",
        "0",
        "--retries",
        "0",
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = out.glob("suite-64MiB-*.json")
    doc = json.loads(path.read_text())
    doc["_path"] = path
    return doc


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _suite(tmp_path_factory.mktemp("bench"), "--cold-repeats", "1", "--cold-systems", "dd")


def _get(doc: dict[str, Any], scenario: str, key: str, cache: str = "warm") -> dict[str, Any]:
    (r,) = [
        r
        for r in doc["results"]
        if r["scenario"] == scenario and r["key"] == key and r["cache"] == cache
    ]
    assert r["runs"] and not r["failed"], r["failed"]
    return r


def test_every_scenario_has_arraystore_and_agreeing_anchors(suite: dict[str, Any]) -> None:
    import suite_cli

    assert suite["scenarios"] == list(suite_cli.SCENARIOS)
    skipped = {s["scenario"] for s in suite["skipped"] if "scenario" in s}
    assert skipped <= {"import"}  # only when pyarrow is absent
    for scenario in set(suite_cli.SCENARIOS) - skipped:
        mine = [
            r for r in suite["results"] if r["scenario"] == scenario and r["system"] == "arraystore"
        ]
        assert mine, scenario
        others = {r["system"] for r in suite["results"] if r["scenario"] == scenario}
        assert others - {"arraystore", "dd"}, f"{scenario}: no anchor ran"
    for r in suite["results"]:
        assert r["runs"] and not r["failed"], (r["scenario"], r["key"], r["failed"][-500:])
        if r["system"] != "dd":  # dd/cat return no answer
            assert r["check"].startswith("ok"), (r["scenario"], r["key"], r["check"])
    installed = set(suite["systems"]) | {s["system"] for s in suite["skipped"] if "system" in s}
    assert installed == set(suite_cli.SYSTEMS)
    md = suite["_path"].with_suffix(".md").read_text()
    for scenario in set(suite_cli.SCENARIOS) - skipped:
        assert f"| {scenario} |" in md
    if importlib.util.find_spec("matplotlib") is not None:
        assert suite["_path"].with_suffix(".png").stat().st_size > 0


def test_arraystore_answers_equal_numpy(suite: dict[str, Any]) -> None:
    plain = Path(suite["datasets"]["plain"]["store"])
    x = np.load(plain / "memmap" / "data.npy")
    for fmt in ("memmap", "zarr-none", "zarr-lz4", "zarr-zstd"):
        v = _get(suite, "stats", f"arraystore/{fmt}")["answer"]["values"]
        np.testing.assert_allclose(v["mean"], x.mean(axis=0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(v["std"], x.std(axis=0), rtol=1e-12)
        np.testing.assert_array_equal(v["min"], x.min(axis=0))
        np.testing.assert_array_equal(v["max"], x.max(axis=0))
    rec = Path(suite["datasets"]["columns"]["store"])
    col = np.load(rec / "rec" / "data.npy")[suite["datasets"]["columns"]["field"]]
    for fmt in ("memmap", "zarr"):
        assert _get(suite, "median", f"arraystore/{fmt}")["answer"]["answer"] == np.median(col)
        h = _get(suite, "hist", f"arraystore/{fmt}")["answer"]["answer"]
        assert h["counts"] == np.histogram(col, bins=100)[0].tolist()
        s = _get(suite, "field-stats", f"arraystore/{fmt}")["answer"]["answer"]
        assert s["min"] == col.min() and s["max"] == col.max()
        assert s["mean"] == pytest.approx(col.mean(), rel=0, abs=1e-12)
    mp = Path(suite["datasets"]["map"]["store"])
    a, b = np.load(mp / "a" / "data.npy"), np.load(mp / "b" / "data.npy")
    n = len(a)
    want = [float((a[i] * 2 + b[i]).sum()) for i in (0, n // 2, n - 1)]
    for fmt in ("memmap", "zarr"):
        assert _get(suite, "map", f"arraystore/{fmt}")["answer"]["sample"] == want
    audit = _get(suite, "cast", "arraystore/memmap/value")["answer"]["audit"]
    assert audit["count"] == x.size and audit["violations"] == 0


def test_cold_runs(suite: dict[str, Any]) -> None:
    """The smoke run evicts the inputs before the cold runs of the dd anchors (cheap: the
    eviction path is the same for every system)."""
    cold = [r for r in suite["results"] if r["cache"] == "cold"]
    assert cold and {r["system"] for r in cold} == {"dd"}
    _get(suite, "stats", "dd-direct/memmap", "cold")
    _get(suite, "stats", "dd/memmap", "cold")


def test_filters(tmp_path: Path) -> None:
    import run
    from common import Candidate

    args = run.parse_args(
        ["--scenarios", "stats,median", "--systems", "arraystore,dd", "--data-dir", str(tmp_path)]
    )
    assert args.scenarios == ("stats", "median") and args.systems == ("arraystore", "dd")
    suite = run.Suite(args)
    cands = [
        (Path("x"), Candidate(k, k, "g", 1))
        for k in (
            "arraystore/memmap",
            "numpy/memmap/2t",
            "dd-direct/memmap",
            "cat/zarr-none",
            "cubed/zarr-lz4",
            "arraystore-2nd/memmap",
        )
    ]
    assert [c.key for _, c in suite.wanted(cands)] == [
        "arraystore/memmap",
        "dd-direct/memmap",
        "cat/zarr-none",
        "arraystore-2nd/memmap",
    ]
    with pytest.raises(SystemExit, match="unknown scenario 'sort'"):
        run.parse_args(["--scenarios", "sort"])


def test_absent_anchor_package_is_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import run

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "cubed" else real(name, *a)
    )
    suite = run.Suite(run.parse_args(["--size", "64MiB", "--data-dir", str(tmp_path)]))
    assert "cubed" not in suite.systems and "dask" in suite.systems
    assert {"system": "cubed", "reason": "package 'cubed' not installed"} in suite.skipped
    for entry in suite.skipped:  # the others skipped are really absent here (e.g. CI's venv)
        assert importlib.util.find_spec(run.PACKAGES[entry["system"]]) is None, entry
    with pytest.raises(SystemExit, match="unknown system 'spark'"):
        run.parse_args(["--systems", "arraystore,spark"])
