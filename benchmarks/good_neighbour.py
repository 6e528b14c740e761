"""A good neighbour (issue 21 item 2, acceptance 4): does a scan larger than RAM evict
the user's other hot files?

1. Writes a "hot" file (``--hot-size``, default 2 GiB) and a float64 memmap array of
   ``--size`` (default 32 GiB: more than this VM's 23.5 GiB of RAM) under ``--data-dir``.
   The array is created sparse by ``arraystore create`` and then filled with real
   (zero) blocks by ``dd oflag=direct``, so it is on the disk without passing through
   the page cache; both are reused by later runs unless removed (``--remove``).
2. For each case and repetition: evicts the array (``posix_fadvise(DONTNEED)``), reads the
   hot file once (it is then 100 % cached), runs the scan, and measures how much of the
   hot file is still cached (``mincore``, :func:`arraystore.testing.resident_fraction`)
   and how much of the array the scan left cached. Cases:

   * ``auto``, ``keep``, ``drop``: ``arraystore stats STORE big --axis 0 --json`` in a
     fresh process with the default settings and ``ARRAYSTORE_PAGE_POLICY`` unset /
     ``keep`` / ``drop``;
   * ``dask``: ``da.from_array`` on ``np.load(DATA, mmap_mode="r")`` with 64 MiB chunks
     (8192, 1024) and ``dask.compute`` of sum, mean, std, min and max over axis 0 on 2
     threads, the way a user would write it (as ``bench_stats.py``'s dask-memmap); the
     memmap is wrapped in an object without ``.copy``, since dask 2026.7's ``from_array``
     copies array-likes that have one (a 32 GiB memmap: MemoryError);
   * ``dd``: ``dd if=DATA of=/dev/null bs=16M`` (buffered), the reference of a plain
     sequential read.

Writes the medians and every run as JSON to
``benchmarks/results/good-neighbour-<date>-<host>.json`` (``--json PATH``).

    .venv/bin/python benchmarks/good_neighbour.py --data-dir /work/gn-data --remove
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from arraystore.testing import resident_fraction  # noqa: E402

GiB = 2**30
CASES = ("auto", "keep", "drop", "dask", "dd")
DASK = """
import sys
import dask
import dask.array as da
import numpy as np
class Mapped:  # from_array copies anything with .copy() (a 32 GiB memmap too): slice it
    def __init__(self, a):
        self.a, self.shape, self.dtype, self.ndim = a, a.shape, a.dtype, a.ndim
    def __getitem__(self, key):
        return np.array(self.a[key])
x = da.from_array(Mapped(np.load(sys.argv[1], mmap_mode="r")), chunks=(8192, 1024))
with dask.config.set(scheduler="threads", num_workers=2):
    dask.compute(x.sum(0), x.mean(0), x.std(0), x.min(0), x.max(0))
