"""Interop: .npy import/export, optional-dependency hygiene, dask, xarray, examples."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.ops import interop
from arraystore.testing import assert_same, backend_params, listing

REPO = Path(__file__).resolve().parents[3]


# ----------------------------------------------------------------- .npy
@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "zstd:1")))
def test_npy_round_trip(store, tmp_path, case):
    data = np.zeros(1000, dtype=[("id", "i8"), ("price", "f8"), ("vec", "f4", (3,))])
    data["id"] = np.arange(1000)
    data["price"] = np.linspace(0, 1, 1000)
    data["vec"] = np.arange(3000).reshape(1000, 3)
    src = tmp_path / "in.npy"
    np.save(src, data)
    arr = interop.import_file(store, "x", src, chunks=128, **case.kwargs)
    assert_same(arr[...], data)
    assert arr.attrs["import"] == {"format": "npy", "source": "in.npy"}
    out = tmp_path / "out.npy"
    interop.export_file(arr, out)
    assert_same(np.load(out), data)
    plain = store.create("p", (30, 5), "f4", fill="random", chunks=(7, 5), **case.kwargs)
    interop.export_file(plain, tmp_path / "p.npy")
    assert_same(np.load(tmp_path / "p.npy"), plain[...])
    interop.export_file(arr["vec"], tmp_path / "v.npy")
    assert_same(np.load(tmp_path / "v.npy"), data["vec"])
    # another dtype: every numeric field cast on write (as ``cast --to f8``), value-checked
    wide = interop.import_file(store, "y", src, dtype="f8", **case.kwargs)
    assert wide.dtype == np.dtype([("id", "f8"), ("price", "f8"), ("vec", "f8", (3,))])
    assert_same(wide["vec"][...], data["vec"].astype("f8"))
    with pytest.raises(arraystore.CastError, match="out of range"):
        interop.import_file(store, "z", src, dtype="i1", **case.kwargs)
    assert "z" not in store


def test_formats_and_missing_files(store, tmp_path):
    assert interop.detect_format("a.csv.gz") == "csv"
    assert interop.detect_format("a.PARQUET") == "parquet"
    assert interop.detect_format("x", "feather") == "arrow"
    with pytest.raises(arraystore.InvalidArgument, match="format"):
        interop.detect_format("a.xlsx")
    with pytest.raises(arraystore.InvalidArgument, match="no such file"):
        interop.import_file(store, "x", tmp_path / "missing.csv")
    before = listing(store.path)
    with pytest.raises(arraystore.InvalidArgument, match="errors"):
        interop.import_file(store, "x", tmp_path, errors="ignore")
    assert listing(store.path) == before


def test_core_import_never_imports_optional_packages():
    code = (
        "import sys, arraystore, arraystore.ops.interop, arraystore.ops.interop.batching\n"
        "bad = [m for m in ('pyarrow', 'dask', 'torch', 'xarray', 'pandas') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_missing_optional_package_says_what_to_install(tmp_path):
    code = (
        "import sys\n"
        "for m in ('pyarrow', 'dask', 'torch', 'xarray'): sys.modules[m] = None\n"
        "import numpy as np, arraystore\n"
        "from arraystore.ops import interop\n"
        f"s = arraystore.open({str(tmp_path / 's')!r}, mode='a')\n"
        "a = s.create('x', 10, 'f8')\n"
        f"open({str(tmp_path / 'a.csv')!r}, 'w').write('a\\n1\\n')\n"
        "for call, extra in ((lambda: interop.import_file(s, 'y', "
        f"{str(tmp_path / 'a.csv')!r}), 'arrow'),\n"
        "                    (lambda: interop.to_dask(a), 'dask'),\n"
        "                    (lambda: interop.to_xarray(a), 'xarray'),\n"
        "                    (lambda: interop.to_torch(np.ones(2)), 'torch')):\n"
        "    try:\n"
        "        call()\n"
        "    except interop.MissingDependency as e:\n"
        "        assert isinstance(e, (arraystore.ArrayStoreError, ImportError))\n"
        "        assert f\"pip install 'arraystore[{extra}]'\" in str(e), str(e)\n"
        "    else:\n"
        "        raise SystemExit('no error')\n"
        "assert s.names() == ['x'], s.names()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ------------------------------------------------------------------ dask
@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "lz4")))
def test_to_dask_equals_ours(store, case):
    da = pytest.importorskip("dask.array")
    arr = store.create(
        "t", 1000, "id:i8,price:f8,vec:3f4", fill="random", chunks=300, **case.kwargs
    )
    d = interop.to_dask(arr)
    assert set(d) == {"id", "price", "vec"}
    assert d["vec"].chunks == ((300, 300, 300, 100), (3,))
    data = arr[...]
    for name, x in d.items():
        assert_same(x.compute(), data[name])
    assert_same(interop.to_dask(arr, "price").compute(), data["price"])
    assert_same(interop.to_dask(arr["vec"]).compute(), data["vec"])
    plain = store.create("p", (100, 7), "f4", fill="random", chunks=(30, 7), **case.kwargs)
    dp = interop.to_dask(plain)
    assert dp.chunks == ((30, 30, 30, 10), (7,))
    np.testing.assert_allclose((dp * 2).sum(axis=0).compute(), (plain[...] * 2).sum(axis=0), 1e-5)
    assert_same(dp[5:45, 2:4].compute(), plain[5:45, 2:4])
    assert isinstance(da.Array, type) and pickle.loads(pickle.dumps(dp)).shape == (100, 7)


@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "zstd:1")))
def test_from_dask_regular_irregular_and_fields(store, case):
    da = pytest.importorskip("dask.array")
    x = da.arange(1000, chunks=128).astype("f4")
    a = interop.from_dask(x, store, "a", **case.kwargs)
    assert a.chunks == (128,) and a.dtype == np.dtype("f4")
    assert_same(a[...], np.arange(1000, dtype="f4"))
    y = da.ones((1000, 5), chunks=((100, 300, 600), (5,)))
    b = interop.from_dask(y, store, "b", chunks=(250, 5), **case.kwargs)
    assert b.chunks == (250, 5) and (b[...] == 1).all()
    rec = interop.from_dask(
        {"i": da.arange(50, chunks=20), "v": da.zeros((50, 3), chunks=20)},
        store,
        "r",
        **case.kwargs,
    )
    assert rec.dtype == np.dtype([("i", "i8"), ("v", "f8", (3,))]) and rec.chunks == (20,)
    assert_same(rec["i"][...], np.arange(50))
    back = interop.from_dask(interop.to_dask(rec), store, "r2", **case.kwargs)
    assert_same(back[...], rec[...])
    before = listing(store.path)

    def boom(block: np.ndarray) -> np.ndarray:
        if block[0] > 500:
            raise ZeroDivisionError("boom")
        return block

    with pytest.raises(ZeroDivisionError):
        interop.from_dask(x.map_blocks(boom), store, "z", scheduler="sync")
    assert listing(store.path) == before


def test_dask_graph_runs_in_other_processes(store):
    pytest.importorskip("dask.array")
    arr = store.create("t", 200, "a:i4,b:f8", fill="range", chunks=50)
    d = interop.to_dask(arr)
    total = (d["a"] + d["b"]).sum().compute(scheduler="processes", num_workers=2)
    assert total == 2 * sum(range(200))


# ---------------------------------------------------------------- xarray
def test_xarray_open_zarr_structured(store):  # with no warning (errors in this suite)
    xr = pytest.importorskip("xarray")
    pytest.importorskip("dask")
    arr = store.create(
        "t", 500, "id:i8,price:f8,vec:3f4", fill="random", chunks=128, backend="zarr"
    )
    ds = xr.open_zarr(store.path / "t", consolidated=False)
    assert set(ds.data_vars) == {"id", "price", "vec"}
    assert ds["vec"].dims == ("dim_0", "vec_dim_0") and ds["price"].dims == ("dim_0",)
    data = arr[...]
    for name in ("id", "price", "vec"):
        assert_same(ds[name].values, data[name])
    assert float(ds["price"].mean()) == pytest.approx(float(data["price"].mean()))


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_to_xarray_for_any_backend(store, backend):
    xr = pytest.importorskip("xarray")
    arr = store.create("t", 300, "id:i8,vec:2f4", fill="range", chunks=100, backend=backend)
    ds = interop.to_xarray(arr)
    assert isinstance(ds, xr.Dataset) and ds["vec"].dims == ("dim_0", "vec_dim_0")
    assert_same(ds["id"].values, np.arange(300))
    plain = store.create("p", (20, 3), "f8", fill="range", backend=backend)
    da_ = interop.to_xarray(plain)
    assert isinstance(da_, xr.DataArray) and da_.dims == ("dim_0", "dim_1") and da_.name == "p"
    assert_same(da_.values, plain[...])


# -------------------------------------------------------------- examples
@pytest.mark.parametrize("script", ["parquet_to_torch.py", "xarray_view.py"])
def test_examples_run(tmp_path, script):
    needs = {"parquet_to_torch.py": ("pyarrow", "torch"), "xarray_view.py": ("xarray", "dask")}
    for mod in needs[script]:
        pytest.importorskip(mod)
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / script), "--rows", "5000", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout.splitlines()[-1]


def test_store_import_file_and_array_export_wrappers(tmp_path: Path) -> None:
    """The methods users look for first delegate to import_file/export_file."""
    x = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "x.npy", x)
    s = arraystore.open(tmp_path / "w.store", mode="a")
    arr = s.import_file("x", tmp_path / "x.npy", backend="zarr", codec="lz4")
    np.testing.assert_array_equal(arr[...], x)
    out = arr.export(tmp_path / "back.npy")
    np.testing.assert_array_equal(np.load(out), x)
    with pytest.raises(arraystore.ArrayExists):
        s.import_file("x", tmp_path / "x.npy")
    assert issubclass(arraystore.MissingDependency, ImportError)
    assert issubclass(arraystore.MissingDependency, arraystore.ArrayStoreError)
