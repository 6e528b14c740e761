"""Command line of the benchmark suite (``run.py``): options, scenario and system names."""

from __future__ import annotations

import argparse
from pathlib import Path

import common
from common import GiB

SCENARIOS = ("stats", "median", "hist", "cast", "map", "field-stats", "import")
SYSTEMS = (
    "arraystore",
    "numpy",
    "dask",
    "dask-zarrs",
    "tensorstore",
    "cubed",
    "blosc2",
    "dd",
    "pyarrow",
)
COLUMN_SCENARIOS = ("field-stats", "median", "hist")
# run.FORMATS, by name
FORMATS = ("memmap", "zarr-none", "zarr-lz4", "zarr-zstd", "zarr-blosc-lz4")
PACKAGES = {
    "dask": "dask",
    "dask-zarrs": "zarrs",
    "tensorstore": "tensorstore",
    "cubed": "cubed",
    "blosc2": "blosc2",
    "pyarrow": "pandas",
}


def system_of(key: str) -> str:
    head = key.split("/")[0]
    if head.startswith("arraystore"):
        return "arraystore"
    if head.startswith("numpy"):
        return "numpy"
    if head in ("dd", "cat", "2dd", "2cat", "dd-direct"):
        return "dd"
    if head in ("pandas", "table"):
        return "pyarrow"
    return head


def words(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    if not text:
        return allowed
    got = tuple(w.strip() for w in text.split(",") if w.strip())
    bad = [w for w in got if w not in allowed]
    if bad:
        raise SystemExit(f"error: unknown {what} {bad[0]!r} (choose from {', '.join(allowed)})")
    return got


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--size",
        type=common.parse_size,
        default=common.parse_size("8GiB"),
        help="bytes of the main array (64MiB smoke, 1GiB, 8GiB, 32GiB)",
    )
    ap.add_argument("--data-dir", type=Path, default=common.DEFAULT_DIR)
    ap.add_argument("--out", type=Path, default=common.RESULTS, help="results directory")
    ap.add_argument("--scenarios", default="", help=f"comma list of: {', '.join(SCENARIOS)}")
    ap.add_argument(
        "--formats",
        default="",
        help=f"stats/cast storage formats, comma list of: {', '.join(FORMATS)}",
    )
    ap.add_argument("--systems", default="", help=f"comma list of: {', '.join(SYSTEMS)}")
    ap.add_argument("--repeats", type=int, default=3, help="warm timed runs of arraystore")
    ap.add_argument(
        "--anchor-repeats",
        type=int,
        default=None,
        help="warm timed runs of the anchors (default: 1, or --repeats if smaller)",
    )
    ap.add_argument(
        "--cold",
        action="store_true",
        help="cold mode: no warm runs; every run of every system starts with its inputs "
        "evicted from the page cache (--repeats runs of arraystore, --anchor-repeats of "
        "the anchors; --cold-repeats and --cold-systems are ignored)",
    )
    ap.add_argument(
        "--cold-repeats",
        type=int,
        default=1,
        help="after the warm runs, cold runs per candidate of the --cold-systems (0: none)",
    )
    ap.add_argument(
        "--cold-systems",
        default="arraystore,numpy,dd",
        help="systems that also run cold ('all': every one)",
    )
    ap.add_argument("--memory", default="1GiB", help="arraystore budget = cubed allowed_mem")
    ap.add_argument("--workers", type=int, default=2, help="threads of every system")
    ap.add_argument("--chunk-rows", type=int, default=262_144, help="rows per chunk (x 64 cols)")
    ap.add_argument("--import-size", type=common.parse_size, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet-wait", type=float, default=5.0, help="max s to wait for quiet CPU")
    ap.add_argument("--quiet-cpu", type=float, default=0.3)
    ap.add_argument("--max-bg", type=float, default=0.3)
    ap.add_argument("--retries", type=int, default=1, help="extra runs to replace contended ones")
    ap.add_argument("--max-anon", type=common.parse_size, default=common.parse_size("10GiB"))
    ap.add_argument("--cleanup", action="store_true", help="delete each dataset after use")
    ap.add_argument("--no-report", action="store_true", help="skip the Markdown/PNG report")
    args = ap.parse_args(argv)
    args.scenarios = words(args.scenarios, SCENARIOS, "scenario")
    args.systems = words(args.systems, SYSTEMS, "system")
    args.formats = words(args.formats, FORMATS, "format")
    cold = "" if args.cold_systems == "all" else args.cold_systems
    args.cold_systems = words(cold, SYSTEMS, "system")
    if args.cold:
        args.cold_systems = SYSTEMS
    # names the issue scripts' candidate builders and common.measure expect
    args.repeat, args.warmup, args.variants = args.repeats, 0, False
    if args.anchor_repeats is None:
        args.anchor_repeats = min(1, args.repeats)
    if args.import_size is None:
        args.import_size = min(args.size, 2 * GiB)
    return args


def disk_need(args: argparse.Namespace, systems: list[str]) -> int:
    """A rough upper bound of the disk the datasets and outputs take (bytes)."""
    size, b2 = args.size, "blosc2" in systems
    groups = []
    if "stats" in args.scenarios or "cast" in args.scenarios:
        cast_src = {"memmap", "zarr-lz4"} & set(args.formats)
        arrays = len(args.formats) if "stats" in args.scenarios else len(cast_src)
        groups.append(size * (arrays + b2) + (size if "cast" in args.scenarios else 0))
    if "map" in args.scenarios:
        groups.append(size * (2 + b2) + size // 2)
    if any(s in args.scenarios for s in COLUMN_SCENARIOS):
        groups.append(2 * size)
    if "import" in args.scenarios:
        groups.append(2 * args.import_size)
    return max(groups, default=0) if args.cleanup else sum(groups)
