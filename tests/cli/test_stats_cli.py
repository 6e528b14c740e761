"""``arraystore stats``: JSON output vs numpy, quantiles, histograms, errors (issue 3).

The command is run in-process through ``arraystore.testing.run_cli`` (click's
``CliRunner``: exit status, stdout and stderr apart), like tests/cli/test_cli.py.

JSON has no NaN or infinity: the CLI writes them as the strings ``"nan"``, ``"inf"``
and ``"-inf"`` (``json.loads`` of its output never needs Python's non-standard
``NaN``/``Infinity`` extension; the tests parse with that extension turned off).

The command skips NaN by default (a data summary: ``np.nan*`` semantics, ``count`` is
the non-NaN count); ``--keep-nan`` propagates NaN like numpy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.testing import run_cli


def strict_json(text: str) -> Any:
    """Parse JSON refusing NaN/Infinity literals (they are not JSON)."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {name} in output")

    return json.loads(text, parse_constant=refuse)


def decode(v: Any) -> Any:
    """The CLI's "nan"/"inf"/"-inf" strings back to floats (recursively)."""
    if isinstance(v, list):
        return [decode(i) for i in v]
    if isinstance(v, str):
        return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[v]
    return v


def quiet(fn: Any, *args: Any, **kw: Any) -> Any:
    import warnings

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


TRADES = np.dtype([("id", "<i8"), ("price", "<f8"), ("vec", "<f4", (3,)), ("sym", "S8")])


@pytest.fixture(scope="module")
def trades(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, np.ndarray]:
    """A store with a structured 1-d zarr array ``trades`` (NaN prices, an S8 field)
    and a 2-d float memmap array ``grid``. Module scope: the commands only read it."""
    tmp_path = tmp_path_factory.mktemp("stats_cli")
    rng = np.random.default_rng(5)
    x = np.zeros(500, TRADES)
    x["id"] = np.arange(500) * 7 - 1000
    x["price"] = np.round(rng.normal(100, 10, 500), 2)
    x["price"][[3, 50, 51]] = np.nan
    x["vec"] = rng.standard_normal((500, 3)).astype(np.float32)
    x["sym"] = b"ABC"
    path = str(tmp_path / "t.store")
    s = arraystore.open(path, mode="a")
    s.create("trades", data=x, chunks=(120,), backend="zarr", codec="zstd:1")
    g = rng.normal(0, 1, (40, 6))
    g[5, 2] = np.nan
    s.create("grid", data=g)
    return path, x


def test_field_quantiles_json(trades: tuple[str, np.ndarray], capsys: Any) -> None:
    path, x = trades
    code, out, err = run_cli(
        ["stats", path, "trades", "--field", "price", "--quantiles", "0.5,0.99", "--json"],
        capsys,
    )
    assert code == 0, err
    assert err == ""
    doc = strict_json(out)
    assert doc["array"] == "trades" and doc["axis"] is None
    assert list(doc["fields"]) == ["price"]
    d = doc["fields"]["price"]
    p = x["price"]
    assert d["count"] == int(np.sum(~np.isnan(p))) == 497
    assert d["nan_count"] == 3
    np.testing.assert_allclose(d["sum"], np.nansum(p), rtol=1e-12)
    np.testing.assert_allclose(d["mean"], np.nanmean(p), rtol=1e-12)
    np.testing.assert_allclose(d["std"], np.nanstd(p), rtol=1e-12)
    assert d["min"] == np.nanmin(p) and d["max"] == np.nanmax(p)
    # exact quantiles: JSON floats round-trip, so == numpy
    assert d["quantiles"] == {
        "0.5": float(np.nanquantile(p, 0.5)),
        "0.99": float(np.nanquantile(p, 0.99)),
    }
    assert doc["bytes_read"] == 500 * 8
    assert doc["seconds"] >= 0


def test_several_fields_and_default_all_numeric(
    trades: tuple[str, np.ndarray], capsys: Any
) -> None:
    path, x = trades
    code, out, err = run_cli(
        ["stats", path, "trades", "--field", "vec", "--field", "id", "--json", "--ddof", "1"],
        capsys,
    )
    assert code == 0, err
    doc = strict_json(out)
    assert sorted(doc["fields"]) == ["id", "vec"]
    assert doc["fields"]["id"]["sum"] == int(x["id"].sum())
    np.testing.assert_allclose(
        doc["fields"]["vec"]["std"],
        np.std(x["vec"].astype(np.float64), axis=0, ddof=1),
        rtol=1e-12,
    )
    assert doc["fields"]["vec"]["min"] == x["vec"].min(axis=0).tolist()
    code, out, _ = run_cli(["stats", path, "trades", "--json"], capsys)
    assert code == 0 and list(strict_json(out)["fields"]) == ["id", "price", "vec"]  # no S8


