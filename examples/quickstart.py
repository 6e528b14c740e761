"""Quickstart: create arrays, open them lazily, slice, use field views.

Run: .venv/bin/python examples/quickstart.py [STORE_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import arraystore


def main(root: Path) -> None:
    store = arraystore.open(root / "quick.store", mode="a")  # created if missing

    # A plain 2-d float64 array stored as a .npy file (memmap backend), filled 0, 1, 2, ...
    grid = store.create("grid", shape=(100_000, 16), dtype="f8", fill="range", overwrite=True)
    print(grid)  # lazy: nothing read yet
    print("grid[5, :4] =", grid[5, :4])  # reads only the chunk holding row 5

    # A structured array (records) on zarr with lz4: stored columnar, one zarr array per field
    trades = store.create(
        "trades",
        shape=(50_000,),
        dtype="id:i8,price:f8,qty:i4,vec:3f4",
        backend="zarr",
        codec="lz4",
        fill="random",
        seed=42,
        overwrite=True,
    )
    price = trades["price"]  # lazy field view: reading it touches only price's chunks
    print("first prices:", price[:3])
    print("vec of record 7:", trades["vec"][7])
    print("one record:", trades[0])

    # Writes go chunk-wise to disk
    price[:3] = [100.0, 101.5, 99.25]
    assert np.array_equal(trades["price"][:3], [100.0, 101.5, 99.25])

    # Reopen: metadata only; np.asarray is the explicit "load it all" choice
    again = arraystore.open(root / "quick.store", mode="r")
    print("arrays:", again.names())
    print("info:", {k: again.info("trades")[k] for k in ("shape", "dtype", "codec", "ratio")})
    small = np.asarray(again["grid"][:10])
    assert small.shape == (10, 16)

    # The memmap file is a plain .npy (and a zarr shard): numpy and zarr open it alone
    raw = np.load(root / "quick.store" / "grid" / "c" / "0" / "0", mmap_mode="r")
    assert raw[5, 3] == grid[5, 3]
    import zarr

    assert zarr.open_array(root / "quick.store" / "grid", mode="r")[5, 3] == grid[5, 3]
    print("quickstart ok")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
