"""Python writes and the writer lock (issue 15, items 2, 3 and 14).

* ``arr[...] = x`` (plain, structured, field, checksummed) takes the array's writer lock
  for the write: refused with ``LockedError`` while a CLI/other writer holds it (data
  unchanged), and a cast/map/mv/rm started while a Python write runs is refused;
* real concurrency: a subprocess writing in a loop while ``arraystore cast`` runs loses no
  accepted write and corrupts nothing (both backends);
* a write through a handle opened before the array was replaced (cast, create
  --overwrite, mv --overwrite) or removed (rm, mv) raises ``ArrayNotFound`` instead of
  landing in the old (discarded) or the new array;
* a full disk: ``rm`` and ``mv`` work (taking the lock needs no free block).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayNotFound, LockedError
from arraystore.ops.verify import verify
from tests.storage.test_reliability import _env, cli_run, lock_holder, one_error_line, run_cli, top

BACKENDS = ["memmap", "zarr"]


def _make(root: Path, backend: str, checksum: bool = False) -> arraystore.Store:
    s = arraystore.open(root, mode="a")
    s.create("a", (1000,), "f8", fill="range", backend=backend, chunks=100, checksum=checksum)
    return s


# ------------------------------------------------- refused while another holds it
@pytest.mark.parametrize("checksum", [False, True], ids=["plain", "checksum"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_python_write_refused_while_a_writer_holds_the_lock(
    tmp_path: Path, backend: str, checksum: bool
) -> None:
    root = tmp_path / "s.store"
    s = _make(root, backend, checksum)
    rec = s.create(
        "r",
        (50,),
        [("price", "f8"), ("vec", "f4", (3,))],
        backend=backend,
        chunks=10,
        checksum=checksum,
    )
    arr = s["a"]
    before_a, before_r = arr[...], rec[...]
    holders = [lock_holder(root, "a"), lock_holder(root, "r")]
    try:
        writes: list[Callable[[], None]] = [
            lambda: arr.__setitem__(slice(0, 3), 5.0),
            lambda: arr.__setitem__(7, 1.0),
            lambda: arr.__setitem__(Ellipsis, 0.0),
            lambda: rec.__setitem__(slice(0, 3), rec[0:3]),
            lambda: rec["price"].__setitem__(slice(0, 3), 9.0),
            lambda: rec.__setitem__("vec", 1.0),
            lambda: s.update_meta("a", arr.meta.evolve(attrs={"unit": "m"})),
        ]
        for i, write in enumerate(writes):
            pid = holders[0 if i in (0, 1, 2, 6) else 1].pid
            locked = rf"array '[ar]' is locked by a writer \(PID {pid}\)"
            with pytest.raises(LockedError, match=locked):
                write()
    finally:
        for h in holders:
            h.kill()
            h.communicate()
    fresh = arraystore.open(root, mode="r")
    np.testing.assert_array_equal(fresh["a"][...], before_a)
    np.testing.assert_array_equal(fresh["r"][...], before_r)
    assert fresh["a"].attrs == {}
    assert not verify(arraystore.open(root)).corrupt
    arr[0:3] = 5.0  # the holders are gone: their (stale) lock files are taken over
    rec["price"][0:3] = 9.0
    np.testing.assert_array_equal(arraystore.open(root, mode="r")["a"][0:4], [5, 5, 5, 3])
    np.testing.assert_array_equal(arraystore.open(root, mode="r")["r"]["price"][0:3], [9] * 3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "command",
    [
        ["cast", "{root}", "a", "--to", "f4"],
        ["rm", "{root}", "a"],
        ["mv", "{root}", "a", "b"],
        ["map", "{root}", "a", "--expr", "a * 2", "--out", "a", "--overwrite"],
        ["create", "{root}", "a", "--shape", "3", "--dtype", "f8", "--overwrite"],
    ],
    ids=["cast", "rm", "mv", "map", "create"],
)
def test_cli_writer_refused_while_a_python_write_runs(
    tmp_path: Path, backend: str, command: list[str]
) -> None:
    """The reverse: a CLI writer started in the middle of ``arr[...] = x`` fails fast
    instead of interleaving with it (it used to replace the array under the write)."""
    root = tmp_path / "s.store"
    s = _make(root, backend)
    arr = s["a"]
    real_write = arr.handle.write
    seen: list[subprocess.CompletedProcess[str]] = []

    def write_during_a_cli_run(*args: object, **kwargs: object) -> None:
        seen.append(cli_run(*(c.format(root=root) for c in command)))
        real_write(*args, **kwargs)  # type: ignore[arg-type]

    arr.handle.write = write_during_a_cli_run  # type: ignore[method-assign]
    arr[0:3] = -1.0
    assert seen[0].returncode == 1, seen[0]
    line = one_error_line(seen[0].stderr)
    assert f"array 'a' is locked by a writer (PID {os.getpid()})" in line
    want = np.arange(1000.0)
    want[0:3] = -1
    np.testing.assert_array_equal(arraystore.open(root, mode="r")["a"][...], want)
    assert top(root) == ["a", "zarr.json"]


def test_threads_of_one_process_share_the_write_lock(tmp_path: Path) -> None:
    """Region writes of one process share the lock (threads writing disjoint regions do
    not refuse each other), but not with an operation of another thread."""
    from concurrent.futures import ThreadPoolExecutor

    s = _make(tmp_path / "s.store", "zarr")
    arr = s["a"]
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: arr.__setitem__(slice(i * 100, i * 100 + 100), -i), range(10)))
    np.testing.assert_array_equal(arr[...], np.repeat(-np.arange(10.0), 100))
    with s.lock("a"):
        arr[0:1] = 7.0  # the thread holding the operation's lock may write
        with ThreadPoolExecutor(1) as ex, pytest.raises(LockedError, match="locked by a writer"):
            ex.submit(arr.__setitem__, slice(0, 1), 8.0).result()
    assert arr[0] == 7.0
    with s.write_lock("a"), pytest.raises(LockedError, match="already locked by this process"):
        s.lock("a").__enter__()


# --------------------------------------------------------- real concurrency
_WRITER = """
import json, sys, time
from pathlib import Path
import arraystore
from arraystore.errors import ArrayNotFound, LockedError
root, stop = sys.argv[1], Path(sys.argv[2])
s = arraystore.open(root)
arr = s["a"]
last, counts, i = {}, {"ok": 0, "locked": 0, "replaced": 0}, 0
print("go", flush=True)
while not stop.exists():
    i += 1
    k = i % 100
    try:
        arr[k : k + 1] = float(i)
    except LockedError:
        counts["locked"] += 1
        continue
    except ArrayNotFound:
        counts["replaced"] += 1
        arr = s["a"]
        continue
    last[k] = i
    counts["ok"] += 1
    time.sleep(0.0005)
