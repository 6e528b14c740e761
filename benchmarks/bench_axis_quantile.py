"""Per-column exact median of an (N, 64) float64 array: arraystore vs numpy in RAM (issue 19).

Data: arraystore's ``fill="random"`` (N, 64) float64 memmap array of ``--size`` bytes
(default 4 GiB: 8 388 608 x 64), created once under ``--dir`` and reused.

Candidates, each run a fresh process (``common.py``: peak RSS is the child's own):

* ``arraystore/memmap``: ``arr.median(axis=0, memory=--memory)`` -- exact, bounded:
  columns in groups whose values fit the budget, one read of the file per group
  (``arraystore.ops.reduce.axis_quantiles``);
* ``numpy-ram/memmap``: the array read into RAM first (``arr[...]``, untimed), then
  ``np.median(x, axis=0)`` timed -- numpy at its best, with the whole array in memory
  (its peak RSS is about twice the array: numpy partitions a copy).

``check``: the medians must be equal, bit for bit. Acceptance (reported): arraystore's
peak RSS <= budget + 150 MiB, and its time <= 3x numpy's in RAM.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import ArraySpec, Candidate, MiB, Result

NAME = "x_mm"
#: peak RSS allowed above the budget (issue 19, acceptance 5)
RSS_SLACK = 150 * MiB
#: arraystore time / numpy-in-RAM time allowed
MAX_RATIO = 3.0


def run_arraystore(spec: dict[str, Any]) -> dict[str, Any]:
    import arraystore

    arr = arraystore.open(spec["store"], mode="r")[NAME]
    t0 = time.perf_counter()
    med = arr.median(axis=0, memory=spec["memory"])
    return {"seconds": time.perf_counter() - t0, "answer": np.asarray(med).tolist()}


def run_numpy(spec: dict[str, Any]) -> dict[str, Any]:
    import arraystore

    x = arraystore.open(spec["store"], mode="r")[NAME][...]  # into RAM, untimed
    t0 = time.perf_counter()
    med = np.median(x, axis=0)
    return {"seconds": time.perf_counter() - t0, "answer": med.tolist()}


KINDS = {"arraystore": run_arraystore, "numpy": run_numpy}


def candidates(args: argparse.Namespace, store: Path, paths: dict[str, Path], rows: int) -> list:
    base: dict[str, Any] = dict(
        group="memmap", nbytes=rows * 64 * 8, warm_files=common.data_files(paths[NAME])
    )
    return [
        Candidate(
            "arraystore/memmap",
            f"arraystore median(axis=0), --memory {args.memory}",
            child=dict(kind="arraystore", store=str(store), memory=args.memory),
            **base,
        ),
        Candidate(
            "numpy-ram/memmap",
            "np.median(x, axis=0), x in RAM",
            child=dict(kind="numpy", store=str(store)),
            **base,
        ),
    ]


def check(results: list[Result]) -> None:
    ref = next((r for r in results if r.key.startswith("numpy") and r.runs), None)
    for r in results:
        if ref is None or not r.runs:
            continue
        same = r.runs[-1].payload["answer"] == ref.runs[-1].payload["answer"]
        r.check = "ok" if same else "DIFF"


def acceptance(results: list[Result], budget: int) -> list[dict[str, Any]]:
    get = {r.key: r for r in results if r.runs}
    out: list[dict[str, Any]] = []
    if "arraystore/memmap" in get:
        peak = get["arraystore/memmap"].peak_rss
        out.append(
            dict(
                what="arraystore peak RSS - budget (MiB) <= 150",
                value=round((peak - budget) / MiB, 1),
                target=150,
                met=peak <= budget + RSS_SLACK,
            )
        )
    if "arraystore/memmap" in get and "numpy-ram/memmap" in get:
        ratio = get["arraystore/memmap"].median / get["numpy-ram/memmap"].median
        out.append(
            dict(
                what="arraystore time / numpy np.median(axis=0) in RAM <= 3",
                value=round(ratio, 3),
                target=MAX_RATIO,
                met=ratio <= MAX_RATIO,
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(ap, default_size="4GiB")
    ap.add_argument("--out", type=Path, default=common.RESULTS, help="where the JSON goes")
    args = ap.parse_args()
    if args.child:
        common.child_main(args.child, KINDS)
        return
    root = common.check_data_dir(args.dir)
    rows = max(1, args.size // (64 * 8))
    chunk_rows = min(args.chunk_rows, rows)
    store = root / f"axisq-f8-{rows}x64-s{args.seed}.store"
    budget = common.parse_size(args.memory)
    info = common.machine_info(root)
    print(f"{info.get('cpu')}, {info['cpus']} CPUs; numpy {info['versions']['numpy']}")
    print(f"array: ({rows}, 64) float64 = {common.human(rows * 512)}; store {store}")
    paths = common.ensure_arrays(store, rows, chunk_rows, [ArraySpec(NAME, "memmap")], "f8")
    cands = common.selected(candidates(args, store, paths, rows), args.only)
    base = common.baseline_rss(Path(__file__), ["arraystore"])
    print(f"peak RSS of a child that only imports arraystore: {base / MiB:.0f} MiB", flush=True)
    results = [common.measure(Path(__file__), cand, args) for cand in cands]
    check(results)
    ref = next((r for r in results if r.key.startswith("numpy") and r.runs), None)
    for r in results:
        if ref is not None and r.runs:
            r.ratios["time/numpy"] = r.median / ref.median
    title = f"per-column exact median of ({rows}, 64) f8; time/numpy = seconds / numpy's"
    common.print_table(results, title, ["time/numpy"])
    checks = acceptance(results, budget)
    print("\nacceptance targets (reported, not asserted):")
    for c in checks:
        print(f"  {c['what']}: {c['value']} {'MET' if c['met'] else 'NOT MET'}")
    doc: dict[str, Any] = {
        "benchmark": "axis-quantile",
        "args": {k: v for k, v in vars(args).items() if k != "child"},
        "array": {"rows": rows, "cols": 64, "dtype": "f8", "backend": "memmap"},
        "machine": info,
        "baseline_rss_bytes": base,
        "results": [r.to_json() for r in results],
        "acceptance": checks,
    }
    if not args.no_json:
        common.RESULTS = args.out
        print(f"\nwrote {common.write_json(f'axis-quantile-{common.human(args.size)}', doc)}")


if __name__ == "__main__":
    main()
