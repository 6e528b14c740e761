"""View arraystore arrays with xarray (and dask) without copying anything.

A zarr-backed structured array is a zarr v3 group with one array per field and
``dimension_names`` set, so ``xarray.open_zarr(STORE/NAME, consolidated=False)`` opens it
as a Dataset (one variable per field). zarr-python warns that it does not know the
``arraystore.json`` sidecar beside ``zarr.json``; the warning is harmless and filtered
here. Any array (memmap too) also works through ``interop.to_xarray``, which wraps the
dask arrays of ``interop.to_dask``.

Run: .venv/bin/python examples/xarray_view.py [--rows 1000000] [--dir DIR]
Needs: pip install xarray 'arraystore[dask]'
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

import arraystore
from arraystore.ops.interop import to_xarray


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        store = arraystore.open(root / "xr.store", mode="a")
        trades = store.create(
            "trades",
            args.rows,
            "id:i8,price:f8,vec:3f4",
            fill="random",
            backend="zarr",
            chunks=max(1, args.rows // 8),
            overwrite=True,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Object at arraystore.json is not recognized")
            ds = xr.open_zarr(store.path / "trades", consolidated=False)
        print(ds)
        mean = float(ds["price"].mean())  # dask computes chunk by chunk
        ours = trades.mean(fields="price")
        print(f"mean price: xarray {mean:.6f}, arraystore {ours:.6f}")
        assert np.isclose(mean, ours, rtol=1e-9)

        grid = store.create("grid", (args.rows // 10, 16), "f4", fill="random", overwrite=True)
        da = to_xarray(grid)  # memmap backend: through dask, same dimension names
        print(da)
        col_means = da.mean(dim="dim_0").values
        assert np.allclose(col_means, grid[...].mean(axis=0), rtol=1e-4, atol=1e-5)
        print("ok")


if __name__ == "__main__":
    main()