print(json.dumps({"last": last, "counts": counts}))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_python_writer_racing_a_cast_loses_nothing(tmp_path: Path, backend: str) -> None:
    """Was: memmap -- every write accepted, those during the cast silently lost; zarr --
    the committed array corrupt (a float64 chunk in the float32 array). Now every write
    is refused (LockedError), redirected (ArrayNotFound: reopen) or kept: the final array
    holds the last accepted value of every position, and verify finds nothing."""
    root = tmp_path / "s.store"
    s = arraystore.open(root, mode="a")
    n = 4_000_000
    s.create("a", (n,), "f8", fill="range", backend=backend, chunks=200_000)
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert writer.stdout is not None and writer.stdout.readline() == "go\n"
    time.sleep(0.2)
    for _ in range(100):  # refused while a write holds the lock: retry
        cast = cli_run("cast", str(root), "a", "--to", "f4", "--quiet", timeout=120)
        if cast.returncode == 0:
            break
        assert f"'a' is locked by a writer (PID {writer.pid})" in one_error_line(cast.stderr)
    time.sleep(0.3)
    stop.touch()
    log = json.loads(writer.communicate(timeout=60)[0])
    assert cast.returncode == 0, cast.stderr
    out = arraystore.open(root, mode="r")["a"]
    assert out.dtype == np.float32
    got = out[0:100]
    for k in range(100):
        want = log["last"].get(str(k), k)
        assert got[k] == want, (k, got[k], want, log["counts"])
    np.testing.assert_array_equal(out[100:n], np.arange(100, n, dtype=np.float32))
    assert not verify(arraystore.open(root)).corrupt
    assert top(root) == ["a", "zarr.json"]
    assert log["counts"]["ok"] > 0 and log["counts"]["replaced"] >= 1, log["counts"]


