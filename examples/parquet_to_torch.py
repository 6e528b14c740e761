"""Parquet -> arraystore -> smallest lossless dtypes -> torch batches.

A Parquet file (written here with pyarrow: trade records with some missing quantities)
is imported into a zarr-backed structured array, one field per column (streamed by
record batch, bounded memory); ``store.cast(..., "auto")`` shrinks every field to its
smallest lossless dtype; then the array is read in shuffled batches of torch tensors
(zero-copy from numpy; unsigned fields, which torch cannot compute with, are widened
to a signed dtype once per batch).

Run: .venv/bin/python examples/parquet_to_torch.py [--rows 2000000] [--dir DIR]
Needs: pip install 'arraystore[arrow,torch]'
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

import arraystore


def write_parquet(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    step = 250_000
    with pq.ParquetWriter(
        path,
        pa.schema(
            [
                ("id", pa.int64()),
                ("price", pa.float64()),
                ("qty", pa.int64()),
                ("side", pa.bool_()),
                ("label", pa.int64()),
            ]
        ),
    ) as w:
        for start in range(0, rows, step):
            n = min(step, rows - start)
            qty = rng.integers(1, 500, n)
            w.write_table(
                pa.table(
                    {
                        "id": np.arange(start, start + n),
                        "price": rng.lognormal(4, 0.5, n),
                        "qty": pa.array(qty, mask=rng.random(n) < 0.01),  # ~1% missing
                        "side": rng.random(n) < 0.5,
                        "label": rng.integers(0, 10, n),
                    }
                )
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    ap.add_argument("--batch", type=int, default=65_536)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        src = root / "trades.parquet"
        write_parquet(src, args.rows)
        store = arraystore.open(root / "example.store", mode="a")
        trades = store.import_file("trades", src, backend="zarr", codec="lz4", overwrite=True)
        print(trades)
        print("qty nulls:", {c["column"]: c["nulls"] for c in trades.attrs["import"]["columns"]})

        result = store.cast("trades", "auto")  # smallest lossless dtype per field
        for field, (before, after) in result.plan.items():
            print(f"  {field:>11}: {before} -> {after}")
        print(f"  {result.nbytes_before / 2**20:.1f} MiB -> {result.nbytes_after / 2**20:.1f} MiB")

        trades = store["trades"]
        # torch has no usable uint16/32/64: widen those fields once per batch
        widen = {}
        for name in trades.fields:
            dt = trades.dtype[name]
            if dt.kind == "u" and dt.itemsize > 1:
                widen[name] = torch.int32 if dt.itemsize == 2 else torch.int64
        fields = ["price", "qty", "qty__valid", "label"]
        rows, total, nvalid = 0, 0.0, 0
        for batch in trades.batches(
            args.batch,
            fields=fields,
            shuffle=True,
            seed=0,
            to_torch=True,
            torch_dtype=widen,
        ):
            rows += len(batch["price"])
            total += float(batch["price"].sum())
            nvalid += int(batch["qty__valid"].sum())
        print(
            f"{rows} rows in batches of {args.batch}: mean price {total / rows:.3f}, "
            f"{nvalid} valid qty; dtypes " + ", ".join(f"{k}={v.dtype}" for k, v in batch.items())
        )
        assert rows == args.rows
        expected = trades["price"].mean()
        assert abs(total / rows - expected) < 1e-6 * abs(expected)
        print("ok")


if __name__ == "__main__":
    main()