def test_axis_json(trades: tuple[str, np.ndarray], capsys: Any) -> None:
    path, _ = trades
    g = arraystore.open(path)["grid"][...]
    code, out, err = run_cli(["stats", path, "grid", "--axis", "0", "--json"], capsys)
    assert code == 0, err
    doc = strict_json(out)
    assert doc["axis"] == 0
    d = doc["fields"]["grid"]
    assert d["count"] == np.sum(~np.isnan(g), axis=0).tolist()
    assert d["nan_count"] == [0, 0, 1, 0, 0, 0]
    np.testing.assert_allclose(d["mean"], np.nanmean(g, axis=0), rtol=1e-12)
    np.testing.assert_allclose(d["std"], np.nanstd(g, axis=0), rtol=1e-12)
    assert d["min"] == np.nanmin(g, axis=0).tolist()
    assert d["max"] == np.nanmax(g, axis=0).tolist()
    # a tuple of axes: a list in JSON; --keep-nan follows numpy
    code, out, err = run_cli(
        ["stats", path, "grid", "--axis", "1,0", "--json", "--keep-nan"], capsys
    )
    assert code == 0, err
    doc = strict_json(out)
    assert doc["axis"] == [1, 0]
    assert doc["fields"]["grid"]["mean"] == "nan" and doc["fields"]["grid"]["count"] == 240
    code, out, _ = run_cli(["stats", path, "grid", "--axis", "all", "--json"], capsys)
    assert code == 0 and strict_json(out)["axis"] is None


def test_hist(trades: tuple[str, np.ndarray], capsys: Any) -> None:
    path, x = trades
    code, out, err = run_cli(
        ["stats", path, "trades", "--field", "price", "--hist", "10", "--json"], capsys
    )
    assert code == 0, err
    h = strict_json(out)["fields"]["price"]["histogram"]
    p = x["price"][~np.isnan(x["price"])]
    counts, edges = np.histogram(p, bins=10)
    assert h["counts"] == counts.tolist()
    assert h["edges"] == edges.tolist()
    code, out, err = run_cli(
        ["stats", path, "trades", "--field", "id", "--hist", "auto", "--json"], capsys
    )
    assert code == 0, err
    counts, edges = np.histogram(x["id"], bins="auto")
    h = strict_json(out)["fields"]["id"]["histogram"]
    assert h["counts"] == counts.tolist() and h["edges"] == edges.tolist()
    # the table output (not a terminal: no progress bar) shows the counts
    code, out, err = run_cli(["stats", path, "trades", "--hist", "4", "--quantiles", "0.5"], capsys)
    assert code == 0, err
    assert "histogram" in out and "q0.5" in out and "price" in out and "vec" in out


def test_hist_auto_of_int8_extremes(tmp_path: Path, capsys: Any) -> None:
    """``--hist auto`` of int8 [-128, 127, 127]: numpy's 4 bins (it gave 3)."""
    path = str(tmp_path / "i.store")
    x = np.array([-128, 127, 127], np.int8)
    arraystore.open(path, mode="a").create("x", data=x, chunks=(2,))
    code, out, err = run_cli(["stats", path, "x", "--hist", "auto", "--json"], capsys)
    assert code == 0, err
    h = strict_json(out)["fields"]["x"]["histogram"]
    counts, edges = np.histogram(x, bins="auto")
    assert h["counts"] == counts.tolist() == [1, 0, 0, 2]
    assert h["edges"] == edges.tolist()


def test_table_output(trades: tuple[str, np.ndarray], capsys: Any) -> None:
    path, _ = trades
    code, out, err = run_cli(["stats", path, "trades", "--quiet"], capsys)
    assert code == 0, err
    for word in ("trades", "id", "price", "vec", "count", "nan_count", "mean", "std"):
        assert word in out


