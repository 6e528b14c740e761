"""The fused numba cast kernel gives the same result and audit as the numpy path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arraystore.core import casting
from arraystore.core.casting import fast as casting_fast

pytestmark = pytest.mark.skipif(casting_fast._load() is None, reason="numba not installed")

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-45, 5e-324, 3.4028235e38, 3.5e38, -1e300, 0.1, 16777217.0]),
)


def _numpy_path(x, policy, rtol):
    with pytest.MonkeyPatch.context() as m:
        m.setattr(casting_fast, "float_narrow", lambda *a: None)
        return casting.cast_block(
            x,
            "f4",
            policy,
            rtol=rtol,
            raise_on_violation=False,
            region=(slice(5, 5 + len(x)),),
            shape=(len(x) + 10,),
        )


@settings(max_examples=150, deadline=None)
@given(
    x=hnp.arrays(np.float64, st.integers(0, 200), elements=values),
    policy=st.sampled_from(["value", "clip", "unsafe", "same_kind"]),
    rtol=st.sampled_from([0.0, 1e-7, 1e-3]),
)
def test_fast_equals_numpy(x, policy, rtol):
    y_fast, rep_fast = casting.cast_block(
        x,
        "f4",
        policy,
        rtol=rtol,
        raise_on_violation=False,
        region=(slice(5, 5 + len(x)),),
        shape=(len(x) + 10,),
    )
    y_ref, rep_ref = _numpy_path(x, policy, rtol)
    np.testing.assert_array_equal(y_fast.view(np.uint32), y_ref.view(np.uint32))
    assert rep_fast.to_dict() == rep_ref.to_dict()


def test_value_violation_raises_with_indices():
    x = np.array([1.0, 0.1, 1e39, 2.0])
    with pytest.raises(casting.CastError, match=r"\[1, 2\]"):
        casting.cast_block(x, "f4", "value")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3000),
    scale=st.sampled_from([1.0, 1e-40, 1e-310, 1e30]),
    pick=st.integers(0, 2999),
)
def test_fast_equals_numpy_at_the_rtol_boundary(seed, n, scale, pick):
    """rtol set to one element's own relative error (and one ulp either side): the kernel's
    multiply-first tests (no division on the common path) must count exactly like d/|v|."""
    x = np.random.default_rng(seed).standard_normal(n) * scale
    d = np.abs(x.astype(np.float32).astype(np.float64) - x)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = d / np.abs(x)
    r0 = float(r[pick % n]) if np.isfinite(r[pick % n]) else 1e-7
    for rtol in (r0, np.nextafter(r0, 0.0), np.nextafter(r0, 1.0)):
        y_fast, rep_fast = casting.cast_block(
            x,
            "f4",
            "value",
            rtol=rtol,
            raise_on_violation=False,
            region=(slice(5, 5 + n),),
            shape=(n + 10,),
        )
        y_ref, rep_ref = _numpy_path(x, "value", rtol)
        np.testing.assert_array_equal(y_fast.view(np.uint32), y_ref.view(np.uint32))
        assert rep_fast.to_dict() == rep_ref.to_dict()
