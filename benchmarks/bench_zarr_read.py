"""Read throughput of a zarr v3 array: zarr-python ``arr[region]`` vs ChunkIO.read_chunk.

Creates (once; later runs reuse it) a float64 array of shape (N, 64) with 128 MiB chunks
(262144 x 64) per codec under ``--dir``, written by zarr-python itself. The data are
prices-like values (a random walk rounded to cents), so blosc-lz4 has something to do.
Then, with 1 and 2 threads, reads every chunk (a) with zarr-python, one ``arr[region]``
per chunk, and (b) with ``ChunkIO.read_chunk`` into one reused buffer per thread. Each
figure is the median of 3 runs after one warm-up run (page cache warm); GB/s counts
decoded bytes (1 GB = 1e9 bytes).

    .venv/bin/python benchmarks/bench_zarr_read.py --size 2GiB
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from arraystore.backends.zarr import make_compressors
from arraystore.backends.zarr.chunks import ChunkIO

COLUMNS = 64
CHUNK_ROWS = 262_144  # x 64 x 8 bytes = 128 MiB
UNITS = {"": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 10**3, "mb": 10**6}
UNITS["gb"] = 10**9


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():  # numcodecs.lz4 is not in the zarr v3 spec
        warnings.simplefilter("ignore")
        yield


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in UNITS:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 2GiB, 512MiB)")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def ensure_array(root: Path, codec: str, rows: int) -> Path:
    path = root / f"f8-{rows}x{COLUMNS}-{codec}"
    meta = path / "zarr.json"
    if meta.exists():
        doc = json.loads(meta.read_text())
        if doc.get("shape") == [rows, COLUMNS] and (path / "complete").exists():
            return path
    print(f"creating {path} ...", flush=True)
    with _quiet():
        arr = zarr.create_array(
            path, shape=(rows, COLUMNS), chunks=(CHUNK_ROWS, COLUMNS), dtype="float64",
            compressors=make_compressors(codec), fill_value=0, zarr_format=3, overwrite=True,
        )  # fmt: skip
    rng = np.random.default_rng(42)
    start = 100.0 + rng.random(COLUMNS) * 100
    for lo in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - lo)
        walk = start + np.cumsum(rng.standard_normal((n, COLUMNS)) * 0.01, axis=0)
        start = walk[-1]
        arr[lo : lo + n] = np.round(walk, 2)
    (path / "complete").write_text("")
    return path


Reader = Callable[[tuple[int, ...]], Any]


def run(fn: Reader, indices: list[tuple[int, ...]], pool: ThreadPoolExecutor | None) -> float:
    t0 = time.perf_counter()
    if pool is None:
        for index in indices:
            fn(index)
    else:
        for _ in pool.map(fn, indices):
            pass
    return time.perf_counter() - t0


def median_time(fn: Reader, indices: list[tuple[int, ...]], threads: int, repeats: int) -> float:
    """One warm-up run (page cache, per-thread buffers, zarr's event loop), then the
    median of ``repeats`` runs; the same worker threads throughout, so per-thread
    buffers are allocated once."""
    with contextlib.ExitStack() as stack:
        pool = None if threads == 1 else stack.enter_context(ThreadPoolExecutor(threads))
        run(fn, indices, pool)
        return statistics.median(run(fn, indices, pool) for _ in range(repeats))


def bench(path: Path, threads_list: list[int], repeats: int) -> None:
    with _quiet():
        arr = zarr.open_array(path, mode="r", zarr_format=3)
    io = ChunkIO.from_path(path)
    assert io is not None, "fast path does not apply"
    indices = [tuple(int(i) for i in ix) for ix in np.ndindex(*io.grid)]
    nbytes = arr.nbytes
    local = threading.local()

    def with_zarr(index: tuple[int, ...]) -> None:
        arr[io.chunk_region(index)]

    def with_chunkio(index: tuple[int, ...]) -> None:
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = np.empty(io.chunks, dtype=io.dtype)
        io.read_chunk(index, buf)

    # the two readers agree (first and last chunk)
    for index in (indices[0], indices[-1]):
        got = io.read_chunk(index)[: io.valid_shape(index)[0]]
        assert np.array_equal(got, arr[io.chunk_region(index)])
    stored = sum(p.stat().st_size for p in (path / "c").rglob("*") if p.is_file())
    print(f"\n{path.name}: {nbytes / 2**30:.2f} GiB decoded, {stored / 2**30:.2f} GiB on disk, "
          f"{len(indices)} chunks of {io.chunk_bytes / 2**20:.0f} MiB")  # fmt: skip
    print(f"{'threads':>7}  {'zarr-python':>12}  {'ChunkIO':>10}  {'ratio':>6}")
    for threads in threads_list:
        t_zarr = median_time(with_zarr, indices, threads, repeats)
        t_fast = median_time(with_chunkio, indices, threads, repeats)
        zarr_gbs, fast_gbs = nbytes / t_zarr / 1e9, nbytes / t_fast / 1e9
        ratio = t_zarr / t_fast
        print(
            f"{threads:>7}  {zarr_gbs:>7.2f} GB/s  {fast_gbs:>5.2f} GB/s  {ratio:>5.1f}x",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/arraystore-bench"))
    ap.add_argument("--size", type=parse_size, default=parse_size("2GiB"))
    ap.add_argument("--codecs", default="none,blosc-lz4")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = max(1, args.size // (COLUMNS * 8))
    threads = [int(t) for t in args.threads.split(",")]
    print(f"zarr {zarr.__version__}, {args.size / 2**30:.2f} GiB per array, "
          f"median of {args.repeats} warm runs")  # fmt: skip
    for codec in args.codecs.split(","):
        bench(ensure_array(args.dir, codec.strip(), rows), threads, args.repeats)


if __name__ == "__main__":
    main()
