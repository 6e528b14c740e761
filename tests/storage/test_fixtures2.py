"""Format 2's golden store, and the upgrade of format 1's (issue 17, items 4 and 5).

``tests/fixtures/golden2.store`` is committed (``tests/make_fixtures.py``); never
regenerate it to make these tests pass. ``golden.store`` (format 1) is upgraded in
copies: in place, on a region write, on a metadata update, and killed at every step.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

import arraystore
from arraystore.ops.verify import verify
from arraystore.testing import assert_same, listing, run_cli
from tests._crash import KILL_ENV, ROOT
from tests.storage.test_fixtures import EXPECTED, GOLDEN, records

GOLDEN2 = GOLDEN.parent / "golden2.store"

EXPECTED2 = {
    **EXPECTED,
    "mm_crc": dict(
        backend="memmap",
        codec="none",
        chunks=(3, 2),
        values=np.arange(14, dtype="<i2").reshape(7, 2),
    ),
    "mm_str": dict(
        backend="memmap",
        codec="none",
        chunks=(3,),
        values=np.arange(4).astype("S3"),
    ),
    "zarr_lz4": dict(backend="zarr", codec="lz4", chunks=(4,), values=np.arange(9, dtype="<u2")),
    "zarr_sharded": dict(
        backend="zarr",
        codec="zstd:3",
        chunks=(2, 3),
        values=np.arange(30, dtype="<f4").reshape(10, 3),
    ),
    "zarr_struct_sharded": dict(
        backend="zarr",
        codec="gzip:5",
        chunks=(2,),
        values=records(7, [("id", "<i8", ()), ("vec", "<f4", (2,))]),
    ),
}
SHARDS = {"zarr_sharded": (4, 3), "zarr_struct_sharded": (4,)}


def check_store(s: arraystore.Store, expected: dict) -> None:
    assert s.names() == sorted(expected)
    for name, exp in expected.items():
        arr = s[name]
        assert arr.shape == exp["values"].shape
        assert arr.chunks == exp["chunks"]
        assert arr.backend == exp["backend"]
        assert arr.codec == exp["codec"]
        assert arr.attrs == {"golden": name}
        assert_same(arr[...], exp["values"])
        for field in arr.fields:
            assert_same(arr[field][1:], exp["values"][field][1:])
    report = verify(s)
    assert not report.corrupt, report.to_dict()


def test_golden2_reads_and_is_pure_zarr():
    before = {p: (GOLDEN2 / p).is_dir() or (GOLDEN2 / p).read_bytes() for p in listing(GOLDEN2)}
    s = arraystore.open(GOLDEN2, mode="r")
    check_store(s, EXPECTED2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zarr.open_group(GOLDEN2, mode="r").tree()
        assert_same(
            zarr.open_array(GOLDEN2 / "mm_plain", mode="r")[...], EXPECTED["mm_plain"]["values"]
        )
    for name in ("mm_plain", "mm_struct", "mm_crc"):
        assert_same(np.load(s[name].handle.file, mmap_mode="r")[...], EXPECTED2[name]["values"])
    after = {p: (GOLDEN2 / p).is_dir() or (GOLDEN2 / p).read_bytes() for p in listing(GOLDEN2)}
    assert after == before
    root = json.loads((GOLDEN2 / "zarr.json").read_text())
    assert root["attributes"] == {"arraystore": {"format": 2}}
    for name, shards in SHARDS.items():
        assert s[name].meta.shards == shards
        files = [p for p in (GOLDEN2 / name).rglob("*") if p.is_file() and "c" in p.parts]
        fields = len(s[name].fields) or 1
        assert len(files) == fields * -(-len(s[name]) // shards[0])  # one file per shard
    z = zarr.open_array(GOLDEN2 / "zarr_sharded", mode="r")
    assert_same(z[...], EXPECTED2["zarr_sharded"]["values"])


@pytest.fixture
def golden1(tmp_path) -> Path:
    copy = tmp_path / "golden.store"
    shutil.copytree(GOLDEN, copy)
    return copy


def _formats(path: Path) -> dict[str, int]:
    s = arraystore.open(path, mode="r")
    return {n: s.array_format(n) for n in s.names()}


def test_upgrade_cli_upgrades_every_array(golden1):
    assert set(_formats(golden1).values()) == {1}
    code, out, err = run_cli(["upgrade", str(golden1)])
    assert code == 0, err
    assert out.count("upgraded") == len(EXPECTED)
    assert set(_formats(golden1).values()) == {2}
    check_store(arraystore.open(golden1, mode="r"), EXPECTED)
    names = {Path(p).name for p in listing(golden1)}
    assert not names & {"arraystore.json", "data.npy", "data.crc32c"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zarr.open_group(golden1, mode="r").tree()
    root = json.loads((golden1 / "zarr.json").read_text())
    assert root["attributes"] == {"arraystore": {"format": 2}}
    code, out, _ = run_cli(["upgrade", str(golden1), "mm_plain"])
    assert code == 0 and "already format 2" in out


def test_a_write_to_a_format_1_array_upgrades_it(golden1):
    s = arraystore.open(golden1, mode="r+")
    arr = s["mm_plain"]
    arr[0, 0] = -5.0
    assert s.array_format("mm_plain") == 2
    values = EXPECTED["mm_plain"]["values"].copy()
    values[0, 0] = -5.0
    assert_same(arraystore.open(golden1, mode="r")["mm_plain"][...], values)
    z = s["zarr_struct"]
    s.update_meta("zarr_struct", z.meta.evolve(attrs={"new": 1}))
    assert s.array_format("zarr_struct") == 2
    assert s["zarr_struct"].attrs == {"new": 1}
    assert_same(s["zarr_struct"][...], EXPECTED["zarr_struct"]["values"])
    assert s.array_format("zarr_plain") == 1  # the others are left as they are
    s["zarr_plain"].oindex[[0, 2], [1]] = 99  # an advanced-index write upgrades too
    assert s.array_format("zarr_plain") == 2
    values = EXPECTED["zarr_plain"]["values"].copy()
    values[[0, 2], 1] = 99
    assert_same(s["zarr_plain"][...], values)
    assert s.array_format("mm_struct") == 1


UPGRADE = (
    "import sys\n"
    "import arraystore\n"
    "s = arraystore.open(sys.argv[1], mode='r+')\n"
    "s.upgrade(sys.argv[2])\n"
)


@pytest.mark.parametrize("phase", ["upgrade-data", "upgrade-switch"])
@pytest.mark.parametrize("name", ["mm_plain", "mm_struct", "zarr_struct"])
def test_kill_during_upgrade_leaves_a_readable_array(golden1, name, phase):
    env = {**os.environ, KILL_ENV: phase, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", UPGRADE, str(golden1), name], env=env, capture_output=True
    )
    killed = proc.returncode == -9
    assert killed or (phase == "upgrade-data" and name.startswith("zarr")), proc.stderr
    fmt = _formats(golden1)[name]
    assert fmt == (2 if phase == "upgrade-switch" and killed else 1) or not killed
    s = arraystore.open(golden1, mode="r")
    assert_same(s[name][...], EXPECTED[name]["values"])
    assert not verify(s).corrupt
    arraystore.open(golden1, mode="r+").upgrade(name)  # runs again, to the end
    assert _formats(golden1)[name] == 2
    check_store(arraystore.open(golden1, mode="r"), EXPECTED)
