"""Shared machinery of the benchmark scripts (``bench_stats.py``, ``bench_cast.py``).

* Datasets: float arrays of shape (N, 64) created once through arraystore under
  ``--dir`` (default ``/tmp/arraystore-bench``, never inside the repository) and reused
  when an array with the same shape, dtype, chunks, backend, codec, fill and seed is
  already there.
* Runner: every measured run is a *fresh subprocess* (the bench script re-invoked with
  ``--child SPEC``), so each run's peak RSS is its own: the parent reaps the child with
  ``os.wait4`` and reads that child's ``ru_maxrss`` (resident pages of mapped files
  count, as in ``VmHWM``). The child also samples ``RssAnon`` (anonymous memory only)
  every 10 ms. The timed region is inside the child and excludes interpreter start and
  imports; shell commands (``dd``, ``cat``) are timed around the process by the parent.
* Warm page cache: before each candidate's runs, its input files are read once with
  ``cat``; then ``--warmup`` discarded runs and the median of ``--repeat`` runs.
* Contention: the machine may be shared. Before each run the parent waits (up to
  ``--quiet-wait`` seconds) until other processes use less than ``--quiet-cpu`` cores,
  and records for each run how many cores *others* used meanwhile (``bg``, from
  ``/proc/stat`` minus the child's own CPU time; kernel writeback threads count as
  others). A run with ``bg > --max-bg`` is retried (``--retries`` extra runs at most)
  and the median is taken over the least contended ``--repeat`` runs; the table shows
  the worst ``bg`` among them and each candidate's median CPU seconds (user + sys),
  which contention disturbs less than wall time.
* Output: a table (GB/s = 1e9 bytes/s of the logical, decoded array; peak RSS in MiB;
  ratios against anchors) and a JSON file ``benchmarks/results/<name>-<date>-<host>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import memcap

GB = 1e9
MiB = 2**20
GiB = 2**30
COLUMNS = 64
DEFAULT_DIR = Path("/tmp/arraystore-bench")
REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
RESULT_TAG = "@@BENCH-RESULT "
if str(REPO) not in sys.path:  # measure the arraystore of this checkout, not an installed one
    sys.path.insert(1, str(REPO))
MAX_ANON_ENV = "ASBENCH_MAX_ANON"


# ------------------------------------------------------------------ arguments
def parse_size(text: str) -> int:
    """``"8GiB"`` -> bytes (arraystore's own parser: KiB/MiB/GiB binary, KB/MB/GB SI)."""
    from arraystore.engine.memory import parse_size as _parse

    try:
        return _parse(text)
    except Exception as exc:  # argparse wants its own error type
        raise argparse.ArgumentTypeError(str(exc)) from None


def human(n: float) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.2f}{unit}"
    return f"{int(n)}B"


def add_common_args(ap: argparse.ArgumentParser, default_size: str = "8GiB") -> None:
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="data directory (not the repo)")
    ap.add_argument("--size", type=parse_size, default=parse_size(default_size))
    ap.add_argument("--chunk-rows", type=int, default=262_144, help="rows per chunk (x64 cols)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per candidate (median)")
    ap.add_argument("--warmup", type=int, default=0, help="discarded runs before the timed ones")
    ap.add_argument("--memory", default="1GiB", help="arraystore --memory budget")
    ap.add_argument("--workers", type=int, default=2, help="threads for arraystore and dask")
    ap.add_argument(
        "--only", default="", help="comma-separated substrings: run only matching candidates"
    )
    ap.add_argument("--quiet-wait", type=float, default=20.0, help="max s to wait for quiet CPU")
    ap.add_argument("--quiet-cpu", type=float, default=0.3, help="'quiet' = others use < N cores")
    ap.add_argument(
        "--max-bg", type=float, default=0.3, help="a run is contended if others used > N cores"
    )
    ap.add_argument("--retries", type=int, default=3, help="extra runs to replace contended ones")
    ap.add_argument(
        "--max-anon",
        type=parse_size,
        default=parse_size("10GiB"),
        help="abort a run whose anonymous memory exceeds this (protects a shared machine)",
    )
    ap.add_argument("--keep", action="store_true", help="keep scratch outputs after the run")
    ap.add_argument(
        "--ram-cap",
        type=parse_size,
        default=0,
        help="run each candidate as if the machine had only this much RAM (a memory cgroup, "
        "see memcap.py; implies cold runs)",
    )
    ap.add_argument("--no-json", action="store_true", help="do not write benchmarks/results/")
    ap.add_argument("--child", help=argparse.SUPPRESS)