def test_executors_agree(trades: tuple[str, np.ndarray], capsys: Any) -> None:
    path, _ = trades
    docs = []
    for extra in (["--executor", "serial"], ["--executor", "threads", "--workers", "2"]):
        code, out, err = run_cli(["stats", path, "trades", "--axis", "0", "--json", *extra], capsys)
        assert code == 0, err
        docs.append(strict_json(out)["fields"])
    assert docs[0] == docs[1]


def test_nan_and_inf_become_strings(tmp_path: Path, capsys: Any) -> None:
    """JSON cannot hold NaN/±inf: they are written as "nan", "inf", "-inf"."""
    path = str(tmp_path / "n.store")
    g = np.array([[1.0, np.nan, np.inf], [2.0, np.nan, -np.inf], [3.0, np.nan, 5.0]])
    arraystore.open(path, mode="a").create("g", data=g, backend="zarr", codec="none", chunks=(2, 2))
    code, out, err = run_cli(["stats", path, "g", "--axis", "0", "--json"], capsys)
    assert code == 0, err
    assert "NaN" not in out and "Infinity" not in out
    d = strict_json(out)["fields"]["g"]
    assert d["count"] == [3, 0, 3] and d["nan_count"] == [0, 3, 0]
    assert d["min"] == [1.0, "nan", "-inf"]  # all-NaN column: NaN (skipped, like nanmin)
    assert d["max"] == [3.0, "nan", "inf"]
    assert d["mean"] == [2.0, "nan", "nan"]  # inf + -inf
    assert d["sum"] == [6.0, 0.0, "nan"]  # nansum of nothing is 0
    np.testing.assert_array_equal(decode(d["std"]), quiet(np.nanstd, g, axis=0))
    code, out, err = run_cli(["stats", path, "g", "--json", "--keep-nan"], capsys)
    assert code == 0, err
    d = strict_json(out)["fields"]["g"]
    assert d["sum"] == "nan" and d["max"] == "nan" and d["count"] == 9
    code, out, err = run_cli(["stats", path, "g", "--json", "--quantiles", "0,1"], capsys)
    assert code == 0, err
    q = strict_json(out)["fields"]["g"]["quantiles"]
    # numpy's linear interpolation next to an infinity gives NaN even at q=0 / q=1
    # (-inf + (x - -inf) * 0): arraystore copies that quirk exactly
    assert q == {"0.0": "nan", "1.0": "nan"}
    np.testing.assert_array_equal(quiet(np.nanquantile, g, [0.0, 1.0]), [np.nan, np.nan])
    code, out, err = run_cli(["stats", path, "g", "--json", "--quantiles", "0.5"], capsys)
    assert code == 0, err
    assert strict_json(out)["fields"]["g"]["quantiles"] == {"0.5": float(np.nanquantile(g, 0.5))}


ERRORS = [
    (["--memory", "0"], r"^error: memory budget must be positive \(e\.g\. --memory 512MiB\)$"),
    (["--memory", "lots"], r"^error: invalid size 'lots'"),
    (
        ["--memory", "1KiB"],  # a chunk of 120 records (4.2 KiB) and its kernel's room
        r"^error: plan needs at least \d+\.\d KiB per task but --memory is 1\.0 KiB",
    ),
    (["--field", "nope"], r"^error: no field 'nope' \(fields: id, price, vec, sym\)$"),
    (
        ["--field", "sym"],
        r"^error: field 'sym' has non-numeric dtype S8; cast it to a number first$",
    ),
    (["--axis", "5"], r"^error: axis 5 is out of bounds for array of dimension 1$"),
    (["--axis", "x"], r"^error: unknown axis 'x' \(no dimension names known\)$"),
    (["--axis", "0.5"], r"^error: --axis must be an integer, a dimension name or a comma"),
    (["--quantiles", "1.5"], r"^error: quantiles must be in \[0, 1\], got \[1\.5\]$"),
    (["--quantiles", "0.5,-0.1"], r"^error: quantiles must be in \[0, 1\]"),
    (["--quantiles", "half"], r"^error: --quantiles must be comma-separated numbers"),
    (["--where", "price >"], r"^error: .*syntax"),
    (["--where", "nope > 0"], r"^error: .*nope"),
    (["--where", "price + 1"], r"^error: where expression 'price \+ 1' must give booleans"),
    (["--hist", "0"], r"^error: --hist must be a number of bins in 1..100000"),
    (["--workers", "0"], r"^error: --workers must be >= 1$"),
    (["--executor", "nope"], r"^error: .*nope"),
    (["--ddof", "-1"], r"^error: Invalid value for .--ddof.: -1 is not in the range"),
]


