"""Reductions load numba only for data worth its import and cache load (issue 21 item 3):
below ``NUMBA_MIN_BYTES`` (``ARRAYSTORE_NUMBA_MIN_BYTES``) the numpy kernels run, with the
same results to rounding, and a small ``arraystore stats`` never imports numba."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore._native.jit import (
    NUMBA_MIN_BUDGET,
    NUMBA_MIN_BYTES,
    numba_min_bytes,
    numba_pays,
)
from arraystore.errors import InvalidArgument
from arraystore.ops.map.blocks import reduce_expr
from arraystore.ops.reduce.kernels import numba as kernels_numba
from arraystore.testing import BackendCase, backend_params

REPO = Path(__file__).resolve().parent.parent
OPS = ["count", "sum", "mean", "std", "min", "max"]
ENV = "ARRAYSTORE_NUMBA_MIN_BYTES"


@pytest.fixture
def carries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the running numba states asked for (every numba reduction makes one; it
    is asked for, and None, without numba too)."""
    made: list[int] = []
    real = kernels_numba.RowsCarry.create

    def counting(K: int, dtype: Any) -> Any:
        made.append(K)
        return real(K, dtype)

    monkeypatch.setattr(kernels_numba.RowsCarry, "create", staticmethod(counting))
    return made


@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "none")))
def test_threshold_picks_the_kernels(
    store: arraystore.Store,
    case: BackendCase,
    carries: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = np.random.default_rng(7).standard_normal((3000, 40)) * 5 + 100
    arr = store.create("x", data=x, chunks=(700, 40), **case.kwargs)
    assert arr.nbytes < NUMBA_MIN_BYTES  # the default: numpy kernels
    results = {}
    for setting in (None, str(arr.nbytes + 1), str(arr.nbytes), "0"):
        if setting is None:
            monkeypatch.delenv(ENV, raising=False)
        else:
            monkeypatch.setenv(ENV, setting)
        carries.clear()
        res = arr.stats(ops=OPS, axis=0, memory="8MiB")
        # numba exactly when the array holds at least the threshold's bytes
        assert bool(carries) == (setting in (str(arr.nbytes), "0")), setting
        results[setting] = res["x"]
        np.testing.assert_array_equal(res["x"]["min"], x.min(axis=0))
        np.testing.assert_array_equal(res["x"]["max"], x.max(axis=0))
        for op in ("sum", "mean", "std"):
            np.testing.assert_allclose(res["x"][op], getattr(x, op)(axis=0), rtol=1e-12)
    numpy_path, numba_path = results[None], results["0"]
    for op in OPS:  # the two paths agree to rounding
        np.testing.assert_allclose(numpy_path[op], numba_path[op], rtol=1e-13)


def test_reduce_expr_follows_the_threshold(
    store: arraystore.Store, carries: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    x = np.random.default_rng(8).standard_normal((2000, 8))
    store.create("a", data=x, backend="memmap")
    want = (2 * x).sum(axis=0)
    monkeypatch.delenv(ENV, raising=False)
    small = reduce_expr(store, "a * 2", ops=["sum"], axis=0)
    assert not carries
    monkeypatch.setenv(ENV, "0")
    big = reduce_expr(store, "a * 2", ops=["sum"], axis=0)
    assert carries
    for res in (small, big):
        np.testing.assert_allclose(res["a * 2"]["sum"], want, rtol=1e-12)


def test_setting_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert numba_min_bytes() == NUMBA_MIN_BYTES
    assert not numba_pays(NUMBA_MIN_BYTES - 1) and numba_pays(NUMBA_MIN_BYTES)
    monkeypatch.setenv(ENV, " 1000 ")
    assert numba_min_bytes() == 1000 and numba_pays(1000) and not numba_pays(999)
    for bad in ("-1", "1GiB", "1e9"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(InvalidArgument, match=ENV):
            numba_min_bytes()


def test_a_small_budget_keeps_to_numpy_unless_the_setting_says(monkeypatch) -> None:
    """numba's own ~100 MiB would not fit a small --memory (issue 20: 256 MiB budget)."""
    monkeypatch.delenv(ENV, raising=False)
    big = 10 * NUMBA_MIN_BYTES
    assert numba_pays(big, budget=NUMBA_MIN_BUDGET) and numba_pays(big, budget=None)
    assert not numba_pays(big, budget=NUMBA_MIN_BUDGET - 1)
    monkeypatch.setenv(ENV, "0")
    assert numba_pays(1, budget=2**20)


def test_small_stats_command_imports_neither_numba_nor_zarr(tmp_path: Path) -> None:
    """The start-up cost of ``arraystore stats`` on a small memmap array: no numba import
    (~0.3 s) and no zarr; numba is still loaded when the setting asks for it."""
    arraystore.open(tmp_path / "s", mode="a").create("x", data=np.arange(1000.0))
    code = (
        "import sys\n"
        "from arraystore.cli import main\n"
        f"main(['stats', {str(tmp_path / 's')!r}, 'x', '--json'])\n"
        "print(sorted(m for m in ('numba', 'zarr') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != ENV}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"
    if kernels_numba.available():
        env[ENV] = "0"
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1] == "['numba']"
