"""Sharded zarr arrays (issue 17 item 3, acceptance): few files, and ``stats`` as fast.

1. Creates (once; later runs reuse them) two float64 zarr arrays of ``--size`` (default
   4 GiB), shape (N, 64), with the same random contents (``--fill random``), under
   ``--dir``:

   * ``sharded``: ``--inner`` chunks (default 1 MiB: 2048 rows) in ``--shard`` shards
     (default 64 MiB: 131072 rows), i.e. ``--chunks 2048,64 --shards 131072``;
   * ``plain``: unsharded, chunks of the shard size (``--chunks 131072,64``).

   Both with ``--codec`` (default ``none``), by ``arraystore create`` (timed, once).
2. Counts the files of each array folder (everything in it, metadata included).
3. Runs ``arraystore stats STORE NAME --json`` in a fresh process ``--runs`` times per
   array (default 3), alternating the two, after one discarded warm-up run each, with
   ``ARRAYSTORE_PAGE_POLICY=keep`` so that both read from a warm page cache; reports the
   median scan time (the ``seconds`` stats reports: the pass over the data, without
   the interpreter's start) and GB/s (1e9 bytes of the decoded array per second), the
   median process wall time too, and checks that both arrays give the same statistics.

The acceptance: ``sharded`` has at most 70 files, and its ``stats`` runs at >= 80 % of
``plain``'s speed. Writes the figures, every run and the machine as JSON to
``benchmarks/results/shards-<size>-<date>-<host>.json`` (``--json PATH``).

    .venv/bin/python benchmarks/bench_shards.py --size 4GiB
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import human, machine_info, parse_size  # noqa: E402

COLUMNS = 64
ROW_BYTES = COLUMNS * 8
NAMES = ("sharded", "plain")


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(REPO)
    out["ARRAYSTORE_PAGE_POLICY"] = "keep"  # a warm page cache for both arrays
    return out


def cli(*args: str) -> tuple[float, str]:
    """``arraystore ARGS`` in a fresh process: (wall seconds, stdout)."""
    cmd = [sys.executable, "-m", "arraystore.cli", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(), check=False)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return wall, proc.stdout


def files_in(path: Path) -> int:
    return sum(len(files) for _root, _dirs, files in os.walk(path))


def _set_attrs(store: Path, name: str, want: dict[str, Any]) -> None:
    """Remember the parameters in a marker file beside the store (not in the array)."""
    marker = store.parent / f"{store.name}.{name}.json"
    marker.write_text(json.dumps(want))


def _is_current(store: Path, name: str, want: dict[str, Any]) -> bool:
    marker = store.parent / f"{store.name}.{name}.json"
    return marker.exists() and json.loads(marker.read_text()) == want


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/arraystore-bench"))
    ap.add_argument("--size", type=parse_size, default=parse_size("4GiB"))
    ap.add_argument("--inner", type=parse_size, default=parse_size("1MiB"), help="inner chunk")
    ap.add_argument("--shard", type=parse_size, default=parse_size("64MiB"), help="shard size")
    ap.add_argument("--codec", default="none")
    ap.add_argument("--runs", type=int, default=3, help="timed stats runs per array (median)")
    ap.add_argument("--json", type=Path, default=None, help="result file (default: results/)")
    args = ap.parse_args(argv)
    inner = max(1, args.inner // ROW_BYTES)
    shard = max(inner, args.shard // ROW_BYTES // inner * inner)
    rows = max(1, args.size // ROW_BYTES)
    args.dir.mkdir(parents=True, exist_ok=True)
    store = args.dir / f"shards-{human(args.size)}-{args.codec}.store"
    want = {"rows": rows, "inner_rows": inner, "shard_rows": shard, "codec": args.codec}
    create_s: dict[str, float] = {}
    for name in NAMES:
        if _is_current(store, name, want) and (store / name).exists():
            continue
        chunks = inner if name == "sharded" else shard
        cmd = ["create", str(store), name, "--shape", f"{rows},{COLUMNS}", "--dtype", "f8"]
        cmd += ["--chunks", f"{chunks},{COLUMNS}", "--backend", "zarr", "--codec", args.codec]
        cmd += ["--fill", "random", "--overwrite", "-q"]
        if name == "sharded":
            cmd += ["--shards", str(shard)]
        print(f"creating {name} ...", end="", flush=True)
        create_s[name], _ = cli(*cmd)
        print(f" {create_s[name]:.1f} s", flush=True)
        _set_attrs(store, name, want)
    files = {name: files_in(store / name) for name in NAMES}
    walls: dict[str, list[float]] = {name: [] for name in NAMES}
    scans: dict[str, list[float]] = {name: [] for name in NAMES}  # stats' own "seconds"
    answers: dict[str, Any] = {}
    for name in NAMES:  # warm-up: page cache, then discarded
        cli("stats", str(store), name, "--json", "-q")
    for _ in range(args.runs):
        for name in NAMES:
            wall, out = cli("stats", str(store), name, "--json", "-q")
            walls[name].append(wall)
            doc = json.loads(out)
            scans[name].append(doc["seconds"])
            answers[name] = doc["fields"][name]
    if answers["sharded"] != answers["plain"]:
        raise SystemExit(f"different statistics: {answers}")
    nbytes = rows * ROW_BYTES
    med = {name: statistics.median(w) for name, w in scans.items()}
    med_wall = {name: statistics.median(w) for name, w in walls.items()}
    gbps = {name: nbytes / med[name] / 1e9 for name in NAMES}
    ratio = med["plain"] / med["sharded"]
    doc = {
        "benchmark": "shards",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "size_bytes": nbytes,
        "shape": [rows, COLUMNS],
        "dtype": "f8",
        "codec": args.codec,
        "inner_chunk": [inner, COLUMNS],
        "shard": [shard, COLUMNS],
        "plain_chunk": [shard, COLUMNS],
        "page_policy": "keep",
        "files": files,
        "create_s": create_s,
        "stats_scan_s": scans,
        "stats_median_s": med,
        "stats_wall_s": walls,
        "stats_median_wall_s": med_wall,
        "sharded_wall_vs_plain": med_wall["plain"] / med_wall["sharded"],
        "stats_gbps": gbps,
        "stats": answers["plain"],
        "sharded_speed_vs_plain": ratio,
        "acceptance": {"files_le_70": files["sharded"] <= 70, "speed_ge_0.8": ratio >= 0.8},
        "machine": machine_info(args.dir),
    }
    print(f"{human(nbytes)} f8, {args.codec}: sharded {files['sharded']} files "
          f"(inner {human(inner * ROW_BYTES)}, shards {human(shard * ROW_BYTES)}), plain "
          f"{files['plain']} files")  # fmt: skip
    for name in NAMES:
        runs = ", ".join(f"{w:.2f}" for w in scans[name])
        print(f"  stats {name:8} median {med[name]:.2f} s  {gbps[name]:.2f} GB/s  "
              f"(process {med_wall[name]:.2f} s)  scans {runs}")  # fmt: skip
    print(f"  sharded at {ratio:.0%} of plain's speed")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    host = socket.gethostname().split(".")[0]
    path = args.json or RESULTS / f"shards-{human(nbytes)}-{stamp}-{host}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