def check_data_dir(path: Path) -> Path:
    path = path.resolve()
    if path == REPO or REPO in path.parents:
        raise SystemExit(f"--dir {path} is inside the repository; use e.g. {DEFAULT_DIR}")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class ArraySpec:
    name: str  # array name inside the store
    backend: str  # "memmap" | "zarr"
    codec: str = "none"


def _bench_attrs(rows: int, chunk_rows: int, dtype: str, spec: ArraySpec, seed: int) -> dict:
    return {
        "bench": {
            "rows": rows,
            "cols": COLUMNS,
            "chunk_rows": chunk_rows,
            "dtype": dtype,
            "backend": spec.backend,
            "codec": spec.codec,
            "fill": "random",
            "seed": seed,
        }
    }


def ensure_arrays(
    store_path: Path,
    rows: int,
    chunk_rows: int,
    specs: Sequence[ArraySpec],
    dtype: str = "f8",
    seed: int = 0,
) -> dict[str, Path]:
    """Create (or reuse) the arrays of ``specs`` in one store; their contents are equal.

    ``fill="random"`` draws chunk ``i`` from ``default_rng([seed, i])``, so the same
    chunk grid gives the same values in every backend. Returns name -> array directory.
    """
    import arraystore

    store = arraystore.open(store_path, mode="a")
    chunk_rows = min(chunk_rows, rows)
    out = {}
    for spec in specs:
        want = _bench_attrs(rows, chunk_rows, dtype, spec, seed)
        if spec.name in store:
            arr = store[spec.name]
            if arr.attrs.get("bench") == want["bench"]:
                out[spec.name] = store_path / spec.name
                continue
            print(f"  {spec.name}: parameters changed, recreating", flush=True)
        t0 = time.perf_counter()
        print(
            f"  creating {store_path.name}/{spec.name}: ({rows}, {COLUMNS}) {dtype}, chunks "
            f"({chunk_rows}, {COLUMNS}), {spec.backend} {spec.codec} ...",
            end="",
            flush=True,
        )
        store.create(
            spec.name,
            shape=(rows, COLUMNS),
            dtype=dtype,
            chunks=(chunk_rows, COLUMNS),
            backend=spec.backend,
            codec=None if spec.backend == "memmap" else spec.codec,
            fill="random",
            seed=seed,
            attrs=want,
            overwrite=True,
            memory=2 * GiB,
        )
        print(f" {time.perf_counter() - t0:.1f} s", flush=True)
        out[spec.name] = store_path / spec.name
    return out


def data_files(array_dir: Path) -> list[Path]:
    """The files holding an array's data: zarr chunk files, or a memmap array's one
    ``.npy``/shard file (format 2: ``c/0/...``; format 1: ``data.npy``)."""
    npy = array_dir / "data.npy"
    if npy.exists():
        return [npy]
    chunks = array_dir / "c"
    return sorted(p for p in chunks.rglob("*") if p.is_file()) if chunks.exists() else []


def file_bytes(files: Iterable[Path]) -> int:
    return sum(p.stat().st_size for p in files)


def warm(files: Sequence[Path]) -> float:
    """Read the files once (page cache); returns seconds."""
    t0 = time.perf_counter()
    for i in range(0, len(files), 500):
        subprocess.run(
            ["cat", *map(str, files[i : i + 500])], stdout=subprocess.DEVNULL, check=True
        )
    return time.perf_counter() - t0


