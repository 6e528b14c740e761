"""Checksums everywhere (issue 8): ``--checksum`` on create/cast/map/import, ``verify``.

* one flipped byte in a checksummed memmap ``data.npy`` or zarr chunk (codecs none, lz4)
  -> ``verify`` exits 1 naming the array and the block / chunk;
* without checksums ``verify`` exits 0 and says it cannot tell;
* cast / map / where / import / from_dask outputs with checksums verify clean, and a flip
  in them is caught (so the checksums really exist); cast keeps the source's setting;
* writes through ``Array[...] = x`` keep a memmap array's checksums valid;
* a damaged or hostile checksum table gives a clean CorruptData, never a traceback.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraystore
import arraystore.core.dtypes
from arraystore.backends.memmap import crc as memmap_crc
from arraystore.backends.memmap import read_header
from arraystore.errors import CorruptData
from arraystore.ops.cast import cast
from arraystore.ops.verify import verify
from arraystore.testing import LZ4_WARNING, assert_same, data_file, run_cli

BS = memmap_crc.BLOCK_SIZE


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x10]))


def npy(array_dir: Path) -> Path:
    """A memmap array's data file (format 2: at its chunk key)."""
    return data_file(array_dir.parent, array_dir.name)


def data_offset(array_dir: Path) -> int:
    return read_header(npy(array_dir))[2]


def assert_clean_error(err: str) -> None:
    assert "Traceback" not in err, err


