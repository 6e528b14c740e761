"""Feature engineering on a table larger than you would like to hold in RAM.

1. create 10**7 trades (``id:i8,price:f8,qty:i4,flags:u1``, random values);
2. derive features chunk by chunk with safe expressions: ``notional = price * qty`` and
   ``logp = log1p(abs(price))``;
3. a Python function over blocks: the z-score of the price, using stats of step 4's kind;
4. keep the rows with ``price > 0`` (two passes: count, then write) and summarise them.

Every step streams blocks through a bounded memory budget and writes its output
atomically (nothing half-written is ever visible in the store).

Run: .venv/bin/python examples/feature_engineering.py [--rows N] [--store DIR]
     [--backend memmap|zarr] [--memory 256MiB]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import arraystore


def step(label: str, t0: float) -> float:
    t1 = time.perf_counter()
    print(f"  {label:<46} {t1 - t0:6.2f} s")
    return t1


def main(root: Path, rows: int, backend: str, memory: str) -> None:
    store = arraystore.open(root, mode="a")
    t = time.perf_counter()
    trades = store.create(
        "trades",
        shape=rows,
        dtype="id:i8,price:f8,qty:i4,flags:u1",
        fill="random",
        seed=7,
        backend=backend,
        overwrite=True,
        memory=arraystore.engine.parse_size(memory),
    )
    t = step(f"create {trades.shape[0]:,} trades ({trades.nbytes / 2**20:.0f} MiB)", t)

    opts: dict[str, Any] = {"memory": memory, "overwrite": True}
    notional = store.map("price * qty", "trades", out="notional", **opts)
    t = step("notional = price * qty", t)
    logp = store.map("log1p(abs(price))", "trades", out="logp", dtype="f4", **opts)
    t = step("logp = float32(log1p(abs(price)))", t)

    s = trades.stats(fields=["price"], memory=memory)["price"]
    mean, std = float(s["mean"]), float(s["std"])

    def zscore(price: np.ndarray) -> np.ndarray:  # any numpy code, one block at a time
        return ((price - mean) / std).astype(np.float32)

    z = arraystore.map_blocks(zscore, trades["price"], out="price_z", **opts)
    t = step("price_z = (price - mean) / std   (a function)", t)

    positive = store.map(name="trades", where="price > 0", out="positive", **opts)
    t = step("positive = trades where price > 0", t)
    kept = store.stats("positive", expr="price * qty", memory=memory)["fields"]["price * qty"]
    t = step("stats of price * qty over the kept rows", t)

    print(f"\n{notional!r}\n{logp!r}\n{z!r}\n{positive!r}")
    print(f"rows kept: {positive.shape[0]:,} of {rows:,} ({positive.shape[0] / max(rows, 1):.1%})")
    for name in ("notional", "logp", "price_z"):
        st = store[name].stats(memory=memory)[name]
        print(f"{name:>9}: mean {st['mean']:.4g}  std {st['std']:.4g}  min {st['min']:.4g}")
    print(
        f" kept notional: count {kept['count']:,}  mean {kept['mean']:.4g}  "
        f"min {kept['min']:.4g}  max {kept['max']:.4g}"
    )
    # the same numbers as numpy on the whole table (cheap to check on a small --rows)
    if rows <= 2_000_000:
        data = trades[...]
        sel = data[data["price"] > 0]
        np.testing.assert_array_equal(positive[...], sel)
        np.testing.assert_array_equal(notional[...], data["price"] * data["qty"])
        print("checked against numpy in memory: identical")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10**7)
    ap.add_argument("--store", type=Path, default=None, help="default: a temporary folder")
    ap.add_argument("--backend", default="memmap", choices=["memmap", "zarr"])
    ap.add_argument("--memory", default="256MiB")
    args = ap.parse_args()
    tmp = None if args.store else Path(tempfile.mkdtemp(prefix="arraystore-fe-"))
    try:
        main(args.store or tmp / "fe.store", args.rows, args.backend, args.memory)  # type: ignore[operator]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
