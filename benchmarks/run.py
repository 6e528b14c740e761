"""The benchmark suite: every scenario, arraystore and its anchors, on the same data.

    .venv/bin/python benchmarks/run.py --size 8GiB            # the README figures
    .venv/bin/python benchmarks/run.py --size 64MiB --repeats 1 --out /tmp/x   # smoke

Generates the datasets under ``--data-dir`` (created once, reused by later runs with the
same parameters), runs every scenario for every system whose package is installed (an
absent one is reported as skipped), each measured run in a fresh process (see
``common.py``: peak RSS per run, contention retries; median of ``--repeats`` runs of
arraystore, ``--anchor-repeats`` runs of each anchor), first on a warm page cache,
then ``--cold-repeats`` runs with the inputs evicted before each run
(``posix_fadvise(POSIX_FADV_DONTNEED)``) of the ``--cold-systems`` (default arraystore,
numpy and dd); ``--cold`` skips the warm runs and runs every system cold instead. Writes
``<out>/suite-<size>-<date>-<host>.json`` and, through ``report.py``, the Markdown
table and the PNG chart beside it.

Scenarios (``--scenarios``) and the candidates of each (``--systems`` filters them):

* ``stats``: count/sum/mean/std/min/max per column of an (N, 64) float64 array stored
  as ``.npy`` memmap and zarr v3 none / ``lz4`` (numcodecs) / ``zstd`` / ``blosc-lz4``
  (``bench_stats.py``): arraystore; numpy (tuned 2-thread loop, naive ``x.sum(0)``);
  dask (zarr-python, and with the zarrs pipeline); tensorstore; cubed (zarr none,
  lz4); python-blosc2 on its own ``.b2nd`` copy; ``dd``/``cat`` and ``dd iflag=direct``.
* ``cast``: float64 -> float32 with the value audit (``bench_cast.py``) from memmap
  and zarr lz4, against numpy, dask, cubed, blosc2 and ``dd`` writing the output.
* ``map``: ``a * 2 + b`` over two arrays of ``--size / 2`` each (``bench_map.py``),
  against numpy, dask, cubed and a blosc2 lazy expression.
* ``field-stats``, ``median``, ``hist``: one field of an 8-field float64 structured
  array (``bench_columns.py``): interleaved ``.npy`` vs arraystore's columnar zarr.
* ``import``: Parquet -> store (``bench_import.py``) against pyarrow/pandas, on a file
  of ``--import-size`` logical bytes (default: ``--size``, at most 2 GiB, because the
  pandas anchor holds it in RAM twice).
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import importlib.util
import json
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_anchors
import bench_cast
import bench_columns
import bench_import
import bench_map
import bench_stats
import common
from common import ArraySpec, Candidate, GiB, MiB, Result
from suite_cli import PACKAGES, disk_need, parse_args, system_of

HERE = Path(__file__).resolve().parent
FORMATS = (
    ArraySpec("memmap", "memmap"),
    ArraySpec("zarr-none", "zarr", "none"),
    ArraySpec("zarr-lz4", "zarr", "lz4"),
    ArraySpec("zarr-zstd", "zarr", "zstd"),
    ArraySpec("zarr-blosc-lz4", "zarr", "blosc-lz4"),
)
# bench_stats candidates the suite keeps (the rest are variants of the issue-3 script)
STATS_KEEP = (
    "arraystore/",
    "arraystore-2nd/memmap",
    "numpy/memmap/2t",
    "dask/",
    "dd/memmap",
    "cat/zarr",
)
MAP_KEEP = ("arraystore/", "dask/", "numpy/memmap/2t")


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = common.check_data_dir(args.data_dir)
        self.scratch = self.root / "suite-scratch"
        self.scratch.mkdir(exist_ok=True)
        self.results: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []
        self.datasets: dict[str, Any] = {}
        self.timing: dict[str, float] = {}
        self.systems = []
        for s in args.systems:
            pkg = PACKAGES.get(s)
            if pkg and importlib.util.find_spec(pkg) is None:
                self.skipped.append({"system": s, "reason": f"package {pkg!r} not installed"})
                print(f"skipping {s}: package {pkg!r} not installed")
            else:
                self.systems.append(s)
        self.budget = common.parse_size(args.memory)
        self.formats = tuple(f for f in FORMATS if f.name in args.formats)

    def wanted(self, cands: list[tuple[Path, Candidate]]) -> list[tuple[Path, Candidate]]:
        return [(s, c) for s, c in cands if system_of(c.key) in self.systems]

    # ------------------------------------------------------------- measuring
    def measure(
        self,
        scenario: str,
        cands: list[tuple[Path, Candidate]],
        after: Callable[[], None] | None = None,
    ) -> list[list[Result]]:
        """Warm runs of every candidate, then cold runs; returns [warm, cold].
        ``after()`` runs after each candidate (removes its outputs: bounded disk use)."""
        args = self.args
        t0 = time.perf_counter()
        print(f"\n== {scenario}: {len(cands)} candidate(s)", flush=True)
        cargs = copy.copy(args)
        cargs.repeat, cargs.retries = args.cold_repeats, 0
        aargs = copy.copy(args)
        aargs.repeat = args.anchor_repeats
        # --cold: only cold runs, as many as the warm ones would be
        caches = ("cold",) if args.cold else ("warm", "cold")[: 1 + (args.cold_repeats > 0)]
        groups: list[list[Result]] = [[], []]
        for cache in caches:
            if cache == "cold":
                print(f"-- {scenario}: cold page cache", flush=True)
            for script, c in cands:
                if cache == "cold" and system_of(c.key) not in args.cold_systems:
                    continue
                a = args if c.key.startswith("arraystore") else aargs
                if cache == "cold" and not args.cold:
                    a = cargs
                groups[cache == "cold"].append(common.measure(script, c, a, cold=cache == "cold"))
                if after is not None:
                    after()
        self.timing[scenario] = time.perf_counter() - t0
        return groups

    def record(self, scenario: str, groups: list[list[Result]]) -> None:
        for cache, results in zip(("warm", "cold"), groups, strict=True):
            for r in results:
                doc = r.to_json()
                payload = r.runs[-1].payload if r.runs else {}
                answer = {k: payload[k] for k in ("values", "answer", "audit") if k in payload}
                if isinstance(payload.get("check"), list):  # map: row sums of the output
                    answer["sample"] = payload["check"]
                doc.update(scenario=scenario, system=system_of(r.key), cache=cache, answer=answer)
                self.results.append(doc)
            if results:
                common.print_table(results, f"{scenario} ({cache})", [])

    def cleanup(self, *paths: Path) -> None:
        if self.args.cleanup:
            for p in paths:
                common.remove(p)

    # -------------------------------------------------------------- datasets
    def plain(self, formats: tuple[ArraySpec, ...]) -> tuple[Path, dict[str, Path], int, int]:
        rows = max(1, self.args.size // 512)
        chunk_rows = min(self.args.chunk_rows, rows)
        store = self.root / f"suite-f8-{rows}x64-c{chunk_rows}-s{self.args.seed}.store"
        t0 = time.perf_counter()
        paths = common.ensure_arrays(store, rows, chunk_rows, formats, "f8", self.args.seed)
        self.datasets["plain"] = dict(
            store=store,
            rows=rows,
            cols=64,
            dtype="f8",
            chunk_rows=chunk_rows,
            create_or_reuse_s=time.perf_counter() - t0,
            # the bytes each format reads from disk (GB/s of them: logical GB/s x this / size)
            bytes_on_disk={
                name: sum(f.stat().st_size for f in common.data_files(p))
                for name, p in paths.items()
            },
        )
        return store, paths, rows, chunk_rows

    def b2nd(self, npy: Path) -> Path:
        store = npy.parent.parent
        out = store.parent / f"{store.name}.{npy.parent.name}.b2nd"
        return bench_anchors.ensure_b2nd(npy, out, self.args.workers)

    # ------------------------------------------------------------- scenarios
    def memmap_stats_anchors(
        self, paths: dict[str, Path], nbytes: int, cands: list[tuple[Path, Candidate]]
    ) -> list[tuple[Path, Candidate]]:
        """numpy naive and ``dd iflag=direct`` on the .npy file of the memmap format."""
        npy = common.data_files(paths["memmap"])[0]
        group = next(c.group for _, c in cands if c.key == "arraystore/memmap")
        anchors = HERE / "bench_anchors.py"
        return [
            (
                anchors,
                Candidate(
                    "numpy-naive/memmap",
                    "numpy naive x.sum(0), ... on np.load(mmap)",
                    group,
                    nbytes,
                    warm_files=[npy],
                    child=dict(kind="numpy-naive", npy=str(npy)),
                    note="x.std(0) allocates a temporary of the array's size",
                ),
            ),
            (
                anchors,
                Candidate(
                    "dd-direct/memmap",
                    "dd bs=16M iflag=direct (the disk)",
                    group,
                    nbytes,
                    warm_files=[npy],
                    read_bytes=npy.stat().st_size,
                    cmd=[
                        "dd",
                        f"if={npy}",
                        "of=/dev/null",
                        "bs=16M",
                        "iflag=direct",
                        "status=none",
                    ],
                ),
            ),
        ]

    def run_stats(self) -> None:
        args = self.args
        store, paths, rows, chunk_rows = self.plain(self.formats)
        cands = [
            (HERE / "bench_stats.py", c)
            for c in bench_stats.candidates(args, store, paths, rows, chunk_rows, self.formats)
            if c.key.startswith(STATS_KEEP)
        ]
        anchors = HERE / "bench_anchors.py"
        nbytes = rows * 512
        if "memmap" in paths:
            cands += self.memmap_stats_anchors(paths, nbytes, cands)
        zgroups = {
            c.key.split("/")[1]: c.group for _, c in cands if c.key.startswith("arraystore/zarr")
        }
        more, skipped = bench_anchors.zarr_stats_anchors(args, paths, self.systems, zgroups, nbytes)
        cands += [(anchors, c) for c in more]
        self.skipped += skipped
        for fmt in FORMATS[1:3]:  # cubed: zarr none and lz4 (zstd left out: suite time)
            if fmt not in self.formats:
                continue
            files = common.data_files(paths[fmt.name])
            g = next(c.group for _, c in cands if c.key == f"arraystore/{fmt.name}")
            cands.append(
                (
                    anchors,
                    Candidate(
                        f"cubed/{fmt.name}",
                        f"cubed from_zarr, {args.workers} threads",
                        g,
                        nbytes,
                        warm_files=files,
                        child=dict(
                            kind="cubed-stats",
                            zarr=str(paths[fmt.name]),
                            workers=args.workers,
                            allowed_mem=self.budget,
                            work_dir=str(self.scratch / "cubed"),
                        ),
                    ),
                )
            )
        if "blosc2" in self.systems and "memmap" in paths:
            b2 = self.b2nd(common.data_files(paths["memmap"])[0])
            cands.append(
                (
                    anchors,
                    Candidate(
                        "blosc2/b2nd",
                        "python-blosc2 on .b2nd (its defaults)",
                        f"blosc2 .b2nd: {b2.stat().st_size / GiB:.2f} GiB",
                        nbytes,
                        warm_files=[b2],
                        child=dict(kind="blosc2-stats", b2nd=str(b2), workers=args.workers),
                    ),
                )
            )
        order = list(dict.fromkeys(c.group for _, c in cands))  # each format's rows together
        cands = self.wanted(sorted(cands, key=lambda sc: order.index(sc[1].group)))
        groups = self.measure("stats", cands)
        for results in groups:
            ref = bench_stats.reference(results)
            if ref is not None:
                import numpy as np

                values = ref.runs[-1].payload["values"]
                bench_stats.check_values(
                    results, {k: np.asarray(v) for k, v in values.items()}, rows
                )
        self.record("stats", groups)

    def cubed_cast(
        self,
        paths: dict[str, Path],
        nbytes: int,
        cands: list[tuple[Path, Candidate]],
        scratch: Path,
    ) -> tuple[Path, Candidate]:
        args = self.args
        anchors = HERE / "bench_anchors.py"
        group = next(c.group for _, c in cands if c.key.startswith("arraystore/zarr-lz4"))
        files = common.data_files(paths["zarr-lz4"])
        return (
            anchors,
            Candidate(
                "cubed/zarr-lz4",
                f"cubed astype -> to_zarr ({args.workers} thr)",
                group,
                nbytes,
                warm_files=files,
                child=dict(
                    kind="cubed-cast",
                    src=str(paths["zarr-lz4"]),
                    out=str(scratch / "cubed.zarr"),
                    workers=args.workers,
                    allowed_mem=self.budget,
                    work_dir=str(self.scratch / "cubed"),
                ),
            ),
        )

    def run_cast(self) -> None:
        args = self.args
        sources = tuple(s for s in bench_cast.SOURCES if s.name in args.formats)
        if not sources:
            print("\n== cast: skipped (--formats has neither memmap nor zarr-lz4)")
            return
        store, paths, rows, _ = self.plain(sources)
        scratch = self.scratch / "cast"
        scratch.mkdir(exist_ok=True)
        cands = [
            (HERE / "bench_cast.py", c)
            for c in bench_cast.candidates(args, store, paths, rows, scratch, sources)
            if not c.key.endswith("/unsafe")  # the scenario is the audited cast
        ]
        anchors = HERE / "bench_anchors.py"
        nbytes = rows * 512
        if "zarr-lz4" in paths:
            cands.append(self.cubed_cast(paths, nbytes, cands, scratch))
        if "blosc2" in self.systems and "memmap" in paths:
            b2 = self.b2nd(common.data_files(paths["memmap"])[0])
            cands.append(
                (
                    anchors,
                    Candidate(
                        "blosc2/b2nd",
                        "blosc2.astype -> .b2nd",
                        "blosc2 .b2nd -> f4",
                        nbytes,
                        warm_files=[b2],
                        child=dict(
                            kind="blosc2-cast",
                            b2nd=str(b2),
                            out=str(scratch / "b2.b2nd"),
                            workers=args.workers,
                        ),
                    ),
                )
            )

        def tidy() -> None:
            import arraystore

            s = arraystore.open(store, mode="a")
            for src in bench_cast.SOURCES:
                if f"{src.name}-f4" in s:
                    s.delete(f"{src.name}-f4")
            for p in scratch.iterdir():
                common.remove(p)

        try:
            groups = self.measure("cast", self.wanted(cands), after=tidy)
        finally:
            tidy()
            common.remove(scratch)
        self.record("cast", groups)

    def run_map(self) -> None:
        args = self.args
        rows = max(1, args.size // 2 // 512)
        chunk_rows = min(args.chunk_rows, rows)
        store = self.root / f"map-f8-{rows}x64-c{chunk_rows}-s{args.seed}.store"
        paths: dict[str, Path] = {}
        for k, (na, nb) in enumerate(bench_map.FORMATS.values()):
            backend = "memmap" if k == 0 else "zarr"
            for seed, name in ((args.seed, na), (args.seed + 1, nb)):
                spec = ArraySpec(name, backend, "none")
                paths.update(common.ensure_arrays(store, rows, chunk_rows, [spec], "f8", seed))
        self.datasets["map"] = dict(store=store, rows=rows, cols=64, dtype="f8", arrays=2)
        scratch = self.scratch / "map"
        scratch.mkdir(exist_ok=True)
        margs = copy.copy(args)
        margs.chunk_rows = chunk_rows
        cands = [
            (HERE / "bench_map.py", c)
            for c in bench_map.candidates(margs, store, paths, rows, scratch)
            if c.key.startswith(MAP_KEEP)
        ]
        anchors = HERE / "bench_anchors.py"
        nbytes = 2 * rows * 512
        zgroup = next(c.group for _, c in cands if c.key == "arraystore/zarr")
        zfiles = common.data_files(paths["za"]) + common.data_files(paths["zb"])
        cands.append(
            (
                anchors,
                Candidate(
                    "cubed/zarr",
                    f"cubed a * 2 + b -> to_zarr ({args.workers} thr)",
                    zgroup,
                    nbytes,
                    warm_files=zfiles,
                    child=dict(
                        kind="cubed-map",
                        a=str(paths["za"]),
                        b=str(paths["zb"]),
                        out=str(scratch / "cubed.zarr"),
                        workers=args.workers,
                        allowed_mem=self.budget,
                        work_dir=str(self.scratch / "cubed"),
                    ),
                ),
            )
        )
        if "blosc2" in self.systems:
            a2 = self.b2nd(common.data_files(paths["a"])[0])
            b2 = self.b2nd(common.data_files(paths["b"])[0])
            cands.append(
                (
                    anchors,
                    Candidate(
                        "blosc2/b2nd",
                        "blosc2 lazy expr .compute(urlpath)",
                        "blosc2 .b2nd",
                        nbytes,
                        warm_files=[a2, b2],
                        child=dict(
                            kind="blosc2-map",
                            a=str(a2),
                            b=str(b2),
                            out=str(scratch / "o.b2nd"),
                            workers=args.workers,
                        ),
                    ),
                )
            )

        def tidy() -> None:
            import arraystore

            s = arraystore.open(store, mode="a")
            for fmt in bench_map.FORMATS:
                if f"out_{fmt}" in s:
                    s.delete(f"out_{fmt}")
            for p in scratch.iterdir():
                common.remove(p)

        try:
            groups = self.measure("map", self.wanted(cands), after=tidy)
        finally:
            tidy()
            common.remove(scratch)
        for results in groups:
            bench_map.check(results, rows, store)
        self.record("map", groups)
        self.cleanup(store, *store.parent.glob(f"{store.name}.*.b2nd*"))

    def run_columns(self, scenarios: list[str]) -> None:
        args = self.args
        rows = max(1, args.size // (8 * bench_columns.FIELDS))
        chunk_rows = min(2 * 1024 * 1024, rows)  # 128 MiB of records, 16 MiB per field
        store = self.root / f"columns-{rows}-c{chunk_rows}-s{args.seed}.store"
        paths = bench_columns.ensure_records(store, rows, chunk_rows, args.seed)
        self.datasets["columns"] = dict(
            store=store,
            rows=rows,
            dtype=bench_columns.DTYPE,
            chunk_rows=chunk_rows,
            field=bench_columns.FIELD,
        )
        by = bench_columns.candidates(args, store, paths, rows, self.scratch)
        for what in scenarios:
            cands = self.wanted([(HERE / "bench_columns.py", c) for c in by[what]])
            groups = self.measure(what, cands)
            for results in groups:
                bench_columns.check(results, what, rows)
            self.record(what, groups)
        self.cleanup(store)

    def run_import(self) -> None:
        args = self.args
        rows = max(1, args.import_size // bench_import.ROW_BYTES)
        rg = 1 << 20
        file = bench_import.ensure_parquet(
            self.root / f"import-{rows}-rg{rg}-s{args.seed}.parquet", rows, rg, args.seed
        )
        self.datasets["import"] = dict(file=file, rows=rows, bytes_on_disk=file.stat().st_size)
        store = self.scratch / "import.store"
        cands = [
            (HERE / "bench_import.py", c) for c in bench_import.candidates(args, file, store, rows)
        ]
        groups = self.measure("import", self.wanted(cands))
        for results in groups:
            checks = {r.check for r in results if r.runs}
            for r in results:
                if r.runs:
                    r.check = "ok" if len(checks) == 1 else f"DIFF {r.check}"
        common.remove(store)
        self.record("import", groups)
        self.cleanup(file)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    suite = Suite(args)
    info = common.machine_info(suite.root)
    for mod in ("cubed", "blosc2", "pyarrow", "pandas", "matplotlib", "numba"):
        try:
            info["versions"][mod] = __import__(mod).__version__
        except Exception:  # not installed
            info["versions"][mod] = None
    print(
        f"{info.get('cpu')}, {info['cpus']} CPUs, {info.get('ram_bytes', 0) / GiB:.1f} GiB "
        f"RAM; size {common.human(args.size)}; data {suite.root}",
        flush=True,
    )
    need, free = disk_need(args, suite.systems), shutil.disk_usage(suite.root).free
    print(
        f"datasets and outputs need up to ~{need / GiB:.1f} GiB (free {free / GiB:.1f} GiB; "
        "existing datasets are reused)",
        flush=True,
    )
    if need > free:
        print("warning: that may not fit; --cleanup deletes each dataset after use", flush=True)
    t0 = time.perf_counter()
    todo = args.scenarios
    try:
        if "stats" in todo:
            suite.run_stats()
        if "cast" in todo:
            suite.run_cast()
        if "stats" in todo or "cast" in todo:
            plain = suite.datasets["plain"]["store"]
            suite.cleanup(plain, *plain.parent.glob(f"{plain.name}.*.b2nd*"))
        if "map" in todo:
            suite.run_map()
        cols = [s for s in ("field-stats", "median", "hist") if s in todo]
        if cols:
            suite.run_columns(cols)
        if "import" in todo:
            if importlib.util.find_spec("pyarrow") is None:  # arraystore's import needs it too
                suite.skipped.append({"scenario": "import", "reason": "pyarrow not installed"})
                print("skipping the import scenario: pyarrow not installed")
            else:
                suite.run_import()
    finally:
        common.remove(suite.scratch)
    doc = {
        "suite": 1,
        "size": args.size,
        "size_label": common.human(args.size),
        "command": " ".join(["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
        "scenarios": list(args.scenarios),
        "systems": list(suite.systems),
        "skipped": suite.skipped,
        "machine": info,
        "datasets": suite.datasets,
        "scenario_seconds": suite.timing,
        "total_seconds": time.perf_counter() - t0,
        "results": suite.results,
        "gb": common.GB,
        "mib": MiB,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out / f"suite-{common.human(args.size)}-{stamp}-{socket.gethostname()}.json"
    path.write_text(json.dumps(doc, indent=2, default=common._json_default) + "\n")
    print(f"\nwrote {path} ({doc['total_seconds']:.0f} s)")
    if not args.no_report:
        import report

        for p in report.write_report(path):
            print(f"wrote {p}")
    return path


if __name__ == "__main__":
    main()
