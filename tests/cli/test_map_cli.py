"""`arraystore map` (--expr, --where, --dtype, --overwrite) and `stats --expr` from the CLI:
results equal numpy, user errors are one line with exit 1 and leave the store as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.testing import run_cli, tree_hash

DT = np.dtype([("price", "<f8"), ("qty", "<i4"), ("flag", "?")])


@pytest.fixture(params=["memmap", "zarr"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = np.zeros(1003, DT)
    x["price"] = rng.uniform(-5, 100, x.size)
    x["qty"] = rng.integers(-3, 50, x.size)
    x["flag"] = rng.random(x.size) < 0.3
    b = rng.standard_normal(1003)
    path = str(tmp_path / "m.store")
    s = arraystore.open(path, mode="a")
    kw: dict[str, Any] = {"backend": request.param, "chunks": (97,)}
    if request.param == "zarr":
        kw["codec"] = "lz4"
    s.create("t", data=x, **kw)
    s.create("b", data=b, **kw)
    return path, x, b


def test_map_expr_over_fields(store: Any, capsys: Any) -> None:
    path, x, _ = store
    code, out, err = run_cli(
        ["map", path, "t", "--expr", "sqrt(abs(price)) * qty", "--out", "n", "-q"], capsys
    )
    assert code == 0, err
    assert "wrote n: shape (1003,)" in out
    got = arraystore.open(path, mode="r")["n"][...]
    np.testing.assert_allclose(got, np.sqrt(np.abs(x["price"])) * x["qty"], rtol=1e-15)
    assert got.dtype == np.float64


def test_map_expr_over_arrays_with_dtype(store: Any, capsys: Any) -> None:
    path, _x, b = store
    code, _, err = run_cli(
        ["map", path, "--expr", "b * 2 + 1", "--out", "b2", "--dtype", "f4", "-q"], capsys
    )
    assert code == 0, err
    got = arraystore.open(path, mode="r")["b2"][...]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, (b * 2 + 1).astype(np.float32))


def test_where_rows_and_where_with_expr(store: Any, capsys: Any) -> None:
    path, x, _ = store
    code, _out, err = run_cli(
        ["map", path, "t", "--where", "price > 50", "--out", "w", "-q"], capsys
    )
    assert code == 0, err
    want = x[x["price"] > 50]
    got = arraystore.open(path, mode="r")["w"][...]
    assert got.dtype == DT and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    code, _, err = run_cli(
        ["map", path, "t", "--where", "flag", "--expr", "price * qty", "--out", "w2", "-q"],
        capsys,
    )
    assert code == 0, err
    np.testing.assert_array_equal(
        arraystore.open(path, mode="r")["w2"][...], (x["price"] * x["qty"])[x["flag"]]
    )


def test_overwrite_replaces_and_refuses_without_it(store: Any, capsys: Any) -> None:
    path, x, _ = store
    assert run_cli(["map", path, "t", "--expr", "qty", "--out", "q", "-q"], capsys)[0] == 0
    before = tree_hash(Path(path))
    code, _, err = run_cli(["map", path, "t", "--expr", "qty + 1", "--out", "q", "-q"], capsys)
    assert code == 1
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert "q" in err and "exist" in err
    assert tree_hash(Path(path)) == before
    code, _, err = run_cli(
        ["map", path, "t", "--expr", "qty + 1", "--out", "q", "--overwrite", "-q"], capsys
    )
    assert code == 0, err
    np.testing.assert_array_equal(arraystore.open(path, mode="r")["q"][...], x["qty"] + 1)


def test_stats_expr_equals_numpy(store: Any, capsys: Any) -> None:
    path, x, _ = store
    code, out, err = run_cli(["stats", path, "t", "--expr", "price * qty", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    (res,) = doc["fields"].values()
    v = x["price"] * x["qty"]
    assert res["count"] == v.size and res["nan_count"] == 0
    np.testing.assert_allclose(res["sum"], v.sum(), rtol=1e-12)
    np.testing.assert_allclose(res["mean"], v.mean(), rtol=1e-12)
    np.testing.assert_allclose(res["std"], v.std(), rtol=1e-12)
    assert res["min"] == v.min() and res["max"] == v.max()
    assert "price * qty" not in arraystore.open(path, mode="r")  # nothing stored


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expr", "price *", "--out", "e"], "syntax"),
        (["--expr", "nosuch + 1", "--out", "e"], "nosuch"),
        (["--expr", "__import__('os')", "--out", "e"], "__import__|not allowed|unknown"),
        (["--expr", "price.__class__", "--out", "e"], "attribute|not allowed"),
        (["--expr", "(lambda: 1)()", "--out", "e"], "lambda|not allowed|unsupported"),
        (["--where", "price", "--out", "e"], "bool"),
        (["--out", "e"], "--expr and/or --where"),
        (["--expr", "price", "--out", "bad/name"], "name"),
        (["--expr", "price", "--out", "e", "--dtype", "f9"], "f9"),
        (["--expr", "price", "--out", "e", "--memory", "0"], "memory"),
    ],
    ids=[
        "syntax",
        "unknown-name",
        "import",
        "attribute",
        "lambda",
        "where-not-bool",
        "nothing-to-do",
        "bad-out-name",
        "bad-dtype",
        "zero-memory",
    ],
)
def test_map_errors_are_one_line(store: Any, capsys: Any, args: list[str], message: str) -> None:
    import re

    path, _, _ = store
    before = tree_hash(Path(path))
    code, out, err = run_cli(["map", path, "t", *args, "-q"], capsys)
    assert code == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    assert re.search(message, lines[0], re.IGNORECASE), lines[0]
    assert tree_hash(Path(path)) == before


def test_stats_expr_errors(store: Any, capsys: Any) -> None:
    path, _, _ = store
    for args, message in [
        (["--expr", "price +"], "syntax"),
        (["--expr", "price", "--field", "qty"], "cannot be combined"),
        (["--expr", "open('x')"], "open|not allowed|unknown"),
    ]:
        code, _, err = run_cli(["stats", path, "t", *args], capsys)
        assert code == 1, err
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1, err
        assert message.split("|")[0] in err.lower() or any(
            m in err.lower() for m in message.split("|")
        ), err
