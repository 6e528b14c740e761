"""Shared machinery of the crash tests (tests/ops/cast/test_cast_crash.py,
tests/storage/test_crash_points.py).

Subprocesses are SIGKILLed either by the library's own test hook
(``ARRAYSTORE_TEST_KILL_AT=PHASE[:N]``, arraystore/storage/killpoints.py) or after a delay;
these helpers run them, checksum trees and list what a killed writer left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
KILL_ENV = "ARRAYSTORE_TEST_KILL_AT"
#: runs the CLI of this checkout; argv[1] == "--no-exchange" first disables renameat2 (the
#: two-rename commit path of file systems without RENAME_EXCHANGE)
CLI_CHILD = (
    "import sys\n"
    "if sys.argv[1:2] == ['--no-exchange']:\n"
    "    import arraystore.fs.local as io\n"
    "    io._libc_renameat2 = lambda: None\n"
    "    del sys.argv[1]\n"
    "from arraystore.cli import main\n"
    "main(sys.argv[1:], prog_name='arraystore')\n"
)


def pattern(start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of the test data: multiples of 0.25 in [-1000, 249000]."""
    base = np.arange(start * 8, stop * 8, dtype=np.int64) % 1_000_003
    return (base.astype(np.float64) * 0.25 - 1000.0).reshape(-1, 8)


def crc_file(path: Path, crc: int = 0) -> int:
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            crc = zlib.crc32(block, crc)
    return crc


def crc_tree(path: Path) -> str:
    """Checksum of every entry below ``path``: relative paths, sizes and bytes."""
    crc = 0
    n = 0
    for p in sorted(Path(path).rglob("*")):
        rel = str(p.relative_to(path)).encode()
        crc = zlib.crc32(rel, crc)
        if p.is_file():
            crc = zlib.crc32(str(p.stat().st_size).encode(), crc)
            crc = crc_file(p, crc)
        n += 1
    return f"{n}:{crc:08x}"


def hidden(store_path: Path, locks: bool = False) -> list[str]:
    """Hidden entries of a store; writer lock files only with ``locks``: a killed writer
    leaves its ``.NAME.lock`` behind, stale (its PID is gone) and taken over by the next."""
    return sorted(
        e
        for e in os.listdir(store_path)
        if e.startswith(".") and (locks or not e.endswith(".lock"))
    )


def link_tree(src: Path, dst: Path) -> None:
    """Copy a directory tree as hard links (instant, no data copied)."""
    shutil.copytree(src, dst, copy_function=os.link)


def run_child(
    args: list[str],
    kill_after: float | None = None,
    kill_at: str | None = None,
    anchor: Path | None = None,
) -> tuple[int, float]:
    """Run a subprocess (in the repository root, so this checkout is imported); SIGKILL it
    after ``kill_after`` seconds if still running, or let it kill itself at ``kill_at``.
    With ``anchor``, the seconds count from when that path first exists (polled every
    0.2 ms: e.g. the writer's lock file, to aim at the moments after the interpreter's
    start) and the result's seconds are from then on too.
    Returns (exit status, seconds); a status other than 0 / -SIGKILL fails the test."""
    env = dict(os.environ)
    env.pop(KILL_ENV, None)
    if kill_at is not None:
        env[KILL_ENV] = kill_at
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if anchor is not None:
        while not os.path.lexists(anchor) and proc.poll() is None:
            time.sleep(0.0002)
        t0 = time.perf_counter()
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    _out, err = proc.communicate(timeout=300)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"subprocess {args[1:4]} failed ({proc.returncode}): {err[-2000:]}")
    return proc.returncode, time.perf_counter() - t0


def cli_child(args: list[str], no_exchange: bool = False) -> list[str]:
    """The command line running ``arraystore ARGS`` from this checkout."""
    return [PY, "-c", CLI_CHILD, *(["--no-exchange"] if no_exchange else []), *args]