@pytest.mark.parametrize(("args", "message"), ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
def test_errors_one_line_exit_1(
    trades: tuple[str, np.ndarray], capsys: Any, args: list[str], message: str
) -> None:
    import re

    path, _ = trades
    code, out, err = run_cli(["stats", path, "trades", *args, "--json"], capsys)
    assert code == 1, (out, err)
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err  # exactly one line
    assert re.search(message, err.rstrip("\n")), err


def test_missing_store_and_array(
    tmp_path: Path, trades: tuple[str, np.ndarray], capsys: Any
) -> None:
    path, _ = trades
    code, out, err = run_cli(["stats", path, "nope", "--json"], capsys)
    assert code == 1 and out == "" and err.startswith("error: ") and err.count("\n") == 1
    code, out, err = run_cli(["stats", str(tmp_path / "none.store"), "x"], capsys)
    assert code == 1 and out == "" and err.startswith("error: ") and err.count("\n") == 1


def test_where_expression_on_records(trades: tuple[str, np.ndarray], capsys: Any) -> None:
    """``--where`` over the fields: the stats, quantiles and histogram of the selection."""
    path, x = trades
    args = ["stats", path, "trades", "--where", "(price > 100) & (id % 2 == 0)", "--json"]
    code, out, err = run_cli([*args, "--quantiles", "0.5", "--hist", "4"], capsys)
    assert code == 0, err
    doc = strict_json(out)
    sel = x[(x["price"] > 100) & (x["id"] % 2 == 0)]
    assert 0 < len(sel) < 500
    d = doc["fields"]["price"]
    assert d["count"] == len(sel) and d["nan_count"] == 0
    np.testing.assert_allclose(d["mean"], sel["price"].mean(), rtol=1e-12)
    assert d["min"] == sel["price"].min() and d["max"] == sel["price"].max()
    assert d["quantiles"] == {"0.5": float(np.quantile(sel["price"], 0.5))}
    counts, edges = np.histogram(sel["price"], 4)
    assert d["histogram"] == {"counts": counts.tolist(), "edges": edges.tolist()}
    v = doc["fields"]["vec"]  # a subarray field: the selected rows' whole subarrays
    assert v["count"] == [len(sel)] * 3
    np.testing.assert_allclose(v["sum"], sel["vec"].astype(np.float64).sum(axis=0), rtol=1e-6)
    assert doc["fields"]["id"]["sum"] == int(sel["id"].sum())


def test_axis_quantiles_and_where_on_plain(trades: tuple[str, np.ndarray], capsys: Any) -> None:
    """``--axis 0 --quantiles``: per-column exact quantiles (NaN skipped by default), and
    ``--where`` naming the plain array ``grid`` itself."""
    path, _ = trades
    g = arraystore.open(path)["grid"][...]
    code, out, err = run_cli(
        ["stats", path, "grid", "--axis", "0", "--quantiles", "0.5,0.9", "--json"], capsys
    )
    assert code == 0, err
    q = strict_json(out)["fields"]["grid"]["quantiles"]
    assert np.array_equal(np.array([q["0.5"], q["0.9"]]), np.nanquantile(g, [0.5, 0.9], axis=0))
    code, out, err = run_cli(
        ["stats", path, "grid", "--axis", "1", "--where", "grid > 0", "--keep-nan", "--json"],
        capsys,
    )
    assert code == 0, err
    d = strict_json(out)["fields"]["grid"]
    assert d["count"] == np.sum(g > 0, axis=1).tolist()
    np.testing.assert_allclose(d["sum"], np.sum(g, axis=1, where=g > 0), rtol=1e-12)
    code, out, err = run_cli(["stats", path, "grid", "--where", "price > 0"], capsys)
    assert code == 1 and err.count("\n") == 1 and "price" in err
    code, out, err = run_cli(["stats", path, "--expr", "grid * 2", "--where", "grid > 0"], capsys)
    assert code == 1 and err == (
        "error: --expr cannot be combined with --field, --where, --quantiles or --hist\n"
    )
