"""The optional numba fused kernel agrees with the numpy kernels and numpy itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arraystore.ops.reduce import kernels
from arraystore.ops.reduce.kernels import numba as kernels_numba

pytestmark = pytest.mark.skipif(not kernels_numba.available(), reason="numba not installed")
OPS = ("count", "nan_count", "sum", "mean", "std", "var", "min", "max")


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 3000),
    cols=st.integers(1, 70),
    dtype=st.sampled_from(["f4", "f8"]),
    scale=st.sampled_from([1e-3, 1.0, 1e6]),
    offset=st.sampled_from([0.0, 1e8]),
    seed=st.integers(0, 2**31),
)
def test_fused_matches_numpy(rows, cols, dtype, scale, offset, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * scale + offset).astype(dtype)
    st_ = kernels_numba.rows_state(x, frozenset(OPS))
    assert st_ is not None
    xf = x.astype(np.float64)
    np.testing.assert_array_equal(st_["min"], x.min(axis=0))
    np.testing.assert_array_equal(st_["max"], x.max(axis=0))
    np.testing.assert_allclose(st_["sum"], xf.sum(axis=0), rtol=1e-12, atol=1e-9 * scale)
    # the reference in extended precision: with offset/scale up to 1e11 the variance is
    # ill-conditioned and numpy's own float64 var is off by ~1e-7 relative there
    xl = x.astype(np.longdouble)
    var = ((xl - xl.mean(axis=0)) ** 2).mean(axis=0).astype(np.float64)
    np.testing.assert_allclose(st_["m2"] / rows, var, rtol=1e-8, atol=1e-12 * scale**2)
    # through the public kernel API, per column and over everything
    for axis in (0, None):
        region = (slice(0, rows), slice(0, cols))
        res = kernels.finalize(kernels.partial(x, region, x.shape, axis, OPS), OPS, 1)
        np.testing.assert_allclose(
            res["mean"], np.mean(xf, axis=axis), rtol=1e-11, atol=1e-12 * (scale + offset)
        )
        if rows > 1:  # the same extended-precision reference as above
            dev = xl - xl.mean(axis=axis, keepdims=True)
            n = xl.size // np.size(res["std"])
            std = np.sqrt((dev**2).sum(axis=axis) / (n - 1)).astype(np.float64)
            np.testing.assert_allclose(res["std"], std, rtol=1e-7, atol=1e-12 * scale)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_falls_back(bad):
    x = np.ones((100, 3))
    x[50, 1] = bad
    assert kernels_numba.rows_state(x, frozenset(OPS)) is None
    res = kernels.finalize(
        kernels.partial(x, (slice(0, 100), slice(0, 3)), x.shape, 0, OPS, skipna=True), OPS, 0
    )
    want = np.nansum(x, axis=0)
    np.testing.assert_array_equal(res["sum"], want)
    assert res["nan_count"].tolist() == [0, int(np.isnan(bad)), 0]


def test_not_applicable_layouts():
    assert kernels_numba.rows_state(np.ones((10, 3), "i8"), frozenset(OPS)) is None
    assert kernels_numba.rows_state(np.ones((10, 3))[:, ::2], frozenset(OPS)) is None
    assert kernels_numba.rows_state(np.ones((0, 3)), frozenset(OPS)) is None


def _pieces(rows: int, cuts: list[int], rest: tuple[int, ...]) -> list[tuple[slice, ...]]:
    edges = [0, *sorted({c for c in cuts if 0 < c < rows}), rows]
    return [(slice(a, b), *(slice(0, n) for n in rest)) for a, b in itertools.pairwise(edges)]


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 2000),
    rest=st.sampled_from([(5,), (64,), (3, 4), (1,)]),
    axis=st.sampled_from([0, None, "lead2"]),
    dtype=st.sampled_from(["f4", "f8"]),
    cuts=st.lists(st.integers(1, 1999), max_size=6),
    seed=st.integers(0, 2**31),
)
def test_rows_partial_streams_pieces(rows, rest, axis, dtype, cuts, seed):
    """Row pieces folded into one running state equal numpy, and the same partial as
    the piece-by-piece path (merged in order) to rounding."""
    if axis == "lead2":
        axis = (0, 1) if len(rest) == 2 else 0
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, *rest)) * 3 + 10).astype(dtype)
    pieces = _pieces(rows, cuts, rest)
    got = kernels.rows_partial(lambda p: x[p].copy(), pieces, x.shape, axis, OPS, x.dtype)
    assert got is not None
    res = kernels.finalize(got, OPS, 0)
    xf = x.astype(np.float64)
    np.testing.assert_array_equal(res["min"], x.min(axis=axis))
    np.testing.assert_array_equal(res["max"], x.max(axis=axis))
    np.testing.assert_allclose(res["sum"], xf.sum(axis=axis), rtol=1e-12)
    np.testing.assert_allclose(res["var"], xf.var(axis=axis), rtol=1e-10)
    assert np.all(res["count"] == x.size // np.size(res["sum"]))
    acc = None
    for p in pieces:
        part = kernels.partial(x[p], p, x.shape, axis, OPS)
        acc = part if acc is None else kernels.merge(acc, part)
    assert acc is not None and acc.box == got.box
    ref = kernels.finalize(acc, OPS, 0)
    for op in OPS:
        np.testing.assert_allclose(res[op], ref[op], rtol=1e-12)


def test_rows_partial_equals_one_call_when_pieces_hold_whole_groups():
    """Pieces of whole kernel groups: bit-identical to one call over the whole block."""
    x = np.random.default_rng(1).standard_normal((4096, 64))
    g = kernels_numba.GROUP_BYTES // (64 * 8)
    pieces = _pieces(4096, [g * 3, g * 7, g * 20], (64,))
    got = kernels.finalize(
        kernels.rows_partial(lambda p: x[p].copy(), pieces, x.shape, 0, OPS, x.dtype), OPS, 0
    )
    whole = kernels.finalize(
        kernels.partial(x, (slice(0, 4096), slice(0, 64)), x.shape, 0, OPS), OPS, 0
    )
    for op in OPS:
        np.testing.assert_array_equal(got[op], whole[op])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_rows_partial_declines(bad):
    """NaN/inf in a later piece, an int dtype, an axis that keeps axis 0: None."""
    x = np.ones((300, 4))
    x[250, 2] = bad
    pieces = _pieces(300, [100, 200], (4,))
    assert kernels.rows_partial(lambda p: x[p].copy(), pieces, x.shape, 0, OPS, x.dtype) is None
    y = np.ones((300, 4))
    assert kernels.rows_partial(lambda p: y[p].copy(), pieces, y.shape, 1, OPS, y.dtype) is None
    z = np.ones((300, 4), "i8")
    assert kernels.rows_partial(lambda p: z[p].copy(), pieces, z.shape, 0, OPS, z.dtype) is None
    argmin = ("argmin",)
    assert kernels.rows_partial(lambda p: y[p].copy(), pieces, y.shape, 0, argmin, y.dtype) is None
