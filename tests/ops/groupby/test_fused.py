"""The numba group kernels (:mod:`arraystore.ops.groupby.fused`) give the same bits as
the numpy path, for every dtype, NaN, sorted or scattered codes and per-column cells;
merging tables whose keys come in order (``id // 1000``) appends them, with the same
bits as one table of all the rows."""

from __future__ import annotations

import numpy as np
import pytest

from arraystore.ops.groupby import engine, fused, kernels
from arraystore.ops.groupby.keys import factorize_sized

ALL = ("count", "size", "sum", "mean", "var", "min", "max", "first", "last", "quantile")


def _values(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    v = {
        "f8": rng.normal(100, 10, (n, 1)),
        "f4": rng.normal(size=(n, 1)).astype(np.float32),
        "i4": rng.integers(-(2**31), 2**31 - 1, (n, 1)).astype(np.int32),
        "u2": rng.integers(0, 60000, (n, 1)).astype(np.uint16),
        "i8": rng.choice(np.array([2**62, -(2**62), 5, -7], np.int64), (n, 1)),
        "u8": rng.integers(0, 2**63, (n, 1)).astype(np.uint64) * np.uint64(2),
        "b": rng.random((n, 1)) < 0.5,
        "f8x3": rng.normal(size=(n, 3)),
        "i1x2": rng.integers(-128, 128, (n, 2)).astype(np.int8),
    }
    v["f8"][rng.random(n) < 0.05] = np.nan
    # the min (max) of 0.0 and -0.0 is the later one, as np.minimum (np.maximum) gives
    v["zero_min"] = rng.choice(np.array([0.0, -0.0, 1.0], np.float32), (n, 1))
    v["zero_max"] = rng.choice(np.array([0.0, -0.0, -1.0]), (n, 1))
    v["f8x3"][rng.random((n, 3)) < 0.05] = np.nan
    return v


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object or b.dtype == object:
        return a.dtype == b.dtype and a.tolist() == b.tolist()
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("layout", ["sorted", "clustered", "scattered"])
@pytest.mark.parametrize("ops", [ALL, ("mean", "std", "min", "max"), ("min",), ("sum",)])
@pytest.mark.parametrize("sub_rows", [None, 999])
def test_fused_states_are_the_numpy_bits(layout, ops, sub_rows, monkeypatch) -> None:
    pytest.importorskip("numba")
    if sub_rows:  # the passes take the block a few rows at a time over all fields
        monkeypatch.setattr(fused, "SUB_ROWS", sub_rows)
    rng = np.random.default_rng(7)
    n = 20_000
    key = {
        "sorted": np.arange(n) // 700,
        "clustered": np.repeat(rng.integers(0, 9, n // 500), 500),
        "scattered": rng.integers(0, 40, n),
    }[layout].astype(np.int64)
    vals = _values(n, rng)
    need, rows = kernels.needs(ops), np.arange(n, dtype=np.int64)
    want = kernels.partial([key], vals, need, rows, True, fused=False)
    assert fused.KERNEL.get() is not None  # loaded: every block takes numba
    got = kernels.partial([key], vals, need, rows, True, fused=True)
    assert _same(got.size, want.size) and _same(got.keys[0], want.keys[0])
    for f in vals:
        assert got.states[f].keys() == want.states[f].keys()
        for part, arr in want.states[f].items():
            assert _same(got.states[f][part], arr), (f, part)


@pytest.mark.parametrize(
    "col",
    [
        np.array([-128, 127, 0, 0, 127], np.int8),  # offsets past the dtype's range
        np.array([-32768, 32767, 5], np.int16),
        np.array([2**64 - 1, 2**64 - 3, 2**64 - 1], np.uint64),
        np.array([2**63 - 1, 2**63 - 10], np.int64),
        np.array([True, False, True]),
        np.repeat(np.arange(-5, 200, dtype=np.int16), 30),
    ],
    ids=lambda c: str(c.dtype),
)
@pytest.mark.parametrize("use_numba", [False, True])
def test_dense_keys_at_the_dtype_limits(col, use_numba) -> None:
    if use_numba:
        pytest.importorskip("numba")
    keys, inv, counts = factorize_sized([col], use_numba)
    uniq, want_inv, want_counts = np.unique(col, return_inverse=True, return_counts=True)
    assert keys[0].dtype == col.dtype and keys[0].tolist() == uniq.tolist()
    assert inv.tolist() == want_inv.tolist() and counts.tolist() == want_counts.tolist()


@pytest.mark.parametrize("use_numba", [False, True])
def test_tables_in_key_order_append_with_the_bits_of_one_table(use_numba) -> None:
    if use_numba:
        pytest.importorskip("numba")
    rng = np.random.default_rng(5)
    n = 7_000
    key = np.arange(n, dtype=np.int64) // 7
    vals = _values(n, rng)
    need, rows = kernels.needs(ALL), np.arange(n, dtype=np.int64)
    one = kernels.partial([key], vals, need, rows, True, use_numba)
    merged = None
    for start, stop in [(0, 700), (700, 707), (707, 3500), (3500, n)]:  # group boundaries
        sl = slice(start, stop)
        part = kernels.partial(
            [key[sl]], {f: v[sl] for f, v in vals.items()}, need, rows[sl], True, use_numba
        )
        merged = kernels.merge(merged, part)
    assert merged is not None and merged.ngroups == n // 7
    assert _same(merged.keys[0], one.keys[0]) and _same(merged.size, one.size)
    for f in vals:
        for part_name, arr in one.states[f].items():
            assert _same(merged.states[f][part_name], arr), (f, part_name)


@pytest.mark.parametrize("cuts", [[1, 2, 700, 701, 3503], [3, 9, 10, 4000], [6999]])
def test_tables_in_key_order_merge_like_any_tables(cuts) -> None:
    """Int keys in order are appended (the group at a seam merged on its own); float keys
    of the same values go through the union of the keys: the same bits."""
    rng = np.random.default_rng(6)
    n = 7_000
    key = np.arange(n, dtype=np.int64) // 7
    vals = _values(n, rng)
    need, rows = kernels.needs(ALL), np.arange(n, dtype=np.int64)
    tables = []
    for k in (key, key.astype(np.float64)):
        merged = None
        for start, stop in zip([0, *cuts], [*cuts, n], strict=True):
            sl = slice(start, stop)
            vs = {f: v[sl] for f, v in vals.items()}
            merged = kernels.merge(merged, kernels.partial([k[sl]], vs, need, rows[sl]))
        tables.append(merged)
    a, b = tables
    assert a.ngroups == b.ngroups == n // 7 and _same(a.size, b.size)
    for f in vals:
        assert a.states[f].keys() == b.states[f].keys()
        for part_name, arr in b.states[f].items():
            assert _same(a.states[f][part_name], arr), (f, part_name)


def test_numba_and_numpy_groupby_give_the_same_bits(store, monkeypatch) -> None:
    pytest.importorskip("numba")
    monkeypatch.setattr(engine, "BLOCK_ELEMENTS", 64)
    rng = np.random.default_rng(3)
    n = 3_000
    d = np.zeros(n, [("id", "i8"), ("sym", "u2"), ("price", "f8"), ("qty", "i4")])
    d["id"], d["sym"] = np.arange(n), rng.integers(0, 50, n)
    d["price"], d["qty"] = rng.normal(100, 10, n), rng.integers(1, 1001, n)
    d["price"][rng.random(n) < 0.02] = np.nan
    arr = store.create("trades", data=d, chunks=500)
    ops = ("count", "sum", "mean", "std", "min", "max", "first", "quantile")
    for key in ("sym", "id // 100"):
        results = []
        for min_bytes in ("0", str(2**60)):  # numba for every size, for none
            monkeypatch.setenv("ARRAYSTORE_NUMBA_MIN_BYTES", min_bytes)
            res = arr.groupby(key, executor="threads", workers=2).stats(
                ["price", "qty"], ops, ddof=1, q=0.5
            )
            results.append(res.to_array())
        assert results[0].tobytes() == results[1].tobytes()
