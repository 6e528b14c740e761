"""Remote (fsspec URL) stores: ``memory://`` through the Python API and the CLI, and a real
S3-compatible HTTP server (moto's server mode on 127.0.0.1) through the CLI and dask.

Every value is compared with numpy on the same data. The S3 tests are skipped only when
moto or s3fs is not installed.
"""

from __future__ import annotations

import json
import pickle
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.errors import (
    ArrayExists,
    ArrayNotFound,
    InvalidArgument,
    InvalidStore,
    LockedError,
    StoreNotFound,
)
from arraystore.ops.cast import cast
from arraystore.testing import FailingExecutor, run_cli

fsspec = pytest.importorskip("fsspec")


# --------------------------------------------------------------------- memory://
@pytest.fixture
def mem_url() -> Iterator[str]:
    root = f"/arraystore-test-{uuid.uuid4().hex[:10]}"
    yield f"memory://{root}/data.store"
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _keys(url: str) -> list[str]:
    fs = fsspec.filesystem("memory")
    root = url.removeprefix("memory://")
    return sorted(k[len(root) + 1 :] for k in fs.find(root))


def _data(shape: tuple[int, ...] = (50, 7), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


def test_memory_create_read_write(mem_url: str) -> None:
    s = arraystore.open(mem_url, mode="a")
    assert s.remote and s.names() == []
    x = _data()
    a = s.create("x", data=x, chunks=(16, 4))
    assert a.backend == "zarr"  # the default for a URL store
    np.testing.assert_array_equal(a[...], x)
    np.testing.assert_array_equal(a[3:17, 2:5], x[3:17, 2:5])
    a[0:20, 1:3] = -1.0
    x[0:20, 1:3] = -1.0
    again = arraystore.open(mem_url, mode="r")
    np.testing.assert_array_equal(again["x"][...], x)
    assert again.names() == ["x"] and "x" in again and "nope" not in again
    info = again.info("x")
    # codec none: every chunk is stored whole (edge chunks padded): 4 x 2 chunks of 16x4 f8
    assert info["shape"] == [50, 7] and info["stored_bytes"] == 4 * 2 * 16 * 4 * 8
    # only the array's keys and the root group are left: no temp prefix, no lock object
    assert all(k == "zarr.json" or k.startswith("x/") for k in _keys(mem_url))
    # zarr itself reads what arraystore wrote
    import zarr

    z = zarr.open_array(f"{mem_url}/x", mode="r")
    np.testing.assert_array_equal(z[...], x)


def test_memory_structured_and_codec(mem_url: str) -> None:
    s = arraystore.open(mem_url, mode="a")
    dt = np.dtype([("id", "i8"), ("price", "f8"), ("vec", "f4", (3,))])
    x = np.zeros(40, dt)
    x["id"] = np.arange(40)
    x["price"] = np.linspace(0, 1, 40)
    x["vec"] = np.arange(120, dtype="f4").reshape(40, 3)
    a = s.create("t", data=x, chunks=(16,), codec="zstd")
    got = a[...]
    for f in dt.names or ():
        np.testing.assert_array_equal(got[f], x[f])
    st = a.stats()
    assert float(st["price"]["mean"]) == pytest.approx(float(x["price"].mean()), rel=1e-12)


def test_memory_stats_cast_map(mem_url: str) -> None:
    s = arraystore.open(mem_url, mode="a")
    x = _data((60, 5))
    s.create("x", data=x, chunks=(16, 5))
    st = s["x"].stats()
    assert float(st["x"]["mean"]) == pytest.approx(float(x.mean()), rel=1e-12)
    assert float(st["x"]["std"]) == pytest.approx(float(x.std()), rel=1e-12)
    assert float(st["x"]["min"]) == x.min() and float(st["x"]["max"]) == x.max()
    # cast into a new array, then in place
    cast(s, "x", "f4", out="x4", casting="unsafe")
    np.testing.assert_array_equal(s["x4"][...], x.astype("f4"))
    cast(s, "x", "f4", casting="unsafe")
    assert s["x"].dtype == np.dtype("f4")
    np.testing.assert_array_equal(s["x"][...], x.astype("f4"))
    assert s["x"].meta.history[-1]["op"] == "cast"
    # a refused cast leaves the source as it was
    with pytest.raises(arraystore.CastError):
        cast(s, "x4", "i2")
    np.testing.assert_array_equal(s["x4"][...], x.astype("f4"))
    # map: a function and an expression
    y = s["x"].map(lambda b: b * 2, out="y")
    np.testing.assert_array_equal(y[...], x.astype("f4") * 2)
    z = s["x"].map("x * 2 + 1", out="z", dtype="f8")
    np.testing.assert_allclose(z[...], x.astype("f4").astype("f8") * 2 + 1, rtol=1e-6)
    assert s.names() == ["x", "x4", "y", "z"]
    leftovers = [k for k in _keys(mem_url) if k.startswith(".")]
    assert leftovers == []


def test_memory_rm_mv(mem_url: str) -> None:
    s = arraystore.open(mem_url, mode="a")
    a, b = _data((10, 3), 1), _data((10, 3), 2)
    s.create("a", data=a)
    s.create("b", data=b)
    s.rename("a", "cc")
    assert s.names() == ["b", "cc"]
    np.testing.assert_array_equal(s["cc"][...], a)
    with pytest.raises(ArrayExists):
        s.rename("cc", "b")
    s.rename("cc", "b", overwrite=True)
    assert s.names() == ["b"]
    np.testing.assert_array_equal(s["b"][...], a)
    s.create("b", data=b, overwrite=True)
    np.testing.assert_array_equal(s["b"][...], b)
    s.delete("b")
    assert s.names() == [] and _keys(mem_url) == ["zarr.json"]
    with pytest.raises(ArrayNotFound):
        s.delete("b")


def test_memory_errors(mem_url: str, tmp_path: Any) -> None:
    with pytest.raises(StoreNotFound):
        arraystore.open(mem_url, mode="r")
    s = arraystore.open(mem_url, mode="a")
    with pytest.raises(InvalidArgument, match="memmap backend needs a local store"):
        s.create("m", shape=(4,), dtype="f8", backend="memmap")
    with pytest.raises(InvalidArgument, match="storage options apply only to URL"):
        arraystore.open(tmp_path / "local.store", mode="a", storage_options={"anon": True})
    # a prefix holding something else is not a store
    fs = fsspec.filesystem("memory")
    other = mem_url + "-other"
    fs.pipe_file(other.removeprefix("memory://") + "/foo", b"x")
    try:
        with pytest.raises(InvalidStore):
            arraystore.open(other, mode="a")
    finally:
        fs.rm(other.removeprefix("memory://"), recursive=True)
    with pytest.raises(arraystore.ReadOnlyError):
        arraystore.open(mem_url, mode="r").create("x", shape=(2,), dtype="f8")


def test_memory_lock_object(mem_url: str) -> None:
    s = arraystore.open(mem_url, mode="a")
    s.create("x", data=np.arange(10.0))
    with s.lock("x"):
        assert ".x.lock" in _keys(mem_url)
        with pytest.raises(LockedError, match="already locked by this process"):
            s.delete("x")
        with pytest.raises(LockedError):
            cast(s, "x", "f4")
        with ThreadPoolExecutor(1) as ex, pytest.raises(LockedError, match="locked by a writer"):
            ex.submit(s["x"].__setitem__, slice(0, 1), 5.0).result()  # from another thread
        s["x"][0:1] = 5.0  # the holding thread may write
    s["x"][1:2] = 6.0  # a region write takes (and drops) the lock object itself
    assert ".x.lock" not in _keys(mem_url)
    np.testing.assert_array_equal(s["x"][0:3], [5.0, 6.0, 2.0])
    with s.lock("x"):
        pass
    assert ".x.lock" not in _keys(mem_url)
    s.delete("x")


def test_memory_handle_pickles_url_not_data(mem_url: str) -> None:
    s = arraystore.open(mem_url, mode="a")
    x = _data((30, 4))
    s.create("x", data=x, chunks=(8, 4))
    h = s.open_handle("x", "r")
    h.read((slice(0, 8), slice(0, 4)))  # opens the zarr array
    blob = pickle.dumps(h)
    assert len(blob) < 4096  # metadata and the URL only
    h2 = pickle.loads(blob)
    np.testing.assert_array_equal(h2.read((slice(5, 20), slice(1, 3))), x[5:20, 1:3])


def test_file_url_is_a_local_store(tmp_path: Any) -> None:
    url = f"file://{tmp_path}/f.store"
    s = arraystore.open(url, mode="a")
    assert not s.remote and s.path == tmp_path / "f.store"
    s.create("x", data=np.arange(5.0))  # memmap works: it is a local path
    assert (tmp_path / "f.store" / "x" / "c" / "0").exists()  # its .npy, at the chunk key


def test_cli_memory_round_trip(mem_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        [
            "create",
            mem_url,
            "x",
            "--shape",
            "40,6",
            "--dtype",
            "f8",
            "--fill",
            "random",
            "--chunks",
            "16,6",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    x = arraystore.open(mem_url, mode="r")["x"][...]
    code, out, err = run_cli(["stats", mem_url, "x", "--json", "-q"], capsys)
    assert code == 0, err
    assert json.loads(out)["fields"]["x"]["sum"] == pytest.approx(float(x.sum()), rel=1e-12)
    code, out, err = run_cli(["mv", mem_url, "x", "y"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["ls", mem_url, "--json"], capsys)
    assert [r["name"] for r in json.loads(out)] == ["y"]
    code, out, err = run_cli(["rm", mem_url, "y"], capsys)
    assert code == 0 and arraystore.open(mem_url, mode="r").names() == []
    code, out, err = run_cli(
        ["create", mem_url, "m", "--shape", "4", "--dtype", "f8", "--backend", "memmap"], capsys
    )
    assert code == 1 and err.startswith("error: the memmap backend needs a local store")
    assert len(err.strip().splitlines()) == 1


def test_cli_bad_storage_option(mem_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["ls", mem_url, "--storage-option", "novalue"], capsys)
    assert code == 1 and err.strip() == "error: --storage-option needs KEY=VALUE, got 'novalue'"


def test_parse_storage_option() -> None:
    from arraystore.cli.options import parse_storage_option

    assert parse_storage_option("anon=true") == ("anon", True)
    assert parse_storage_option("endpoint_url=http://h:9000") == ("endpoint_url", "http://h:9000")
    assert parse_storage_option('client_kwargs={"region_name": "eu"}') == (
        "client_kwargs",
        {"region_name": "eu"},
    )
    assert parse_storage_option("key=a=b") == ("key", "a=b")
    assert parse_storage_option("x=nan") == ("x", "nan")


# ------------------------------------------------------------- S3 (moto server)
@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _host, port = server.get_host_and_port()
        opts = {
            "endpoint_url": f"http://127.0.0.1:{port}",
            "key": "testing",
            "secret": "testing",
        }
        import s3fs

        fs = s3fs.S3FileSystem(**opts)
        fs.mkdir("arraystore-test")
        yield {"opts": opts, "port": port, "bucket": "arraystore-test", "fs": fs}
    finally:
        server.stop()


def _s3_args(opts: dict[str, Any]) -> list[str]:
    return [a for k, v in opts.items() for a in ("--storage-option", f"{k}={v}")]


def test_s3_cli_round_trip(s3: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Acceptance: create, stats, cast, ls and info on the loopback S3 server from the CLI."""
    url = f"s3://{s3['bucket']}/cli-{uuid.uuid4().hex[:6]}/store.store"
    so = _s3_args(s3["opts"])
    code, out, err = run_cli(
        [
            "create",
            url,
            "x",
            "--shape",
            "300,5",
            "--dtype",
            "f8",
            "--fill",
            "random",
            "--chunks",
            "64,5",
            "--codec",
            "zstd",
            "-q",
            *so,
        ],
        capsys,
    )
    assert code == 0, err
    x = arraystore.open(url, mode="r", storage_options=s3["opts"])["x"][...]
    assert x.shape == (300, 5) and np.isfinite(x).all() and x.std() > 0
    code, out, err = run_cli(["stats", url, "x", "--json", "-q", *so], capsys)
    assert code == 0, err
    got = json.loads(out)["fields"]["x"]
    assert got["sum"] == pytest.approx(float(x.sum()), rel=1e-12)
    assert got["std"] == pytest.approx(float(x.std()), rel=1e-12)
    assert (got["min"], got["max"]) == (float(x.min()), float(x.max()))
    code, out, err = run_cli(
        ["cast", url, "x", "--to", "f4", "--casting", "unsafe", "-q", *so], capsys
    )
    assert code == 0, err
    y = arraystore.open(url, mode="r", storage_options=s3["opts"])["x"]
    assert y.dtype == np.dtype("f4")
    np.testing.assert_array_equal(y[...], x.astype("f4"))
    code, out, err = run_cli(["ls", url, "--json", *so], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["name"], r["dtype"], r["backend"]) for r in rows] == [("x", "f4", "zarr")]
    code, out, err = run_cli(["info", url, "x", "--json", *so], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["shape"] == [300, 5] and info["codec"].startswith("zstd")
    assert 0 < info["stored_bytes"] <= x.nbytes
    keys = s3["fs"].find(url.removeprefix("s3://"))
    assert not [k for k in keys if "/." in k]  # no temp prefix or lock object left


def test_s3_cli_bad_credentials_one_line(
    s3: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    port = s3["port"]
    url = f"s3://no-such-bucket-{uuid.uuid4().hex[:6]}/x.store"
    opts = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "testing", "secret": "testing"}
    code, _, err = run_cli(["ls", url, *_s3_args(opts)], capsys)
    assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_s3_python_api_and_lock(s3: dict[str, Any]) -> None:
    url = f"s3://{s3['bucket']}/api-{uuid.uuid4().hex[:6]}/store.store"
    s = arraystore.open(url, mode="a", storage_options=s3["opts"])
    x = _data((100, 3), 3)
    s.create("x", data=x, chunks=(32, 3))
    with s.lock("x"), pytest.raises(LockedError):
        s.delete("x")  # the conditional put of the lock object refuses a second writer
    z = s["x"].map("x * 3", out="z")
    np.testing.assert_array_equal(z[...], x * 3)
    s.rename("z", "w")
    s.delete("x")
    assert s.names() == ["w"]


def test_s3_dask_workers_read_and_write_remote(
    s3: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Tasks carry the URL and storage options to worker *processes* (not data)."""
    distributed = pytest.importorskip("distributed")
    url = f"s3://{s3['bucket']}/dask-{uuid.uuid4().hex[:6]}/store.store"
    s = arraystore.open(url, mode="a", storage_options=s3["opts"])
    x = _data((120, 4), 4)
    s.create("x", data=x, chunks=(32, 4))
    with distributed.LocalCluster(
        n_workers=1,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},
    ) as cluster:
        address = cluster.scheduler_address
        so = _s3_args(s3["opts"])
        code, out, err = run_cli(
            ["stats", url, "x", "--json", "-q", "--scheduler", address, *so], capsys
        )
        assert code == 0, err
        assert json.loads(out)["fields"]["x"]["sum"] == pytest.approx(float(x.sum()), rel=1e-12)
        code, out, err = run_cli(
            [
                "cast",
                url,
                "x",
                "--to",
                "f4",
                "--casting",
                "unsafe",
                "--out",
                "x4",
                "-q",
                "--scheduler",
                address,
                *so,
            ],
            capsys,
        )
        assert code == 0, err
        code, out, err = run_cli(
            ["stats", url, "x", "-q", "--scheduler", address, "--executor", "threads", *so],
            capsys,
        )
        assert code == 1 and "--scheduler needs the dask executor" in err
    np.testing.assert_array_equal(s["x4"][...], x.astype("f4"))


def test_memory_verify_and_repair(mem_url: str) -> None:
    from arraystore.ops.verify import verify

    s = arraystore.open(mem_url, mode="a")
    x = _data((40, 4))
    s.create("x", data=x, chunks=(16, 4), codec="zstd", checksum=True)
    rep = verify(s)
    assert rep.checked == ["x"] and rep.findings == []
    fs = fsspec.filesystem("memory")
    root = mem_url.removeprefix("memory://")
    fs.pipe_file(f"{root}/.y.tmp-123-abcdef12/zarr.json", b"{}")  # a dead writer's temp
    fs.pipe_file(f"{root}/.z.lock", b'{"host": "h", "pid": 1, "token": "t"}')
    rep = verify(s)
    kinds = sorted((f.kind, f.name, f.repaired) for f in rep.findings)
    assert kinds == [("leftover", "y", False), ("leftover", "z", False)]
    rep = verify(s, repair=True)
    assert [f.name for f in rep.findings if f.repaired] == ["y"]
    assert not fs.exists(f"{root}/.y.tmp-123-abcdef12")
    assert fs.exists(f"{root}/.z.lock")  # a lock object is only reported
    # a flipped byte in a chunk is found (crc32c)
    key = f"{root}/x/c/1/0"
    blob = bytearray(fs.cat_file(key))
    blob[len(blob) // 2] ^= 0xFF
    fs.pipe_file(key, bytes(blob))
    rep = verify(s, "x")
    assert [f.kind for f in rep.findings] == ["corrupt"]


def test_memory_stale_lock_of_dead_local_process(mem_url: str) -> None:
    import socket
    import subprocess
    import sys

    s = arraystore.open(mem_url, mode="a")
    s.create("x", data=np.arange(6.0))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    lock = mem_url.removeprefix("memory://") + "/.x.lock"
    fs = fsspec.filesystem("memory")
    doc = {"host": socket.gethostname(), "pid": pid, "token": "old"}
    fs.pipe_file(lock, json.dumps(doc).encode())
    s.delete("x")  # the stale lock is taken over
    assert s.names() == [] and not fs.exists(lock)
    doc["host"] = "another-host"
    fs.pipe_file(lock.replace(".x.", ".y."), json.dumps(doc).encode())
    with pytest.raises(LockedError, match="another-host"):
        s.create("y", data=np.arange(3.0))


def test_memory_interop(mem_url: str, tmp_path: Any) -> None:
    pytest.importorskip("dask.array")
    from arraystore.ops.interop import export_file, import_file

    s = arraystore.open(mem_url, mode="a")
    x = _data((30, 4), 5)
    a = s.create("x", data=x, chunks=(8, 4))
    d = a.to_dask()
    np.testing.assert_array_equal(d.compute(), x)
    y = arraystore.from_dask(d * 2, s, "y")
    assert y.backend == "zarr"
    np.testing.assert_array_equal(y[...], x * 2)
    npy = tmp_path / "y.npy"
    export_file(s["y"], npy)
    np.testing.assert_array_equal(np.load(npy), x * 2)
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2.5\n3,4.5\n")
    t = import_file(s, "t", csv, dtype="a:i4,b:f8")
    got = t[...]
    np.testing.assert_array_equal(got["a"], [1, 3])
    np.testing.assert_array_equal(got["b"], [2.5, 4.5])
    b = import_file(s, "back", npy)
    np.testing.assert_array_equal(b[...], x * 2)
    assert s.names() == ["back", "t", "x", "y"]
    assert not [k for k in _keys(mem_url) if k.startswith(".")]


def test_memory_interrupted_cast_and_map_resume(mem_url: str) -> None:
    """Object stores keep no per-chunk journal: resume redoes every chunk, correctly."""
    from arraystore.ops.map.blocks import map_expr

    s = arraystore.open(mem_url, mode="a")
    x = _data((64, 3), 6)
    s.create("x", data=x, chunks=(8, 3))
    with pytest.raises(KeyboardInterrupt):
        cast(s, "x", "f4", casting="unsafe", executor=FailingExecutor(3))
    assert s.names() == ["x"] and s["x"].dtype == np.dtype("f8")  # the source is intact
    np.testing.assert_array_equal(s["x"][...], x)
    with pytest.raises(InvalidArgument, match=r"interrupted cast of 'x' exists.*--resume"):
        cast(s, "x", "f4", casting="unsafe")
    ex = FailingExecutor()
    cast(s, "x", None, resume=True, executor=ex)
    assert ex.ran == 8  # every chunk again
    np.testing.assert_array_equal(s["x"][...], x.astype("f4"))
    assert not [k for k in _keys(mem_url) if k.startswith(".")]

    with pytest.raises(KeyboardInterrupt):
        map_expr(s, "x * 2", "x", out="n", executor=FailingExecutor(2))
    assert "n" not in s
    with pytest.raises(InvalidArgument, match=r"interrupted map into 'n' exists.*--resume"):
        map_expr(s, "x * 2", "x", out="n")
    res = map_expr(s, "x * 2", "x", out="n", resume=True, executor="serial")
    np.testing.assert_array_equal(res[...], x.astype("f4") * 2)
    assert not [k for k in _keys(mem_url) if k.startswith(".")]


def test_memory_where_quantile_xarray(mem_url: str) -> None:
    from arraystore.ops.map.blocks import where

    s = arraystore.open(mem_url, mode="a")
    dt = np.dtype([("a", "f8"), ("b", "i4")])
    x = np.zeros(100, dt)
    x["a"] = np.random.default_rng(7).normal(size=100)
    x["b"] = np.arange(100) % 7
    a = s.create("t", data=x, chunks=(32,))
    w = where(s, "t", "b > 3", "w")
    np.testing.assert_array_equal(w[...], x[x["b"] > 3])
    assert float(a.quantile(0.5, fields="a")) == float(np.quantile(x["a"], 0.5))
    pytest.importorskip("xarray")
    ds = a.to_xarray()
    np.testing.assert_array_equal(ds["a"].values, x["a"])


def test_memory_cast_crash_in_commit_is_finished_by_repair(
    mem_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The non-atomic replace: a crash after the old array is deleted loses no data."""
    from arraystore.fs import remote as _remote
    from arraystore.ops.verify import verify

    s = arraystore.open(mem_url, mode="a")
    x = _data((20, 4), 8)
    s.create("x", data=x, chunks=(8, 4))

    def crash(tmp: Any, path: Any) -> None:
        _remote.remove_tree(path)  # the old array is gone, the new one not moved in yet
        raise KeyboardInterrupt

    monkeypatch.setattr(s.layout, "commit", crash)
    with pytest.raises(KeyboardInterrupt):
        cast(s, "x", "f4", casting="unsafe")
    s = arraystore.open(mem_url, mode="r+")
    assert s.names() == []  # the window where readers find no array
    rep = verify(s, repair=True)
    assert [(f.name, f.repaired) for f in rep.findings] == [("x", True)]
    assert s.names() == ["x"] and s["x"].dtype == np.dtype("f4")
    np.testing.assert_array_equal(s["x"][...], x.astype("f4"))
    assert not [k for k in _keys(mem_url) if k.startswith(".")]


def test_memory_lost_chunk_is_corrupt(mem_url: str) -> None:
    """Remote arrays go through zarr-python, which reads a missing chunk as the fill
    value: arraystore checks the chunk keys of arrays it wrote completely (issue 15)."""
    import fsspec

    from arraystore.ops.verify import verify

    s = arraystore.open(mem_url, mode="a")
    s.create("z", (10,), "f8", chunks=4, fill="zeros")
    fs, root = fsspec.core.url_to_fs(mem_url)
    assert sorted(p.rsplit("/", 2)[-1] for p in fs.find(f"{root}/z/c")) == ["0", "1", "2"]
    fs.rm(f"{root}/z/c/1")
    assert [f.message for f in verify(s).findings if f.kind == "corrupt"] == ["chunk 'c/1' missing"]
    with pytest.raises(arraystore.CorruptData, match="chunk 'c/1' missing"):
        s["z"][...]