def drop_cache(files: Sequence[Path]) -> None:
    """Evict the files' pages from the page cache (cold runs).

    Every file is fsynced first (dirty pages cannot be dropped), then
    ``posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)``. Pages mapped by a live process
    stay resident; every measured run is a fresh process, so none are."""
    for p in files:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file under ``path`` (or ``path`` itself), then the directories."""
    if path.is_file():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    dirs = []
    for root, _dirs, names in os.walk(path):
        dirs.append(root)
        for name in names:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for d in dirs:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


# ------------------------------------------------------------------- CPU load
def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)  # idle + iowait
    total = sum(parts[:8])  # guest time is already inside user/nice
    return total - idle, total


HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def busy_cores(seconds: float = 1.0) -> float:
    b0, t0 = _cpu_jiffies()
    time.sleep(seconds)
    b1, t1 = _cpu_jiffies()
    return NCPU * (b1 - b0) / max(1, t1 - t0)


def wait_quiet(max_wait: float, threshold: float) -> float:
    """Wait until other processes use < ``threshold`` cores (1 s sample), at most
    ``max_wait`` seconds; returns the last sample."""
    if max_wait <= 0:
        return math.nan
    deadline = time.monotonic() + max_wait
    load = busy_cores(0.5)
    while load >= threshold and time.monotonic() < deadline:
        load = busy_cores(1.0)
    return load


# --------------------------------------------------------------------- runner
@dataclass
class Run:
    seconds: float  # timed region (inside the child; wall around dd/cat)
    wall: float  # whole subprocess, parent's clock
    maxrss: int  # bytes, this child's ru_maxrss
    anon_peak: int | None  # bytes, sampled RssAnon peak (Python children)
    cpu: float  # child's user+sys seconds
    bg_cores: float  # cores used by other processes during the run
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class Candidate:
    key: str  # short unique id, e.g. "arraystore/memmap"
    label: str  # what is shown in the table
    group: str  # rows are grouped (and ratios taken) per group, e.g. the format
    nbytes: int  # logical bytes processed (GB/s numerator)
    warm_files: list[Path] = field(default_factory=list)
    child: dict[str, Any] | None = None  # spec for the script's --child mode
    cmd: list[str] | None = None  # or a shell command timed by the parent
    read_bytes: int | None = None  # bytes of files read, when not nbytes
    note: str = ""
    env: dict[str, str] = field(default_factory=dict)  # extra environment variables


@dataclass
class Result:
    key: str
    label: str
    group: str
    nbytes: int
    runs: list[Run]
    warmups: list[Run]
    note: str = ""
    read_bytes: int | None = None
    ratios: dict[str, float] = field(default_factory=dict)
    check: str = ""
    discarded: list[Run] = field(default_factory=list)  # contended runs, retried
    failed: str = ""  # a run failed (e.g. --max-anon): no timings

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs) if self.runs else math.nan

    @property
    def gbps(self) -> float:
        return self.nbytes / self.median / GB

    @property
    def peak_rss(self) -> int:
        return max((r.maxrss for r in self.runs + self.warmups), default=0)

    @property
    def anon_peak(self) -> int | None:
        vals = [r.anon_peak for r in self.runs + self.warmups if r.anon_peak is not None]
        return max(vals) if vals else None

    @property
    def cpu(self) -> float:
        """Median CPU seconds (user + sys) of the runs: less sensitive to contention."""
        return statistics.median(r.cpu for r in self.runs) if self.runs else math.nan

    @property
    def bg(self) -> float:
        return max((r.bg_cores for r in self.runs), default=math.nan)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "group": self.group,
            "nbytes": self.nbytes,
            "read_bytes": self.read_bytes,
            "median_s": self.median,
            "gb_per_s": self.gbps,
            "peak_rss_bytes": self.peak_rss,
            "anon_peak_bytes": self.anon_peak,
            "max_bg_cores": self.bg,
            "median_cpu_s": self.cpu,
            "ratios": self.ratios,
            "check": self.check,
            "note": self.note,
            "failed": self.failed,
            "runs": [{k: v for k, v in asdict(r).items() if k != "payload"} for r in self.runs],
            "warmups": [
                {k: v for k, v in asdict(r).items() if k != "payload"} for r in self.warmups
            ],
            "discarded_contended": [
                {k: v for k, v in asdict(r).items() if k != "payload"} for r in self.discarded
            ],
        }


LAUNCHER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    req = json.loads(line)
    out = open(req["stdout"], "wb") if req["stdout"] else subprocess.DEVNULL
    err = open(req["stderr"], "wb")
    env = dict(os.environ, **req["env"]) if req.get("env") else None
    start = time.perf_counter()
    proc = subprocess.Popen(req["argv"], stdout=out, stderr=err, env=env)
    _pid, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    err.close()
    if req["stdout"]:
        out.close()
    reply = dict(code=code, wall=wall, maxrss=ru.ru_maxrss * 1024, utime=ru.ru_utime,
                 stime=ru.ru_stime)
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
"""


