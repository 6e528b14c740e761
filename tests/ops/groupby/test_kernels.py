"""The pure group kernels (factorize, partial tables, ordered merge) vs pandas groupby.

Hypothesis draws keys (int, bool, float with NaN, fixed strings, two columns), values
(float with NaN, ints near the int64 limits) and split points; the blocks' tables are
merged in row order like the engine does. Exact ops (count, size, int sums, min, max,
first, last, quantiles) must not depend on the split at all; float sums/means/variances
are compared with pandas at a tolerance tied to the data.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arraystore.ops.groupby import kernels
from arraystore.ops.groupby.keys import factorize

ALL = ("count", "size", "sum", "mean", "var", "min", "max", "first", "last", "quantile")
Q = np.array([0.0, 0.25, 0.5, 0.9, 1.0])


def _key_strategy(n: int) -> st.SearchStrategy[np.ndarray]:
    return st.one_of(
        hnp.arrays(np.int64, n, elements=st.integers(-3, 3)),
        hnp.arrays(np.int64, n, elements=st.integers(-(2**62), 2**62)),
        hnp.arrays(np.uint8, n, elements=st.integers(0, 255)),
        hnp.arrays(np.bool_, n),
        hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, -0.0, 1.5, -2.0, np.nan])),
        hnp.arrays("S2", n, elements=st.sampled_from([b"", b"a", b"ab", b"b"])),
        hnp.arrays("U2", n, elements=st.sampled_from(["", "x", "xy", "é"])),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[np.ndarray], dict[str, np.ndarray], list[int], bool]:
    n = draw(st.integers(1, 60))
    keys = [draw(_key_strategy(n)) for _ in range(draw(st.integers(1, 2)))]
    x = draw(
        hnp.arrays(
            np.float64,
            n,
            elements=st.one_of(st.floats(-1e6, 1e6), st.just(np.nan), st.integers(-3, 3)),
        )
    )
    big = draw(hnp.arrays(np.int64, n, elements=st.sampled_from([2**62, -(2**62), 7, -1])))
    small = draw(hnp.arrays(np.int32, n, elements=st.integers(-(2**31), 2**31 - 1)))
    cuts = sorted(set(draw(st.lists(st.integers(1, n), max_size=4))) | {n})
    return keys, {"x": x, "big": big, "small": small}, cuts, draw(st.booleans())


def _table(keys: list[np.ndarray], vals: dict[str, np.ndarray], cuts: list[int], dropna: bool):
    need = kernels.needs(ALL)
    t = None
    start = 0
    for stop in cuts:
        sl = slice(start, stop)
        part = kernels.partial(
            [k[sl] for k in keys],
            {f: v[sl, None] for f, v in vals.items()},
            need,
            np.arange(start, stop, dtype=np.int64),
            dropna,
        )
        t = kernels.merge(t, part)
        start = stop
    assert t is not None
    return t


def _frame(keys: list[np.ndarray], vals: dict[str, np.ndarray]) -> pd.DataFrame:
    cols = {f"k{i}": (k.astype(object) if k.dtype.kind == "S" else k) for i, k in enumerate(keys)}
    return pd.DataFrame({**cols, **vals})


def _exact_moments(x: np.ndarray, groups) -> tuple[np.ndarray, np.ndarray]:
    means, variances = [], []
    for idx in groups:
        v = [Fraction(int(a)) for a in x[idx]]
        mu = sum(v) / len(v)
        means.append(float(mu))
        ss = sum((a - mu) ** 2 for a in v)
        variances.append(float(ss / (len(v) - 1)) if len(v) > 1 else np.nan)
    return np.array(means), np.array(variances)


@given(cases())
@settings(max_examples=150, deadline=None)
def test_merged_tables_equal_pandas(case) -> None:
    keys, vals, cuts, dropna = case
    t = _table(keys, vals, cuts, dropna)
    df = _frame(keys, vals)
    g = df.groupby([f"k{i}" for i in range(len(keys))], dropna=dropna, sort=True)
    size = g.size()
    assert np.array_equal(t.size, size.to_numpy())
    for i, kc in enumerate(keys):
        want = size.index.get_level_values(i).to_numpy()
        got = t.keys[i]
        if kc.dtype.kind == "S":
            want = want.astype(kc.dtype)
        assert np.array_equal(got, want.astype(got.dtype), equal_nan=got.dtype.kind == "f")
    for f in vals:
        col = g[f]
        for op in ("count", "min", "max", "first", "last"):
            got = kernels.finalize(t, f, op)[:, 0]
            np.testing.assert_array_equal(got, getattr(col, op)().to_numpy().astype(got.dtype))
        got_sum = kernels.finalize(t, f, "sum")[:, 0]
        if vals[f].dtype.kind == "i":  # exact, Python ints where int64 overflows
            want = [sum(int(v) for v in vals[f][idx]) for idx in g.indices.values()]
            assert [int(v) for v in got_sum] == want
        else:
            scale = df.groupby(g.ngroup())[f].apply(lambda s: np.nansum(np.abs(s))).to_numpy()
            assert np.all(np.abs(got_sum - col.sum().to_numpy()) <= 1e-12 * scale)
        mean = kernels.finalize(t, f, "mean")[:, 0]
        var = kernels.finalize(t, f, "var", ddof=1)[:, 0]
        if vals[f].dtype.kind == "i":  # pandas rounds int64 to float64 first: exact reference
            want_mean, want_var = _exact_moments(vals[f], g.indices.values())
        else:
            want_mean, want_var = col.mean().to_numpy(), col.var(ddof=1).to_numpy()
        np.testing.assert_allclose(mean, want_mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(var, want_var, rtol=1e-7, atol=1e-6)
        qs = kernels.finalize(t, f, "quantile", q=Q)[:, 0]
        for j, q in enumerate(Q):
            want_q = col.quantile(q, interpolation="linear").to_numpy()
            np.testing.assert_allclose(qs[:, j], want_q, rtol=1e-12, atol=0)


@given(cases(), st.lists(st.integers(1, 60), max_size=5))
@settings(max_examples=100, deadline=None)
def test_exact_states_do_not_depend_on_the_split(case, other) -> None:
    keys, vals, cuts, dropna = case
    n = len(keys[0])
    a = _table(keys, vals, cuts, dropna)
    b = _table(keys, vals, sorted({c for c in other if c < n} | {n}), dropna)
    for x, y in zip(a.keys, b.keys, strict=True):
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
    for f in vals:
        for op in ("count", "size", "min", "max", "first", "last"):
            np.testing.assert_array_equal(kernels.finalize(a, f, op), kernels.finalize(b, f, op))
        if vals[f].dtype.kind == "i":
            assert kernels.finalize(a, f, "sum").tolist() == kernels.finalize(b, f, "sum").tolist()
        np.testing.assert_array_equal(
            kernels.finalize(a, f, "quantile", q=Q), kernels.finalize(b, f, "quantile", q=Q)
        )


def test_factorize_composite_is_lexicographic_and_dense_when_small() -> None:
    a = np.array([3, 1, 3, 2, 1], np.int64)
    b = np.array(["b", "z", "a", "c", "z"])
    keys, code = factorize([a, b])
    assert keys[0].tolist() == [1, 2, 3, 3] and keys[1].tolist() == ["z", "c", "a", "b"]
    assert code.tolist() == [3, 0, 2, 1, 0]
    wide = np.array([2**62, -(2**62), 0], np.int64)  # too wide for a dense table
    keys, code = factorize([wide])
    assert keys[0].tolist() == [-(2**62), 0, 2**62] and code.tolist() == [2, 0, 1]


@pytest.mark.parametrize("dtype", [np.int8, np.uint64, np.int64, np.bool_])
def test_int_sums_exact_at_the_limits(dtype) -> None:
    info = np.iinfo(dtype) if dtype is not np.bool_ else None
    x = np.array([info.max, info.max, info.min, 1] if info else [True, True, False, True], dtype)
    t = kernels.partial(
        [np.zeros(4, np.int8)], {"x": x[:, None]}, kernels.needs(("sum",)), np.arange(4)
    )
    t = kernels.merge(t, t)
    want = 2 * sum(int(v) for v in x)
    assert int(kernels.finalize(t, "x", "sum")[0, 0]) == want


@pytest.mark.parametrize("layout", ["sorted", "clustered", "scattered"])
def test_runs_of_codes_give_the_pandas_results(monkeypatch: pytest.MonkeyPatch, layout) -> None:
    """Codes in long runs (sorted or clustered keys) are reduced per run first
    (:class:`kernels.Cells`); the results equal pandas and, exactly, those of the
    per-value path (counts, int sums, min/max, first/last, quantiles)."""
    rng = np.random.default_rng(3)
    n = 30_000
    key = {
        "sorted": np.arange(n) // 700,
        "clustered": np.repeat(rng.integers(0, 9, n // 500), 500),
        "scattered": rng.integers(0, 40, n),
    }[layout].astype(np.int64)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.05] = np.nan
    big = rng.choice(np.array([2**62, -(2**62), 5], np.int64), n)
    f4 = rng.normal(size=n).astype(np.float32)
    vals = {"x": x, "big": big, "f4": f4}
    t = _table([key], vals, [n // 3, n], True)
    if layout != "scattered":
        assert kernels.Cells(key[: n // 3].astype(np.intp), 100).starts is not None
    monkeypatch.setattr(kernels, "RUN_SAMPLE", 10**9)  # the per-value path only
    ref = _table([key], vals, [n // 3, n], True)
    g = pd.DataFrame({"k": key, **vals}).groupby("k")
    g64 = pd.DataFrame({"k": key, "x": x, "f4": f4.astype(np.float64)}).groupby("k")
    for f in vals:
        for op in ("count", "min", "max", "first", "last"):
            got = kernels.finalize(t, f, op)[:, 0]
            np.testing.assert_array_equal(got, kernels.finalize(ref, f, op)[:, 0])
            np.testing.assert_array_equal(got, getattr(g[f], op)().to_numpy().astype(got.dtype))
        np.testing.assert_array_equal(
            kernels.finalize(t, f, "quantile", q=Q), kernels.finalize(ref, f, "quantile", q=Q)
        )
        if f == "big":
            got_sum = kernels.finalize(t, f, "sum")[:, 0].tolist()
            assert got_sum == [sum(int(v) for v in big[i]) for i in g.indices.values()]
        else:
            want = g64[f].sum().to_numpy()  # float32 accumulates in float64 (documented)
            np.testing.assert_allclose(kernels.finalize(t, f, "sum")[:, 0], want, rtol=1e-10)
            np.testing.assert_allclose(
                kernels.finalize(t, f, "var", ddof=1)[:, 0], g64[f].var(ddof=1), rtol=1e-9
            )