# ------------------------------------------- writes through a replaced handle
def _replace(root: Path, how: str, backend: str) -> None:
    s = arraystore.open(root)
    if how == "cast":
        r = cli_run("cast", str(root), "a", "--to", "f4", "--quiet")
    elif how == "create-overwrite":
        r = cli_run(
            *("create", str(root), "a", "--shape", "500", "--dtype", "f4", "--fill", "ones"),
            *("--overwrite", "--backend", backend),
        )
    elif how == "mv-overwrite":
        s.create("b", (500,), "f4", fill="ones", backend=backend)
        r = cli_run("mv", str(root), "b", "a", "--overwrite")
    elif how == "rm":
        r = cli_run("rm", str(root), "a")
    else:  # mv away
        r = cli_run("mv", str(root), "a", "moved")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("how", ["cast", "create-overwrite", "mv-overwrite", "rm", "mv-away"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_write_through_a_replaced_handle_raises(tmp_path: Path, backend: str, how: str) -> None:
    """Was (memmap): the write went into the old, unlinked data file -- accepted and
    silently lost. Now both backends raise ArrayNotFound and change nothing; reads through
    the old memmap handle keep returning the old data (the README promises that)."""
    root = tmp_path / "s.store"
    s = _make(root, backend, checksum=True)
    arr = s["a"]
    arr[0:1] = -5.0  # in use before the replacement (its descriptor is open)
    _replace(root, how, backend)
    fresh = arraystore.open(root, mode="r")
    before = {n: fresh[n][...] for n in fresh.names()}
    with pytest.raises(ArrayNotFound, match="'a' was replaced or removed after it was opened"):
        arr[0:2] = 42.0
    with pytest.raises(ArrayNotFound, match=r"replaced since it was opened|no array 'a'"):
        s.update_meta("a", arr.meta.evolve(attrs={"x": 1}))
    after = arraystore.open(root, mode="r")
    assert after.names() == list(before)
    for n, data in before.items():
        np.testing.assert_array_equal(after[n][...], data)
    assert not verify(after).corrupt
    if backend == "memmap":
        want = np.arange(1000.0)
        want[0] = -5
        np.testing.assert_array_equal(arr[...], want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_closed_handle_does_not_reopen_a_replacement(tmp_path: Path, backend: str) -> None:
    """A closed (or unpickled) handle reopens its files by name: after a replacement
    that is another array, which its metadata do not describe."""
    import pickle

    root = tmp_path / "s.store"
    s = _make(root, backend)
    arr = s["a"]
    moved = pickle.loads(pickle.dumps(arr.handle))
    arr.handle.close()
    _replace(root, "cast", backend)
    with pytest.raises(ArrayNotFound, match="replaced or removed"):
        arr[0:2] = 1.0
    with pytest.raises(ArrayNotFound, match="replaced or removed"):
        moved.check_current()
    if backend == "memmap":
        with pytest.raises(ArrayNotFound, match="replaced or removed"):
            arr[0:2]
    np.testing.assert_array_equal(
        arraystore.open(root, mode="r")["a"][...], np.arange(1000, dtype=np.float32)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_pickled_handle_does_not_write_into_a_reused_inode(tmp_path: Path, backend: str) -> None:
    """rm + create of the same name, while a pickled (or closed) handle of the old array
    is around: ext4/xfs hand the freed inode number to the new array's file / folder at
    once (here 3 runs in 4), so the inode number alone took the new array for the old one
    and the write landed in it. The inode's generation (FS_IOC_GETVERSION) tells them
    apart: the write raises ArrayNotFound, the new array is unchanged."""
    import pickle

    root = tmp_path / "s.store"
    for _ in range(12):
        shutil.rmtree(root, ignore_errors=True)
        s = _make(root, backend)
        blob = pickle.dumps(s["a"])
        s.delete("a")
        s.create("a", (1000,), "f8", fill="ones", backend=backend, chunks=100)
        old = pickle.loads(blob)
        with pytest.raises(ArrayNotFound, match="replaced or removed"):
            old[0:5] = -1.0
        np.testing.assert_array_equal(arraystore.open(root, mode="r")["a"][...], np.ones(1000))


# ------------------------------------------------------------------ disk full
@pytest.fixture
def full_tmpfs() -> Path:
    """A 16 MiB tmpfs (root only; skipped where mounting is refused)."""
    mnt = Path(f"/mnt/b_full_{os.getpid()}")
    mnt.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(mnt, ignore_errors=True)


def _fill_up(root: Path) -> None:
    fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 1):  # then the last partial page
            try:
                while True:
                    os.write(fd, b"\xff" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rm_and_mv_work_on_a_full_disk(
    full_tmpfs: Path, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: ``rm``/``mv`` failed with ENOSPC (writing the lock file needs a block), so a
    full disk could not be freed. The flock is the lock; writing its identity is best
    effort."""
    root = full_tmpfs / "s.store"
    s = arraystore.open(root, mode="a")
    for name in ("a", "b", "keep"):
        s.create(name, (100_000,), "f8", fill="range", backend=backend)
    (full_tmpfs / "probe").mkdir()
    _fill_up(full_tmpfs / "probe")
    with pytest.raises(OSError):
        (full_tmpfs / "probe" / "x").write_bytes(b"x" * 8192)
    code, _, err = run_cli(["mv", str(root), "a", "m"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["mv", str(root), "b", "m", "--overwrite"], capsys)
    assert code == 0, err
    free = shutil.disk_usage(full_tmpfs).free
    code, _, err = run_cli(["rm", str(root), "m"], capsys)
    assert code == 0, err
    assert shutil.disk_usage(full_tmpfs).free >= free + 800_000
    assert top(root) == ["keep", "zarr.json"]
    np.testing.assert_array_equal(arraystore.open(root, mode="r")["keep"][...], np.arange(1e5))
