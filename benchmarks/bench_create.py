"""Peak RSS and throughput of ``arraystore create --fill random`` (issue 2, acceptance 5).

Runs the CLI in a subprocess for each backend and reports wall time, GB/s and the child's
peak resident memory (ru_maxrss). Usage:

    .venv/bin/python benchmarks/bench_create.py --size 4GiB [--dir /tmp/arraystore-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from arraystore.engine.memory import format_size, parse_size

EXE = [sys.executable, "-m", "arraystore.cli"]


def run(store: Path, backend: str, codec: str | None, rows: int) -> dict[str, object]:
    name = f"create_{backend}_{codec or 'raw'}"
    args = [
        *EXE,
        "create",
        str(store),
        name,
        "--shape",
        f"{rows},64",
        "--dtype",
        "f8",
        "--fill",
        "random",
        "--backend",
        backend,
        "--overwrite",
        "--quiet",
    ]
    if codec:
        args += ["--codec", codec]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    os.sync()
    dt = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    nbytes = rows * 64 * 8
    shutil.rmtree(store / name)
    return {
        "candidate": name,
        "seconds": dt,
        "gb_per_s": nbytes / dt / 1e9,
        "peak_rss_mib": peak_kib / 1024,
        "peak_rss_note": "max over children so far" if before else "",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="4GiB")
    ap.add_argument("--dir", default="/tmp/arraystore-bench")
    args = ap.parse_args()
    nbytes = parse_size(args.size)
    rows = nbytes // (64 * 8)
    store = Path(args.dir) / "create.store"
    store.parent.mkdir(parents=True, exist_ok=True)
    rows_out = []
    # each backend in its own run of this script gives a clean ru_maxrss; here we run
    # memmap first (ru_maxrss is a max over all children, so later rows are upper bounds)
    for backend, codec in (("memmap", None), ("zarr", "lz4")):
        rows_out.append(run(store, backend, codec, rows))
        r = rows_out[-1]
        print(
            f"{r['candidate']:<22} {format_size(nbytes)}  {r['seconds']:7.2f} s  "
            f"{r['gb_per_s']:5.2f} GB/s  peak RSS {r['peak_rss_mib']:7.1f} MiB"
        )
    print(json.dumps({"size": nbytes, "results": rows_out}, indent=2))


if __name__ == "__main__":
    main()