class Launcher:
    """Starts the measured processes from a small helper process.

    A child's ``ru_maxrss`` can never be below the RSS of the process it was forked
    from (Linux carries the old mm's high-water mark over ``exec``), and this script's
    own process holds numpy, zarr and arraystore. The helper (``python -S``, ~10 MiB)
    forks them instead, reaps each with ``os.wait4`` and reports that child's rusage.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-u", "-c", LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(
        self, argv: list[str], stdout: str | None, stderr: str, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        req = {"argv": argv, "stdout": stdout, "stderr": stderr, "env": env or {}}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the launcher process died")
        return dict(json.loads(line))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


_LAUNCHER: Launcher | None = None


def launcher() -> Launcher:
    global _LAUNCHER
    if _LAUNCHER is None:
        _LAUNCHER = Launcher()
    return _LAUNCHER


#: ``--ram-cap``: bytes of RAM each measured process may use (0: no cap), see memcap.py
RAM_CAP = 0


def run_once(script: Path, cand: Candidate) -> Run:
    with tempfile.TemporaryDirectory(prefix="asbench-") as tmp:
        out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        if cand.cmd is not None:
            argv, stdout = cand.cmd, None
        else:
            argv = [sys.executable, str(script), "--child", json.dumps(cand.child)]
            stdout = out
        group = f"asbench-{os.getpid()}-{time.monotonic_ns()}"
        if RAM_CAP:
            argv = [sys.executable, "-S", memcap.__file__, str(RAM_CAP), group, "--", *argv]
        b0, t0 = _cpu_jiffies()
        try:
            rep = launcher().run(argv, stdout, err, cand.env)
        finally:
            if RAM_CAP:
                memcap.remove(group)
        b1, t1 = _cpu_jiffies()
        errtext = Path(err).read_text(errors="replace")
        if rep["code"] == -9 and RAM_CAP:
            raise RuntimeError(
                f"{cand.key}: killed (out of memory under the {human(RAM_CAP)} RAM cap)"
            )
        if rep["code"] != 0:
            raise RuntimeError(f"{cand.key}: exit {rep['code']}\n{errtext[-3000:]}")
        payload: dict[str, Any] = {}
        if stdout is not None:
            for line in Path(out).read_text().splitlines():
                if line.startswith(RESULT_TAG):
                    payload = json.loads(line[len(RESULT_TAG) :])
            if not payload:
                raise RuntimeError(f"{cand.key}: child printed no result\n{errtext[-3000:]}")
    wall = rep["wall"]
    cpu = rep["utime"] + rep["stime"]
    busy = NCPU * (b1 - b0) / max(1, t1 - t0) * wall  # core-seconds of all processes
    bg = max(0.0, (busy - cpu) / wall) if wall > 0 else 0.0
    return Run(
        seconds=float(payload.get("seconds", wall)),
        wall=wall,
        maxrss=int(rep["maxrss"]),
        anon_peak=payload.get("anon_peak"),
        cpu=cpu,
        bg_cores=round(bg, 2),
        payload=payload,
    )


def measure(script: Path, cand: Candidate, args: argparse.Namespace, cold: bool = False) -> Result:
    """Warm the page cache, then ``--warmup`` discarded runs and ``--repeat`` timed runs.

    ``cold=True``: no warming and no warm-up runs; before every run the candidate's
    input files are evicted from the page cache (``drop_cache``).

    A timed run during which other processes used more than ``--max-bg`` cores is
    *contended*: it is kept in the JSON but retried (after waiting for a quiet CPU), up
    to ``--retries`` extra runs per candidate. The median is then taken over the
    ``--repeat`` least contended runs. Before every run, ``os.sync()``: writeback of
    the data set-up or of the previous run's output would otherwise land in this run."""
    cand.env = {**cand.env, MAX_ANON_ENV: str(args.max_anon)}
    global RAM_CAP
    RAM_CAP = getattr(args, "ram_cap", 0)
    if RAM_CAP:
        cold = True  # pages cached before the run were charged to others: evict them
    if cand.warm_files and not cold:
        warm(cand.warm_files)
    warmups: list[Run] = []
    attempts: list[Run] = []
    try:
        for _ in range(0 if cold else args.warmup):
            os.sync()
            wait_quiet(args.quiet_wait, args.quiet_cpu)
            warmups.append(run_once(script, cand))
            _print_run(cand, "warm-up", warmups[-1])
    except RuntimeError as exc:
        return _failed(cand, exc)
    clean = 0
    while clean < args.repeat and len(attempts) < args.repeat + args.retries:
        os.sync()  # dirty pages of the data set-up or the last run's output: not this run's
        wait_quiet(args.quiet_wait, args.quiet_cpu)
        if cold:
            drop_cache(cand.warm_files)
        try:
            run = run_once(script, cand)
        except RuntimeError as exc:
            return _failed(cand, exc)
        attempts.append(run)
        ok = run.bg_cores <= args.max_bg
        clean += ok
        _print_run(cand, f"run {len(attempts)}", run, "" if ok else "  (contended)")
    order = sorted(range(len(attempts)), key=lambda k: (attempts[k].bg_cores > args.max_bg, k))
    keep = sorted(order[: args.repeat])
    runs = [attempts[k] for k in keep]
    discarded = [attempts[k] for k in range(len(attempts)) if k not in keep]
    return Result(
        cand.key,
        cand.label,
        cand.group,
        cand.nbytes,
        runs,
        warmups,
        note=cand.note,
        read_bytes=cand.read_bytes,
        check=str(runs[-1].payload.get("check", "")) if runs else "",
        discarded=discarded,
    )


