"""kill -9 at every write step of an append / resize (storage/grow.py, kill points in
storage/killpoints.py) leaves the old or the new shape with its values, never a mix:
readers see one of them at once (the memmap header decides), verify settles the rest and
is clean, and the array grows again afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

import arraystore
from arraystore.ops.verify import verify
from arraystore.testing import assert_same, data_file
from tests._crash import KILL_ENV, ROOT, hidden

CHILD = (
    "import sys, numpy as np\n"
    "import arraystore\n"
    "s = arraystore.open(sys.argv[1], mode='r+')\n"
    "a = s[sys.argv[2]]\n"
    "if sys.argv[3] == 'append':\n"
    "    a.append(np.load(sys.argv[4]))\n"
    "else:\n"
    "    a.resize(int(sys.argv[4]), *a.shape[1:])\n"
)

DT = np.dtype([("price", "f8"), ("qty", "i4")])


def _data(name: str, start: int, stop: int) -> np.ndarray:
    rows = np.arange(start, stop)
    if name.endswith("struct"):
        out = np.zeros(len(rows), DT)
        out["price"], out["qty"] = rows * 0.5, rows
        return out
    return (rows[:, None] * 3 + np.arange(3)).astype("f8")


#: (backend, op, phase, the shape that must win)
MEMMAP = [
    ("append", p, "old") for p in ("grow-journal", "grow-extend", "grow-data", "grow-tail")
] + [("append", p, "new") for p in ("grow-header", "grow-meta")]
MEMMAP += [("shrink", "grow-journal", "old"), ("shrink", "grow-header", "new")]
MEMMAP += [("shrink", "grow-tail", "new"), ("shrink", "grow-meta", "new")]
ZARR = [("append", p, "old") for p in ("grow-journal", "grow-data")]
ZARR += [("append", "grow-meta", "new"), ("shrink", "grow-meta", "new")]
ZARR += [("shrink", "grow-drop", "new"), ("grow", "grow-chunk", "old")]
CASES = [("memmap", *c) for c in MEMMAP] + [("zarr", *c) for c in ZARR]
CASES += [("zarr_struct", "append", "grow-field", "old")]
CASES += [("zarr_struct", "append", "grow-field:2", "old")]  # every field new, not the group
CASES += [("zarr_struct", "shrink", "grow-field", "old")]
CASES += [("zarr_struct", "append", "grow-meta", "new")]
CASES += [("memmap_struct", "append", "grow-data", "old")]
CASES += [("memmap_struct", "append", "grow-header", "new")]


def _read_any(path: Path, name: str) -> np.ndarray:
    return arraystore.open(path, mode="r")[name][...]


@pytest.mark.parametrize(("name", "op", "phase", "wins"), CASES, ids=lambda c: str(c))
def test_kill_during_a_resize_leaves_old_or_new(tmp_path, name, op, phase, wins):
    path = tmp_path / "s.store"
    s = arraystore.open(path, mode="a")
    backend = name.split("_")[0]
    old = _data(name, 0, 11)
    s.create(name, data=old, backend=backend, chunks=(4, *old.shape[1:]), checksum=True)
    if op == "append":
        new = np.concatenate([old, _data(name, 11, 18)])
    elif op == "shrink":
        new = old[:6]
    else:
        new = np.concatenate([old, np.zeros_like(old[:5])])
    np.save(tmp_path / "rows.npy", new[len(old) :] if op == "append" else old)
    env = {**os.environ, KILL_ENV: phase, "PYTHONPATH": str(ROOT)}
    arg = str(tmp_path / "rows.npy") if op == "append" else str(len(new))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(path),
            name,
            "append" if op == "append" else "resize",
            arg,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    want = new if wins == "new" else old
    # readers see the shape the commit point decided, before anything is settled
    assert_same(_read_any(path, name), want)
    if backend == "memmap":
        assert_same(np.load(data_file(path, name), mmap_mode="r"), want)
    assert hidden(path) == [f".{name}.grow"]
    s = arraystore.open(path, mode="r+")
    report = verify(s)
    assert not report.corrupt, report.findings
    assert [f.kind for f in report.findings if f.kind != "unchecked"] == ["leftover"]
    assert hidden(path) == []
    assert_same(s[name][...], want)
    if not name.endswith("struct"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert_same(np.asarray(zarr.open_array(path / name, mode="r")[...]), want)
    assert [h["op"] for h in s[name].meta.history] == (
        [] if wins == "old" else ["append" if op == "append" else "resize"]
    )
    more = _data(name, 100, 103)
    assert s[name].append(more) == (len(want) + 3, *want.shape[1:])
    assert_same(s[name][...], np.concatenate([want, more]))
    assert not verify(s).corrupt


def test_the_next_writer_settles_an_interrupted_append(tmp_path):
    path = tmp_path / "s.store"
    s = arraystore.open(path, mode="a")
    old = _data("m", 0, 9)
    s.create("m", data=old, chunks=(4, 3), checksum=True)
    np.save(tmp_path / "rows.npy", _data("m", 9, 12))
    env = {**os.environ, KILL_ENV: "grow-data", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", CHILD, str(path), "m", "append", str(tmp_path / "rows.npy")]
    assert subprocess.run(args, env=env, capture_output=True).returncode == -9
    s = arraystore.open(path, mode="r+")
    s["m"][0] = -1.0  # a write: settled first (rolled back), then written
    want = old.copy()
    want[0] = -1.0
    assert_same(s["m"][...], want)
    assert hidden(path) == []
    assert not verify(s).corrupt


@pytest.mark.parametrize(("phase", "wins"), [("sidecar", "old"), ("committed", "new")])
def test_kill_during_a_memmap_rewrite_leaves_old_or_new(tmp_path, phase, wins):
    """A memmap array growing along axis 1 is rewritten (storage.transaction.NewArray)."""
    path = tmp_path / "s.store"
    s = arraystore.open(path, mode="a")
    old = _data("m", 0, 5)
    s.create("m", data=old, chunks=(2, 3), checksum=True)
    np.save(tmp_path / "cols.npy", np.ones((5, 2)))
    child = CHILD.replace(
        "a.append(np.load(sys.argv[4]))", "a.append(np.load(sys.argv[4]), axis=1)"
    )
    env = {**os.environ, KILL_ENV: phase, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", child, str(path), "m", "append", str(tmp_path / "cols.npy")]
    assert subprocess.run(args, env=env, capture_output=True).returncode == -9
    want = old if wins == "old" else np.concatenate([old, np.ones((5, 2))], axis=1)
    assert_same(_read_any(path, "m"), want)
    s = arraystore.open(path, mode="r+")
    assert not verify(s, repair=True).corrupt
    assert hidden(path) == []
    assert not verify(s).corrupt
    assert_same(s["m"][...], want)


def test_verify_skips_an_array_a_live_writer_resizes(tmp_path):
    from arraystore.storage.grow import Resize

    path = tmp_path / "s.store"
    s = arraystore.open(path, mode="a")
    old = _data("m", 0, 9)
    s.create("m", data=old, chunks=(4, 3), checksum=True)
    with s.lock("m"):
        handle = s.open_handle("m", "r+")
        with Resize(s.path, "m", handle, (12, 3), {"op": "append"}) as job:
            handle.close()
            job.handle.write((slice(9, 12), slice(0, 3)), _data("m", 9, 12))
            report = verify(arraystore.open(path, mode="r+"))
            assert not report.corrupt, report.findings
            assert [(f.kind, f.name) for f in report.findings] == [("unchecked", "m")]
            assert hidden(path) == [".m.grow"]  # left to its writer
            job.commit()
    assert_same(s["m"][...], _data("m", 0, 12))
    assert not verify(s).corrupt
