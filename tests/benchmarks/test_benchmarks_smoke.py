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

from arraystore.testing import data_file

REPO = Path(__file__).resolve().parents[2]
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
    x = np.load(data_file(plain, "memmap"))
    for fmt in ("memmap", "zarr-none", "zarr-lz4", "zarr-zstd", "zarr-blosc-lz4"):
        v = _get(suite, "stats", f"arraystore/{fmt}")["answer"]["values"]
        np.testing.assert_allclose(v["mean"], x.mean(axis=0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(v["std"], x.std(axis=0), rtol=1e-12)
        np.testing.assert_array_equal(v["min"], x.min(axis=0))
        np.testing.assert_array_equal(v["max"], x.max(axis=0))
    rec = Path(suite["datasets"]["columns"]["store"])
    col = np.load(data_file(rec, "rec"))[suite["datasets"]["columns"]["field"]]
    for fmt in ("memmap", "zarr"):
        assert _get(suite, "median", f"arraystore/{fmt}")["answer"]["answer"] == np.median(col)
        h = _get(suite, "hist", f"arraystore/{fmt}")["answer"]["answer"]
        assert h["counts"] == np.histogram(col, bins=100)[0].tolist()
        s = _get(suite, "field-stats", f"arraystore/{fmt}")["answer"]["answer"]
        assert s["min"] == col.min() and s["max"] == col.max()
        assert s["mean"] == pytest.approx(col.mean(), rel=0, abs=1e-12)
    mp = Path(suite["datasets"]["map"]["store"])
    a, b = np.load(data_file(mp, "a")), np.load(data_file(mp, "b"))
    n = len(a)
    want = [float((a[i] * 2 + b[i]).sum()) for i in (0, n // 2, n - 1)]
    for fmt in ("memmap", "zarr"):
        assert _get(suite, "map", f"arraystore/{fmt}")["answer"]["sample"] == want
    audit = _get(suite, "cast", "arraystore/memmap/value")["answer"]["audit"]
    assert audit["count"] == x.size and audit["violations"] == 0


def test_tensorstore_and_zarrs_anchors_equal_numpy(suite: dict[str, Any]) -> None:
    """The standard-codec zarr formats are read by tensorstore and dask + zarrs (when
    installed) with numpy's answers; arraystore's numcodecs.lz4 is skipped with a reason."""
    x = np.load(data_file(suite["datasets"]["plain"]["store"], "memmap"))
    rec = Path(suite["datasets"]["columns"]["store"])
    col = np.load(data_file(rec, "rec"))[suite["datasets"]["columns"]["field"]]
    for system in ("tensorstore", "dask-zarrs"):
        if system not in suite["systems"]:
            continue  # the package is absent (e.g. CI): listed under skipped
        for fmt in ("zarr-none", "zarr-zstd", "zarr-blosc-lz4"):
            v = _get(suite, "stats", f"{system}/{fmt}")["answer"]["values"]
            np.testing.assert_allclose(v["sum"], x.sum(axis=0), rtol=1e-12)
            np.testing.assert_allclose(v["mean"], x.mean(axis=0), rtol=0, atol=1e-12)
            np.testing.assert_allclose(v["std"], x.std(axis=0), rtol=1e-12)
            np.testing.assert_array_equal(v["min"], x.min(axis=0))
            np.testing.assert_array_equal(v["max"], x.max(axis=0))
        assert not [r for r in suite["results"] if r["key"] == f"{system}/zarr-lz4"]
        (why,) = [s for s in suite["skipped"] if s.get("system") == system and "format" in s]
        assert why["format"] == "zarr-lz4" and "numcodecs.lz4" in why["reason"]
        s = _get(suite, "field-stats", f"{system}/zarr")["answer"]["answer"]
        assert s["min"] == col.min() and s["max"] == col.max()
        assert s["std"] == pytest.approx(col.std(), rel=1e-12)
    assert _get(suite, "stats", "dd-direct/zarr-blosc-lz4")["read_bytes"] > 0


def test_cold_mode_evicts_before_every_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--cold``: no warm pass; every run of every system (arraystore --repeats times,
    the anchors --anchor-repeats times) is preceded by the eviction of its inputs."""
    import common
    import run
    import suite_cli
    from common import Candidate, Run

    events: list[tuple[str, str]] = []
    monkeypatch.setattr(common, "warm", lambda files: events.append(("warm", str(files))))
    monkeypatch.setattr(common, "drop_cache", lambda files: events.append(("drop", files[0].name)))

    def fake_run(script: Path, cand: Candidate) -> Run:
        events.append(("run", cand.warm_files[0].name))
        return Run(1.0, 1.0, 0, None, 0.0, 0.0)

    monkeypatch.setattr(common, "run_once", fake_run)
    argv = ["--cold", "--repeats", "3", "--data-dir", str(tmp_path), "--quiet-wait", "0"]
    args = run.parse_args(argv)
    assert args.cold_systems == suite_cli.SYSTEMS and args.anchor_repeats == 1
    cands = [
        (Path("x"), Candidate(k, k, "g", 1, warm_files=[tmp_path / k.replace("/", "_")]))
        for k in ("arraystore/zarr-none", "tensorstore/zarr-none", "cubed/zarr-none")
    ]
    warm, cold = run.Suite(args).measure("stats", cands)
    assert warm == [] and [len(r.runs) for r in cold] == [3, 1, 1]
    want = 3 * [("drop", "arraystore_zarr-none"), ("run", "arraystore_zarr-none")]
    want += [("drop", "tensorstore_zarr-none"), ("run", "tensorstore_zarr-none")]
    assert events == [*want, ("drop", "cubed_zarr-none"), ("run", "cubed_zarr-none")]


def test_compare_flags_ratio_regressions(tmp_path: Path) -> None:
    """``report.py --compare OLD NEW``: arraystore's ratio to each anchor, flagged when it
    got more than 10 % worse; dd is a limit, not the best anchor; exit 0."""
    import report

    def doc(dask: float, ts: float) -> dict[str, Any]:
        times = (("arraystore/z", "arraystore", 1.0), ("arraystore-2nd/z", "arraystore", 0.1),
                 ("dask/z", "dask", dask), ("tensorstore/z", "tensorstore", ts),
                 ("cat/z", "dd", 0.5))  # fmt: skip
        return {
            "results": [
                dict(
                    scenario="stats",
                    cache="warm",
                    key=key,
                    system=system,
                    median_s=s,
                    runs=[{}],
                    failed="",
                )
                for key, system, s in times
            ]
        }

    old, new = doc(4.0, 2.0), doc(3.0, 1.9)
    rows = {r["system"]: r for r in report.compare(old, new)}
    assert set(rows) == {"dask", "tensorstore", "dd", "best anchor"}
    assert rows["dask"]["old_ratio"] == 4.0 and rows["dask"]["new_ratio"] == 3.0
    assert rows["dask"]["flag"] and not rows["tensorstore"]["flag"]  # 33 % vs 5 % worse
    assert rows["best anchor"]["old_ratio"] == 2.0 and not rows["best anchor"]["flag"]
    assert not rows["dd"]["flag"] and rows["dd"]["new_s"] == 1.0
    paths = [tmp_path / "old.json", tmp_path / "new.json"]
    for p, d in zip(paths, (old, new), strict=True):
        p.write_text(json.dumps(d))
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "report.py"), "--compare", *map(str, paths)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| stats | warm | z | dask | 1.000 | 1.000 | 4.00x | 3.00x | +33% | REGRESSION |" in (
        proc.stdout
    )
    assert "1 regression(s)" in proc.stdout


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


def test_startup_benchmark_runs(tmp_path: Path) -> None:
    """``benchmarks/startup.py`` (issue 21): one run of each kind on a small array."""
    out = tmp_path / "startup.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "startup.py"), "--runs", "1"]
    cmd += ["--size", "1MiB", "--dir", str(tmp_path), "--json", str(out), "--numba"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc == json.loads(proc.stdout)
    assert doc["array"]["shape"] == [2**17] and doc["runs"] == 1
    assert set(doc["results"]) == {"stats", "help", "stats_numba"}
    for res in doc["results"].values():
        assert len(res["wall_s"]) == 1 and res["median_s"] > 0 and res["median_cpu_s"] > 0


def test_shards_benchmark_runs(tmp_path: Path) -> None:
    """``benchmarks/bench_shards.py`` (issue 17 item 3): one run per array, tiny sizes."""
    out = tmp_path / "shards.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_shards.py"), "--runs", "1"]
    cmd += ["--size", "8MiB", "--inner", "64KiB", "--shard", "1MiB", "--dir", str(tmp_path)]
    cmd += ["--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["shape"] == [16384, 64] and doc["inner_chunk"] == [128, 64]
    assert doc["shard"] == [2048, 64] == doc["plain_chunk"]
    # 8 shard files (+ metadata) for 128 inner chunks; as many as the plain array's chunks
    assert doc["files"]["sharded"] == doc["files"]["plain"] < 16
    assert doc["stats"]["count"] == 16384 * 64
    for name in ("sharded", "plain"):
        assert len(doc["stats_scan_s"][name]) == 1 and doc["stats_median_s"][name] > 0