# ------------------------------------------------------------- memmap flips
@pytest.mark.parametrize("dtype", ["f8", "id:i8,v:3f4"])
@pytest.mark.parametrize("where", [0, BS + 17, 3 * BS - 1, -1])
def test_memmap_flip_is_reported_with_its_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dtype: str, where: int
) -> None:
    store = tmp_path / "c.store"
    code, _, err = run_cli(
        [
            *("create", str(store), "a", "--shape", "400000", "--dtype", dtype),
            *("--fill", "random", "--checksum", "--quiet"),
        ],
        capsys,
    )
    assert code == 0, err
    code, out, _ = run_cli(["verify", str(store)], capsys)
    assert code == 0 and out.strip().endswith("ok") and "no checksums" not in out, out
    arr = arraystore.open(store, mode="r")["a"]
    nbytes = arr.nbytes
    assert nbytes > 3 * BS  # several blocks, the last one short
    pos = where if where >= 0 else nbytes - 1
    flip(npy(store / "a"), data_offset(store / "a") + pos)
    code, out, err = run_cli(["verify", str(store)], capsys)
    assert_clean_error(err)
    assert code == 1, out
    block = pos // BS
    lo, hi = block * BS, min((block + 1) * BS, nbytes) - 1
    row = arr.dtype.itemsize
    expected = (
        f"CORRUPT: a: block {block} (data bytes {lo}-{hi}, rows {lo // row}-{hi // row}): "
        "checksum mismatch"
    )
    assert expected in out, out
    assert out.count("CORRUPT") == 1 and "corruption found" in out
    code, out, _ = run_cli(["verify", str(store), "a", "--json"], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["corrupt"] and f"block {block} " in doc["findings"][0]["message"]


def test_memmap_header_flip_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = arraystore.open(tmp_path / "c.store", mode="a")
    s.create("a", (1000,), "i4", fill="range", checksum=True)
    path = npy(tmp_path / "c.store" / "a")
    header = path.read_bytes()[: data_offset(tmp_path / "c.store" / "a")]
    pad = header.rindex(b"  ")  # a padding space: the header still parses after the flip
    with open(path, "r+b") as f:
        f.seek(pad)
        f.write(b"\t")
    code, out, err = run_cli(["verify", str(s.path)], capsys)
    assert_clean_error(err)
    assert code == 1 and "CORRUPT: a: .npy header" in out, out


# --------------------------------------------------------------- zarr flips
@pytest.mark.filterwarnings(LZ4_WARNING)
@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_zarr_flip_is_reported_with_its_chunk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], codec: str
) -> None:
    store = tmp_path / "c.store"
    code, _, err = run_cli(
        [
            *("create", str(store), "z", "--shape", "4000,3", "--dtype", "f8"),
            *("--fill", "random", "--backend", "zarr", "--codec", codec),
            *("--chunks", "1000,3", "--checksum", "-q"),
        ],
        capsys,
    )
    assert code == 0, err
    code, out, _ = run_cli(["verify", str(store)], capsys)
    assert code == 0 and "no checksums" not in out, out
    chunk = store / "z" / "c" / "2" / "0"
    flip(chunk, os.path.getsize(chunk) // 2)
    code, out, err = run_cli(["verify", str(store)], capsys)
    assert_clean_error(err)
    assert code == 1, out
    assert "CORRUPT: z:" in out and "chunk 'c/2/0'" in out and "checksum" in out, out


# ------------------------------------------------------- without checksums
@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_unchecksummed_flip_verify_cannot_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    s = arraystore.open(tmp_path / "c.store", mode="a")
    s.create("p", (3000,), "f8", fill="random", backend=backend, chunks=1000)
    data = npy(s.path / "p") if backend == "memmap" else s.path / "p" / "c/1"
    end = data_offset(s.path / "p") + 3000 * 8 if backend == "memmap" else os.path.getsize(data)
    flip(data, end - 5)
    code, out, _ = run_cli(["verify", str(s.path)], capsys)
    assert code == 0, out
    assert "note: p: no checksums stored: cannot tell" in out, out
    code, out, _ = run_cli(["info", str(s.path), "p"], capsys)
    assert code == 0 and "checksum" in out and "off" in out, out


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_info_shows_checksum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    s = arraystore.open(tmp_path / "c.store", mode="a")
    s.create("a", (10,), "f8", backend=backend, checksum=True)
    assert s.info("a")["checksum"] is True
    code, out, _ = run_cli(["info", str(s.path), "a"], capsys)
    assert code == 0 and "crc32c per" in out, out
    code, out, _ = run_cli(["info", str(s.path), "a", "--json"], capsys)
    assert json.loads(out)["checksum"] is True


# ------------------------------------------- outputs of cast / map / import
def _corrupt_one(store: arraystore.Store, name: str) -> None:
    """Flip a byte in the middle of the array's stored data."""
    path = store.path / name
    if store[name].backend == "memmap":
        flip(npy(path), data_offset(path) + store[name].nbytes // 2)
        return
    skip = {"zarr.json", "arraystore.json"}
    chunks = sorted(p for p in path.rglob("*") if p.is_file() and p.name not in skip)
    flip(chunks[len(chunks) // 2], os.path.getsize(chunks[len(chunks) // 2]) // 2)


def _assert_checksummed(store: arraystore.Store, name: str) -> None:
    assert store[name].meta.checksum
    rep = verify(store, name)
    assert not rep.findings, rep.findings
    _corrupt_one(store, name)
    rep = verify(store, name)
    assert rep.corrupt and all(f.name == name for f in rep.findings), rep.findings


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_cast_keeps_checksums_and_accepts_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    s = arraystore.open(tmp_path / "c.store", mode="a")
    data = np.random.default_rng(1).standard_normal((300000, 2))
    s.create("src", data=data, backend=backend, checksum=True, chunks=(100000, 2))
    code, _, err = run_cli(
        ["cast", str(s.path), "src", "--to", "f4", "--casting", "unsafe", "--out", "b", "-q"],
        capsys,
    )
    assert code == 0, err
    assert_same(s["b"][...], data.astype("f4"))
    code, _, err = run_cli(
        [
            *("cast", str(s.path), "src", "--to", "f4", "--casting", "unsafe"),
            *("--out", "n", "--no-checksum", "-q"),
        ],
        capsys,
    )
    assert code == 0, err
    assert not s["n"].meta.checksum
    assert [f.kind for f in verify(s, "n").findings] == ["unchecked"]
    assert not list((s.path / "n").glob("*.crc32c"))
    _assert_checksummed(s, "b")
    # an unchecksummed source gains checksums with --checksum (in place)
    from arraystore.ops.cast import cast

    cast(s, "n", "f8", checksum=True)
    assert_same(s["n"][...], data.astype("f4").astype("f8"))
    _assert_checksummed(s, "n")


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_map_and_where_outputs_with_checksum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    s = arraystore.open(tmp_path / "c.store", mode="a")
    data = np.arange(400000, dtype="f8")
    s.create("x", data=data, backend=backend)
    code, _, err = run_cli(
        ["map", str(s.path), "x", "--expr", "x * 2", "--out", "m", "--checksum", "-q"], capsys
    )
    assert code == 0, err
    assert_same(s["m"][...], data * 2)
    code, _, err = run_cli(
        ["map", str(s.path), "x", "--where", "x % 3 == 0", "--out", "w", "--checksum", "-q"],
        capsys,
    )
    assert code == 0, err
    assert_same(s["w"][...], data[data % 3 == 0])
    out = s["x"].map(lambda b: b + 1, out="f", checksum=True)
    assert_same(out[...], data + 1)
    for name in ("m", "w", "f"):
        _assert_checksummed(s, name)


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_import_with_checksum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    s = arraystore.open(tmp_path / "c.store", mode="a")
    npy = tmp_path / "in.npy"
    data = np.random.default_rng(2).integers(0, 1000, (200000, 3)).astype("i8")
    np.save(npy, data)
    csv = tmp_path / "in.csv"
    rows = 50000
    csv.write_text("a,b\n" + "".join(f"{i},{i * 0.5}\n" for i in range(rows)))
    for name, src in (("n", npy), ("t", csv)):
        code, _, err = run_cli(
            ["import", str(s.path), name, str(src), "--backend", backend, "--checksum", "-q"],
            capsys,
        )
        assert code == 0, err
    assert_same(s["n"][...], data)
    assert_same(s["t"]["a"][...], np.arange(rows, dtype=s["t"]["a"].dtype))
    for name in ("n", "t"):
        _assert_checksummed(s, name)


def test_from_dask_with_checksum(tmp_path: Path) -> None:
    da = pytest.importorskip("dask.array")
    from arraystore.ops.interop import from_dask

    s = arraystore.open(tmp_path / "c.store", mode="a")
    x = da.arange(300000, chunks=70000).astype("f8")
    from_dask(x, s, "d", checksum=True, scheduler="threads")
    assert_same(s["d"][...], np.arange(300000, dtype="f8"))
    _assert_checksummed(s, "d")


def test_fill_zeros_and_empty_arrays_with_checksum(tmp_path: Path) -> None:
    s = arraystore.open(tmp_path / "c.store", mode="a")
    s.create("z", (300000,), "f8", checksum=True)  # a sparse file: still checksummed
    s.create("e", (0, 3), "f8", checksum=True)
    s.create("s", (), "i4", data=np.int32(7), checksum=True)
    assert not verify(s).findings
    s["e"][...] = np.zeros((0, 3))
    s["s"][...] = 9
    assert not verify(s).findings
    assert s["s"][...] == 9
    _assert_checksummed(s, "z")
    _assert_checksummed(s, "s")


# ---------------------------------------------------- writes keep checksums
def test_setitem_keeps_checksums_valid(tmp_path: Path) -> None:
    s = arraystore.open(tmp_path / "c.store", mode="a")
    truth = np.random.default_rng(3).standard_normal((200000, 3))
    a = s.create("a", data=truth, checksum=True)
    writes = [
        (np.s_[10:20], 1.5),
        (np.s_[-1, 2], 7.0),
        (np.s_[:, 1], -2.0),  # a column: every block, through the memmap path
        (np.s_[43690:43700], 3.0),  # rows across the block 0/1 boundary
        (np.s_[5], np.arange(3.0)),
    ]
    for key, value in writes:
        a[key] = value
        truth[key] = value
        assert not verify(s, "a").findings, key
    assert_same(arraystore.open(s.path, mode="r")["a"][...], truth)
    rec = s.create("r", (100000,), "id:i8,v:2f4", fill="range", checksum=True)
    r_truth = rec[...]
    rec["v"][200:70000] = np.ones((69800, 2), dtype="f4")
    r_truth["v"][200:70000] = 1
    last = np.array([(5, (1.0, 2.0))], dtype=rec.dtype)
    rec[99999:] = last
    r_truth[99999:] = last
    assert not verify(s, "r").findings
    assert_same(rec[...], r_truth)


def test_concurrent_writes_sharing_blocks_keep_checksums(tmp_path: Path) -> None:
    s = arraystore.open(tmp_path / "c.store", mode="a")
    n = 300000
    a = s.create("a", (n,), "f8", checksum=True)
    bounds = np.linspace(0, n, 17).astype(int)  # 16 regions, none aligned to blocks

    def write(i: int) -> None:
        for _ in range(3):
            a[bounds[i] : bounds[i + 1]] = float(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not verify(s, "a").findings
    expected = np.repeat(np.arange(16.0), np.diff(bounds))
    assert_same(a[...], expected)


def test_checksum_updates_of_one_block_are_serialised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writer A has read the block (before B's write) and is about to store its checksum
    when B writes the same block: B's recomputation must come after A's store."""
    s = arraystore.open(tmp_path / "c.store", mode="a")
    a = s.create("a", (1000,), "f8", checksum=True)  # one block
    real_update, real_crc = memmap_crc.update, memmap_crc.crc32c
    a_read, b_written, b_done = threading.Event(), threading.Event(), threading.Event()

    def crc(data: bytes) -> int:
        if threading.current_thread().name == "A":
            a_read.set()
            b_written.wait(5)
            b_done.wait(1)  # times out when B waits for A (as it must)
        return real_crc(data)

    def update(*args: object) -> None:
        if threading.current_thread().name == "B":
            b_written.set()
            try:
                real_update(*args)  # type: ignore[arg-type]
            finally:
                b_done.set()
        else:
            real_update(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(memmap_crc, "crc32c", crc)
    monkeypatch.setattr(memmap_crc, "update", update)

    def write_a() -> None:
        a[0:10] = 1.0

    def write_b() -> None:
        a[500:510] = 2.0

    ta = threading.Thread(target=write_a, name="A")
    ta.start()
    assert a_read.wait(5)
    tb = threading.Thread(target=write_b, name="B")
    tb.start()
    ta.join()
    tb.join()
    monkeypatch.undo()
    assert not verify(s, "a").findings
    expected = np.zeros(1000)
    expected[0:10], expected[500:510] = 1.0, 2.0
    assert_same(a[...], expected)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(0, 150000), st.integers(0, 150000), st.integers(-1, 1)),
        min_size=1,
        max_size=5,
    )
)
def test_random_writes_keep_checksums(tmp_path: Path, ops: list[tuple[int, int, int]]) -> None:
    path = tmp_path / "h.store"
    s = arraystore.open(path, mode="a")
    a = s.create("a", (150000, 2), "f8", checksum=True, overwrite=True)
    truth = np.zeros((150000, 2))
    for i, (lo, hi, col) in enumerate(ops):
        lo, hi = min(lo, hi), max(lo, hi)
        key = np.s_[lo:hi] if col < 0 else np.s_[lo:hi, col]
        a[key] = i + 1.0
        truth[key] = i + 1.0
    assert not verify(s, "a").findings
    assert_same(a[...], truth)


# --------------------------------------------------- a hostile checksum table
def _field(store: arraystore.Store, offset: int, fmt: str, value: int) -> None:
    """Overwrite a field of the checksum table inside the data file (format 2)."""
    with store.open_handle("a", "r") as handle:
        loc = handle.crc_loc  # type: ignore[attr-defined]
    with open(loc.file, "r+b") as f:
        f.seek(loc.base + offset)
        f.write(struct.pack(fmt, value))


BAD_FILES = {
    "magic": lambda s: _field(s, 0, "<Q", 0),
    "version": lambda s: _field(s, 8, "<I", 99),
    "block0": lambda s: _field(s, 16, "<Q", 0),
    "block_odd": lambda s: _field(s, 16, "<Q", 3 * 4096),
    "block_huge": lambda s: _field(s, 16, "<Q", 1 << 62),
    "block_small": lambda s: _field(s, 16, "<Q", 4096),  # table size then disagrees
    "offset": lambda s: _field(s, 24, "<Q", 2**63),
    "nbytes": lambda s: _field(s, 32, "<Q", 2**64 - 1),
}


@pytest.mark.parametrize("damage", sorted(BAD_FILES))
def test_damaged_checksum_file_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    s = arraystore.open(tmp_path / "c.store", mode="a")
    truth = np.arange(400000.0)
    s.create("a", data=truth, checksum=True)
    BAD_FILES[damage](s)
    code, out, err = run_cli(["verify", str(s.path)], capsys)
    assert_clean_error(err)
    assert code == 1, out
    lines = [ln for ln in out.splitlines() if ln.startswith("CORRUPT")]
    assert len(lines) == 1 and lines[0].startswith("CORRUPT: a: the checksum table of c/0"), out
    # reads do not depend on the checksum file; a write refuses with CorruptData
    arr = arraystore.open(s.path)["a"]
    assert_same(arr[...], truth)
    with pytest.raises(CorruptData, match=r"checksum table"):
        arr[0] = 1.0
    code, out, err = run_cli(["verify", str(s.path), "--repair"], capsys)
    assert code == 1 and "Traceback" not in err  # repair never blesses unknown data


def test_resumed_cast_keeps_the_checksum_setting_of_its_journal(tmp_path: Path) -> None:
    from arraystore.ops.cast import cast

    s = arraystore.open(tmp_path / "c.store", mode="a")
    data = np.arange(2_000_000, dtype="f8")
    s.create("a", data=data, chunks=100_000)
    calls: list[int] = []

    def interrupt(_task: object, nbytes: int) -> None:
        calls.append(nbytes)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cast(s, "a", "f4", memory="16M", executor="serial", progress=interrupt, checksum=True)
    assert (s.path / ".a.cast").is_dir() and not s["a"].meta.checksum
    res = cast(s, "a", None, resume=True)  # the options (checksum too) come from the journal
    assert res.resumed_chunks > 0
    assert_same(s["a"][...], data.astype("f4"))
    _assert_checksummed(s, "a")


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_resumed_map_keeps_the_checksum_setting(tmp_path: Path, backend: str) -> None:
    from arraystore.ops.map.blocks import map_expr

    s = arraystore.open(tmp_path / "c.store", mode="a")
    data = np.arange(400_000, dtype="f8")
    s.create("x", data=data, backend=backend, chunks=20_000)
    calls: list[int] = []

    def interrupt(_task: object, nbytes: int) -> None:
        calls.append(nbytes)
        if len(calls) == 3:
            raise KeyboardInterrupt

    kw = dict(out="m", chunks=20_000, executor="serial")
    with pytest.raises(KeyboardInterrupt):
        map_expr(s, "x + 1", "x", progress=interrupt, checksum=True, **kw)
    assert "m" not in s and any(p.name.startswith(".m.") for p in s.path.iterdir())
    map_expr(s, "x + 1", "x", resume=True, **kw)  # checksum comes from the journal
    assert_same(s["m"][...], data + 1)
    _assert_checksummed(s, "m")


# ------------------------------------------- lost zarr chunks (issue 15, item 4)
def _chunk_files(array_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(array_dir))
        for p in array_dir.rglob("*")
        if p.is_file() and p.name not in ("zarr.json", "arraystore.json")
    )


def _expected_chunks(arr: arraystore.Array) -> list[str]:
    grid = [range(-(-s // c)) for s, c in zip(arr.shape, arr.chunks, strict=True)]
    import itertools

    out = []
    for f in arraystore.core.dtypes.fields_of(arr.dtype) or [None]:
        trail = (0,) * (len(f.subshape) if f else 0)
        prefix = f"{f.name}/" if f else ""
        for idx in itertools.product(*grid):
            out.append(prefix + "/".join(["c", *map(str, idx + trail)]))
    return sorted(out)


def _zarr(s: arraystore.Store, d: str, fill: str | None = None) -> arraystore.Array:
    return s.create("a", (10, 3), d, chunks=(4, 3), backend="zarr", fill=fill)


def _cast(s: arraystore.Store, d: str) -> arraystore.Array:
    _zarr(s, d, "ones")
    cast(s, "a", "f4" if np.dtype(arraystore.parse_dtype(d)).names is None else {"x": "f4"})
    return s["a"]


def _map(s: arraystore.Store, d: str) -> arraystore.Array:
    s.create("src", (10, 3), "f8", chunks=(4, 3), backend="zarr", fill="range")
    return s["src"].map("src * 0", out="a")


def _import(s: arraystore.Store, d: str) -> arraystore.Array:
    npy = s.path.parent / "zeros.npy"
    np.save(npy, np.zeros((10, 3), arraystore.parse_dtype(d)))
    return s.import_file("a", npy, backend="zarr", chunks=(4, 3))


def _region_write(s: arraystore.Store, d: str) -> arraystore.Array:
    arr = _zarr(s, d, "ones")
    arr[0:10] = np.zeros((10, 3), arr.dtype)
    return s["a"]


WRITERS: dict[str, Callable[[arraystore.Store, str], arraystore.Array]] = {
    "create-default": _zarr,
    "create-zeros": lambda s, d: _zarr(s, d, "zeros"),
    "create-empty": lambda s, d: _zarr(s, d, "empty"),
    "create-data": lambda s, d: s.create(
        "a", data=np.zeros((10, 3), arraystore.parse_dtype(d)), chunks=(4, 3), backend="zarr"
    ),
    "cast": _cast,
    "map": _map,
    "import": _import,
    "region-write": _region_write,
}


@pytest.mark.parametrize("dtype", ["f8", "x:f8,y:2i2,s:S3"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_zarr_write_path_writes_every_chunk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], writer: str, dtype: str
) -> None:
    """A chunk equal to the fill value is written too, so that a missing chunk file of
    an array arraystore wrote means lost data: verify reports it, reads refuse it."""
    s = arraystore.open(tmp_path / "s.store", mode="a")
    arr = WRITERS[writer](s, dtype)
    home = tmp_path / "s.store" / "a"
    assert _chunk_files(home) == _expected_chunks(arr)
    before = arr[...]
    assert not verify(s).corrupt
    for lost in (_expected_chunks(arr)[0], _expected_chunks(arr)[-1]):
        data = (home / lost).read_bytes()
        (home / lost).unlink()
        report = verify(s, "a")
        assert report.corrupt
        assert [f.message for f in report.findings if f.kind == "corrupt"] == [
            f"chunk {lost!r} missing"
        ]
        with pytest.raises(CorruptData, match=f"chunk '{lost}' missing"):
            s["a"][...]
        code, out, _ = run_cli(["verify", str(tmp_path / "s.store")], capsys)
        assert code == 1 and f"CORRUPT: a: chunk '{lost}' missing" in out, out
        (home / lost).mkdir()  # a directory in place of the chunk: as lost
        assert verify(s, "a").corrupt
        (home / lost).rmdir()
        (home / lost).write_bytes(data)
    assert_same(s["a"][...], before)


@pytest.mark.filterwarnings(LZ4_WARNING)
def test_lost_checksummed_lz4_chunk_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's reproduction: verify (with --checksum) said ok and stats read zeros."""
    store = str(tmp_path / "r")
    code, _, err = run_cli(
        [
            *("create", store, "zz", "--shape", "1000,4", "--chunks", "100,4", "--dtype"),
            *("f8", "--fill", "range", "--backend", "zarr", "--codec", "lz4", "--checksum"),
        ],
        capsys,
    )
    assert code == 0, err
    (tmp_path / "r" / "zz" / "c" / "3" / "0").unlink()
    code, out, _ = run_cli(["verify", store], capsys)
    assert code == 1 and "CORRUPT: zz: chunk 'c/3/0' missing" in out, out
    code, out, err = run_cli(["stats", store, "zz"], capsys)
    assert code == 1 and err == "error: chunk 'c/3/0' missing\n", (out, err)


def test_chunk_written_while_building_may_be_partial(tmp_path: Path) -> None:
    """Writers that fill a new array in pieces smaller than a chunk (imports, from_dask)
    still work: before the array is committed a missing chunk is not yet written."""
    s = arraystore.open(tmp_path / "s.store", mode="a")
    arraystore.from_dask(
        __import__("dask.array").array.arange(10, chunks=3), s, "d", backend="zarr", chunks=4
    )
    assert_same(s["d"][...], np.arange(10))
    assert _chunk_files(tmp_path / "s.store" / "d") == ["c/0", "c/1", "c/2"]
