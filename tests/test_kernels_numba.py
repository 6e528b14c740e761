"""The optional numba fused kernel agrees with the numpy kernels and numpy itself."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arraystore.ops import kernels, kernels_numba

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
        if rows > 1:
            np.testing.assert_allclose(
                res["std"], np.std(xf, axis=axis, ddof=1), rtol=1e-7, atol=1e-12 * scale
            )


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