"""
COLUMNS = 1024


def parse_size(text: str) -> int:
    text = text.strip()
    for suffix, mult in (("GiB", GiB), ("MiB", 2**20)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * mult)
    return int(text)


def env(policy: str | None) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(REPO)
    out.pop("ARRAYSTORE_PAGE_POLICY", None)
    if policy is not None:
        out["ARRAYSTORE_PAGE_POLICY"] = policy
    return out


def cli(*args: str, policy: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arraystore.cli", *args],
        env=env(policy),
        check=True,
        capture_output=True,
        text=True,
    )


def make_hot(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    block = os.urandom(16 * 2**20)
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())


def make_array(store: Path, size: int) -> Path:
    """A float64 (rows, 1024) memmap array of ``size`` bytes, with real blocks on disk."""
    data = store / "big" / "c" / "0" / "0"  # the memmap array's .npy (format 2)
    rows = size // (COLUMNS * 8)
    if data.exists() and data.stat().st_size >= rows * COLUMNS * 8:
        return data
    cli("create", str(store), "big", "--shape", f"{rows},{COLUMNS}", "-q", "--overwrite")
    mm = np.load(data, mmap_mode="r")
    total = mm.offset + mm.nbytes  # the data's end: the padding and shard index stay
    del mm
    blocks = (total - 4096) // (16 * 2**20)
    dd = ["dd", "if=/dev/zero", f"of={data}", "conv=notrunc", "status=none"]
    subprocess.run(
        [*dd, "bs=16M", "seek=4096", "oflag=seek_bytes,direct", f"count={blocks}"], check=True
    )
    tail = 4096 + blocks * 16 * 2**20
    subprocess.run(
        [*dd[:-2], "conv=notrunc,fsync", "status=none", "bs=1M", f"seek={tail}",
         f"count={total - tail}", "oflag=seek_bytes", "iflag=count_bytes"],
        check=True,
    )  # fmt: skip
    return data


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_all(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(16 * 2**20)
        while f.readinto(buf):
            pass


def meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            if key in ("MemTotal", "MemFree", "MemAvailable", "Cached", "Active(file)",
                       "Inactive(file)"):  # fmt: skip
                out[key] = int(value.split()[0]) * 1024
    return out


def one_run(case: str, store: Path, data: Path, hot: Path) -> dict:
    evict(data)
    evict(hot)
    read_all(hot)
    before = resident_fraction(hot)
    mem_before = meminfo()
    t0 = time.perf_counter()
    if case == "dd":
        subprocess.run(["dd", f"if={data}", "of=/dev/null", "bs=16M", "status=none"], check=True)
        bytes_read = data.stat().st_size
    elif case == "dask":
        subprocess.run([sys.executable, "-c", DASK, str(data)], check=True, env=env(None))
        bytes_read = data.stat().st_size
    else:
        res = cli("stats", str(store), "big", "--axis", "0", "--json", "-q",
                  policy=None if case == "auto" else case)  # fmt: skip
        bytes_read = json.loads(res.stdout).get("bytes_read", data.stat().st_size)
    seconds = time.perf_counter() - t0
    return {
        "case": case,
        "hot_cached_before": before,
        "hot_cached_after": resident_fraction(hot),
        "data_cached_after": resident_fraction(data),
        "seconds": seconds,
        "gb_per_s": bytes_read / seconds / 1e9,
        "meminfo_before": mem_before,
        "meminfo_after": meminfo(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/arraystore-gn"))
    ap.add_argument("--size", default="32GiB", help="array size (default 32GiB)")
    ap.add_argument("--hot-size", default="2GiB")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--remove", action="store_true", help="delete the data afterwards")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    hot, store = args.data_dir / "hot.bin", args.data_dir / "store"
    t0 = time.perf_counter()
    make_hot(hot, parse_size(args.hot_size))
    data = make_array(store, parse_size(args.size))
    print(f"data ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    runs = []
    try:
        for rep in range(args.repeat):
            for case in args.cases.split(","):
                r = one_run(case, store, data, hot)
                r["repeat"] = rep
                runs.append(r)
                print(
                    f"{case:5s} hot cached {r['hot_cached_after']:.1%} (before "
                    f"{r['hot_cached_before']:.1%}), data cached {r['data_cached_after']:.1%}, "
                    f"{r['seconds']:.1f} s, {r['gb_per_s']:.2f} GB/s",
                    file=sys.stderr,
                )
    finally:
        if args.remove:
            for p in (data, hot):
                p.unlink(missing_ok=True)
    summary = {}
    for case in args.cases.split(","):
        mine = [r for r in runs if r["case"] == case]
        summary[case] = {
            "hot_cached_after_median": statistics.median(r["hot_cached_after"] for r in mine),
            "data_cached_after_median": statistics.median(r["data_cached_after"] for r in mine),
            "seconds_median": statistics.median(r["seconds"] for r in mine),
            "gb_per_s_median": statistics.median(r["gb_per_s"] for r in mine),
        }
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    out = {
        "benchmark": "good-neighbour",
        "date": stamp,
        "host": socket.gethostname(),
        "commit": commit,
        "python": platform.python_version(),
        "array_bytes": data.stat().st_size if data.exists() else parse_size(args.size),
        "array": f"float64 (rows, {COLUMNS}) memmap, stats --axis 0, default settings",
        "hot_bytes": parse_size(args.hot_size),
        "hot_read": "once (evicted, then read whole with read(2) before each run)",
        "ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "repeat": args.repeat,
        "summary": summary,
        "runs": runs,
    }
    text = json.dumps(out, indent=2)
    print(text)
    path = args.json or RESULTS / f"good-neighbour-{stamp[:8]}-{socket.gethostname()}.json"
    path.write_text(text + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