def _failed(cand: Candidate, exc: Exception) -> Result:
    text = str(exc).strip().splitlines()
    print(f"    {cand.key:<36} FAILED: {text[-1] if text else exc}", flush=True)
    return Result(
        cand.key, cand.label, cand.group, cand.nbytes, [], [], note=cand.note,
        read_bytes=cand.read_bytes, failed=str(exc)[-2000:],
    )  # fmt: skip


def _print_run(cand: Candidate, what: str, run: Run, extra: str = "") -> None:
    print(
        f"    {cand.key:<34} {what:>7}: {run.seconds:7.3f} s  "
        f"{cand.nbytes / run.seconds / GB:6.2f} GB/s  cpu {run.cpu:6.2f} s  "
        f"rss {run.maxrss / MiB:7.0f} MiB  bg {run.bg_cores:.2f}{extra}",
        flush=True,
    )


def selected(cands: list[Candidate], only: str) -> list[Candidate]:
    words = [w.strip() for w in only.split(",") if w.strip()]
    if not words:
        return cands
    return [c for c in cands if any(w in c.key for w in words)]


# ------------------------------------------------------------------- the child
class RssSampler:
    """Peak ``RssAnon`` of this process, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.01, limit: int = 0) -> None:
        self.interval = interval
        self.limit = limit  # > 0: exit the process (code 75) when RssAnon exceeds it
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def anon() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.anon())
            if self.limit and self.peak > self.limit:
                sys.stderr.write(
                    f"anonymous memory {self.peak / MiB:.0f} MiB exceeded --max-anon "
                    f"{self.limit / MiB:.0f} MiB: run aborted\n"
                )
                sys.stderr.flush()
                os._exit(75)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.anon())


def child_main(
    spec_text: str, kinds: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]]
) -> None:
    """Run one candidate in this (fresh) process and print its result line.

    ``kinds[spec["kind"]](spec)`` does any untimed preparation, times its own region
    with ``time.perf_counter`` and returns ``{"seconds": ..., ...}`` (plus e.g. the
    computed values, so the parent can check that candidates agree)."""
    spec = json.loads(spec_text)
    kinds = {**kinds, "idle": _idle}
    with RssSampler(limit=int(os.environ.get(MAX_ANON_ENV, "0"))) as sampler:
        payload = kinds[spec["kind"]](spec)
    payload["anon_peak"] = sampler.peak
    payload["vmhwm"] = _status_bytes("VmHWM:")
    print(RESULT_TAG + json.dumps(payload), flush=True)


def _status_bytes(key: str) -> int | None:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return None


def _idle(spec: dict[str, Any]) -> dict[str, Any]:
    for mod in spec["modules"]:
        __import__(mod)
    return {"seconds": 0.0}


def baseline_rss(script: Path, modules: Sequence[str]) -> int:
    """Peak RSS of a child that only imports ``modules`` (the interpreter's floor)."""
    cand = Candidate("idle", "idle", "", 0, child={"kind": "idle", "modules": list(modules)})
    return run_once(script, cand).maxrss


# ------------------------------------------------------------------- reporting
def print_table(results: Sequence[Result], title: str, ratio_names: Sequence[str]) -> None:
    print(f"\n{title}")
    head = (
        f"{'candidate':<40} {'median s':>9} {'GB/s':>6} {'min-max s':>15} {'cpu s':>6} "
        f"{'peak RSS':>9} {'anon pk':>8} {'bg':>5}  "
    )
    head += "  ".join(f"{n:>10}" for n in ratio_names) + "  check"
    print(head)
    print("-" * len(head))
    group = None
    for r in results:
        if r.group != group:
            group = r.group
            print(f"[{group}]")
        if not r.runs:
            reason = r.failed.strip().splitlines()[-1] if r.failed.strip() else "no runs"
            print(f"  {r.label:<38} FAILED: {reason}")
            continue
        secs = [x.seconds for x in r.runs]
        anon = f"{r.anon_peak / MiB:6.0f}M" if r.anon_peak is not None else "      -"
        ratios = "  ".join(
            f"{r.ratios[n]:>9.2f}x" if n in r.ratios else f"{'':>10}" for n in ratio_names
        )
        print(
            f"  {r.label:<38} {r.median:>9.3f} {r.gbps:>6.2f} "
            f"{min(secs):>7.3f}-{max(secs):<7.3f} {r.cpu:>6.2f} {r.peak_rss / MiB:>8.0f}M "
            f"{anon:>8} {r.bg:>5.2f}  {ratios}  {r.check}"
        )


def machine_info(data_dir: Path) -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": NCPU,
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["ram_bytes"] = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if RAM_CAP:
        info["ram_cap_bytes"] = RAM_CAP  # every measured process ran under this cap
    usage = shutil.disk_usage(data_dir)
    info["disk_free_bytes"] = usage.free
    with contextlib.suppress(OSError, IndexError):
        info["filesystem"] = subprocess.run(
            ["df", "-T", str(data_dir)], capture_output=True, text=True, check=False
        ).stdout.splitlines()[-1]
    versions = {}
    for mod in ("numpy", "zarr", "numcodecs", "dask", "psutil", "arraystore"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # not installed
            versions[mod] = None
    info["versions"] = versions
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "arraystore"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        info["git"] = rev + (" (arraystore/ has local changes)" if dirty else "")
    except OSError:
        pass
    info["arraystore_source_sha256"] = source_digest()
    return info


def source_digest() -> str:
    """Short hash of arraystore's sources (the working tree may differ from git HEAD)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted((REPO / "arraystore").rglob("*.py")):
        h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]


def write_json(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{stamp}-{socket.gethostname()}.json"
    path.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def npy_offset(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a .npy file."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
        return shape, dtype, f.tell()
