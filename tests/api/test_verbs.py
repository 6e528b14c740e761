"""A Python twin for every CLI verb (issue 19 item 3): ``Store.ls``, ``remove``, ``verify``,
``stats``, ``cast``, ``map``, ``Array.astype`` (and ``create``, ``info``, ``rename``,
``import_file``, ``Array.export``) give what ``arraystore VERB`` prints / stores on the
same data; bad input is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.cli import main
from arraystore.core.meta import dumps
from arraystore.ops.reduce.stats import json_safe
from arraystore.testing import assert_same, run_cli

#: keys of a cast report / stats document that depend on the run (timings) or the output
_RUN_KEYS = ("seconds", "gb_per_s", "out")


def _same_store(store: arraystore.Store, case_names: tuple[str, ...] = ("x",)) -> None:
    """Fill ``store`` with a small structured array ``t`` and a plain ``x``."""
    rng = np.random.default_rng(0)
    t = np.zeros(500, dtype=[("price", "f8"), ("qty", "i8")])
    t["price"] = rng.integers(0, 800, 500) / 4  # exact in float32
    t["qty"] = rng.integers(0, 200, 500)
    store.create("t", data=t, chunks=128)
    for name in case_names:
        store.create(name, data=np.arange(600, dtype="f8").reshape(200, 3), chunks=64)


def _cli_json(args: list[str]) -> Any:
    code, out, err = run_cli([*args, "--json"])
    assert code == 0, err
    return json.loads(out)


def _py_json(doc: Any) -> Any:
    """``doc`` as the CLI's ``--json`` writes it (NaN/inf as strings, tuples as lists)."""
    return json.loads(dumps(json_safe(doc)))


def _one_line_error(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg, msg
    return msg


#: each ``arraystore`` command and its Python twin
TWINS = {
    "create": arraystore.Store.create,
    "ls": arraystore.Store.ls,
    "info": arraystore.Store.info,
    "mv": arraystore.Store.rename,
    "rm": arraystore.Store.remove,
    "import": arraystore.Store.import_file,
    "export": arraystore.Array.export,
    "stats": arraystore.Store.stats,
    "cast": arraystore.Store.cast,
    "map": arraystore.Store.map,
    "verify": arraystore.Store.verify,
    "upgrade": arraystore.Store.upgrade,
    "append": arraystore.Store.append,
}


def test_every_command_has_a_python_twin() -> None:
    assert sorted(main.commands) == sorted(TWINS)


@pytest.mark.parametrize(
    "args",
    [
        ["create", "n", "--shape", "4"],
        ["ls"],
        ["info", "x"],
        ["mv", "x", "x2"],
        ["rm", "x"],
        ["import", "n", "IN.npy"],
        ["export", "x", "OUT.npy"],
        ["stats", "x"],
        ["cast", "x", "--to", "f4"],
        ["map", "--expr", "x + 1", "--out", "n"],
        ["verify"],
        ["upgrade", "x"],
        ["append", "x", "--from", "ROWS.npy"],
    ],
    ids=lambda a: a[0],
)
def test_the_command_calls_its_twin(
    store: arraystore.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    _same_store(store)
    np.save(tmp_path / "IN.npy", np.arange(3))
    np.save(tmp_path / "ROWS.npy", np.ones((2, 3)))
    twin = TWINS[args[0]]
    owner = arraystore.Array if twin.__name__ == "export" else arraystore.Store
    calls: list[Any] = []

    def spy(self: Any, *a: Any, **kw: Any) -> Any:
        calls.append(a)
        return twin(self, *a, **kw)

    monkeypatch.setattr(owner, twin.__name__, spy)
    files = {n: str(tmp_path / n) for n in ("IN.npy", "OUT.npy", "ROWS.npy")}
    code, _, err = run_cli([args[0], str(store.path), *(files.get(a, a) for a in args[1:])])
    assert code == 0, err
    assert len(calls) == 1


# ------------------------------------------------------------------ twins vs CLI
def test_ls_is_ls_json(store: arraystore.Store) -> None:
    _same_store(store)
    assert store.ls() == _cli_json(["ls", str(store.path)])
    assert [r["name"] for r in store.ls()] == ["t", "x"]
    assert store.ls()[0] == {
        "name": "t",
        "shape": [500],
        "dtype": "price:f8,qty:i8",
        "backend": "memmap",
        "codec": "none",
        "nbytes": 8000,
    }


def test_info_is_info_json(store: arraystore.Store) -> None:
    _same_store(store)
    assert store.info("t") == _cli_json(["info", str(store.path), "t"])


def test_create_twin_stores_what_the_cli_stores(store: arraystore.Store) -> None:
    path = str(store.path)
    code, _, err = run_cli(
        [
            *("create", path, "c", "--shape", "300,2", "--dtype", "i4"),
            *("--fill", "random", "--seed", "7", "--chunks", "100,2"),
        ]
    )
    assert code == 0, err
    arr = store.create("p", shape=(300, 2), dtype="i4", fill="random", seed=7, chunks=(100, 2))
    assert_same(arr[...], store["c"][...])


def test_import_and_export_twins(store: arraystore.Store, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2.5\n3,\n5,6.25\n")
    code, _, err = run_cli(["import", str(store.path), "c", str(src)])
    assert code == 0, err
    arr = store.import_file("p", src)
    assert_same(arr[...], store["c"][...])
    assert arr.attrs == store["c"].attrs
    code, _, err = run_cli(["export", str(store.path), "c", str(tmp_path / "cli.csv")])
    assert code == 0, err
    assert arr.export(tmp_path / "py.csv") == tmp_path / "py.csv"
    assert (tmp_path / "py.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()


def test_rename_is_mv(store: arraystore.Store) -> None:
    _same_store(store, ("x", "y"))
    before = store["x"][...]
    code, out, _ = run_cli(["mv", str(store.path), "x", "x2"])
    assert (code, out) == (0, "renamed x -> x2\n")
    store.rename("y", "y2")
    assert store.names() == ["t", "x2", "y2"]
    assert_same(store["y2"][...], before)


def test_remove_is_rm(store: arraystore.Store) -> None:
    _same_store(store, ("a", "b", "c", "d"))
    gone: list[str] = []
    assert store.remove(["a", "b", "a"], removed=gone.append) == ["a", "b"]
    assert gone == ["a", "b"] and store.names() == ["c", "d", "t"]
    assert store.remove("c") == ["c"]
    # missing names: the others still go, then one error naming the missing ones
    with pytest.raises(arraystore.ArrayNotFound) as exc:
        store.remove(["nope", "d", "zz"])
    assert _one_line_error(exc) == f"no arrays 'nope', 'zz' in {store.path}"
    assert store.names() == ["t"]
    code, out, err = run_cli(["rm", str(store.path), "nope", "t", "zz"])
    assert (code, out) == (1, "removed t\n")
    assert err == f"error: no arrays 'nope', 'zz' in {store.path}\n"
    assert store.remove(["nope"], missing_ok=True) == []
    with pytest.raises(arraystore.InvalidName):  # refused before anything goes
        store.remove(["t", "../x"])


def test_verify_is_verify_json(store: arraystore.Store) -> None:
    _same_store(store, ("x", "y"))
    doc = store.verify().to_dict()
    assert doc == _cli_json(["verify", str(store.path)])
    assert doc["checked"] == ["t", "x", "y"] and not doc["corrupt"]
    assert store.verify("x").to_dict() == _cli_json(["verify", str(store.path), "x"])
    report = store.verify(["y", "x", "y"])
    assert report.checked == ["y", "x"] and not report.corrupt
    assert store.verify(["x"], repair=True).checked == ["x"]


def test_verify_reports_corruption_as_the_cli(store: arraystore.Store) -> None:
    arr = store.create(
        "z", shape=(10_000,), dtype="f8", fill="random", backend="zarr", codec="zstd:1"
    )
    # the largest file of the array holds data (whatever the layout): garble it
    data = max((p for p in store.path.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data.write_bytes(b"garbage")
    assert arr.shape == (10_000,)
    report = store.verify()
    assert report.corrupt and [f.name for f in report.findings if f.kind == "corrupt"] == ["z"]
    code, out, _ = run_cli(["verify", str(store.path), "--json"])
    assert code == 1 and json.loads(out) == report.to_dict()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (["t"], {"name": "t"}),
        (
            ["t", "--field", "qty", "--quantiles", "0.5,0.9", "--hist", "4"],
            {"name": "t", "fields": ["qty"], "quantiles": [0.5, 0.9], "bins": 4},
        ),
        (
            ["x", "--axis", "0", "--keep-nan", "--ddof", "1"],
            {"name": "x", "axis": 0, "skipna": False, "ddof": 1},
        ),
        (["t", "--expr", "price * qty"], {"name": "t", "expr": "price * qty"}),
        (["--expr", "x + 1", "--axis", "1"], {"expr": "x + 1", "axis": 1}),
    ],
    ids=["plain", "quantiles-hist", "axis", "expr", "expr-arrays"],
)
def test_stats_is_stats_json(store: arraystore.Store, args: list[str], kwargs: Any) -> None:
    _same_store(store)
    doc = store.stats(**kwargs)
    assert _report(_py_json(doc)) == _report(_cli_json(["stats", str(store.path), *args]))
    assert doc["fields"]


def test_stats_matches_numpy(store: arraystore.Store) -> None:
    _same_store(store)
    qty = store["t"]["qty"][...]
    doc = store.stats("t", fields=["qty"], quantiles=[0.5])["fields"]["qty"]
    assert doc["sum"] == qty.sum() and doc["max"] == qty.max()
    assert doc["quantiles"]["0.5"] == np.quantile(qty, 0.5)
    x = store["x"][...]
    std = store.stats("x", axis=0, ddof=1)["fields"]["x"]["std"]
    np.testing.assert_allclose(std, np.std(x, axis=0, ddof=1), rtol=1e-12)
    doc = store.stats(expr="x * 2", axis=1)["fields"]["x * 2"]
    np.testing.assert_allclose(doc["sum"], (x * 2).sum(axis=1), rtol=1e-12)
    hist = store.stats("x", bins=4)["fields"]["x"]["histogram"]
    assert hist["counts"] == np.histogram(x, 4)[0].tolist()


def _report(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in _RUN_KEYS}


@pytest.mark.parametrize(
    ("to", "cli"),
    [
        ("f4", ["--to", "f4"]),
        ("price:f4,qty:auto", ["--to", "price:f4,qty:auto"]),
        ("auto", ["--auto"]),
    ],
)
def test_cast_is_cast_json(store: arraystore.Store, to: str, cli: list[str]) -> None:
    _same_store(store)
    name = "x" if to == "f4" else "t"
    res = store.cast(name, to, out="py")
    doc = _cli_json(["cast", str(store.path), name, *cli, "--out", "cli"])
    assert (res.out, doc["out"]) == ("py", "cli")
    assert _py_json(_report(res.to_dict())) == _report(doc)
    assert_same(store["py"][...], store["cli"][...])
    assert store["py"].dtype != store[name].dtype


def test_cast_dry_run_and_in_place(store: arraystore.Store) -> None:
    _same_store(store, ("x", "y"))
    dry = store.cast("x", "i2", dry_run=True)
    assert dry.dry_run and store["x"].dtype == np.float64
    assert _py_json(_report(dry.to_dict())) == _report(
        _cli_json(["cast", str(store.path), "x", "--to", "i2", "--dry-run"])
    )
    expected = store["x"][...].astype("i2")
    store.cast("x", "i2")
    code, _, err = run_cli(["cast", str(store.path), "y", "--to", "i2"])
    assert code == 0, err
    assert_same(store["x"][...], expected)
    assert_same(store["y"][...], expected)


def test_cast_refusal_writes_nothing(store: arraystore.Store) -> None:
    store.create("x", data=np.array([0.5, 1.0, 300.0]))
    with pytest.raises(arraystore.CastError) as exc:
        store.cast("x", "u1", out="y")
    _one_line_error(exc)
    assert store.names() == ["x"]
    assert store.cast("x", "u1", out="y", casting="clip").reports
    assert_same(store["y"][...], np.array([0, 1, 255], dtype="u1"))


def test_astype_writes_a_new_stored_array(store: arraystore.Store) -> None:
    _same_store(store)
    x = store["x"]
    y = x.astype("f4", out="y")
    assert isinstance(y, arraystore.Array) and y.name == "y" and "y" in store
    assert_same(y[...], x[...].astype("f4"))
    assert x.dtype == np.float64  # the source is untouched
    code, _, err = run_cli(["cast", str(store.path), "x", "--to", "f4", "--out", "cli"])
    assert code == 0, err
    assert_same(y[...], store["cli"][...])
    t = store["t"].astype("price:f4,qty:i2", out="t2")
    assert t.dtype == np.dtype([("price", "<f4"), ("qty", "<i2")])
    assert_same(t["qty"][...], store["t"]["qty"][...].astype("i2"))
    assert store["x"].astype(np.int16, out="x16", casting="unsafe").dtype == np.int16


@pytest.mark.parametrize(
    ("kwargs", "cli"),
    [
        ({"expr": "sqrt(price) * qty", "name": "t"}, ["t", "--expr", "sqrt(price) * qty"]),
        ({"expr": "x * 2 + 1", "dtype": "f4"}, ["--expr", "x * 2 + 1", "--dtype", "f4"]),
        ({"name": "t", "where": "qty > 100"}, ["t", "--where", "qty > 100"]),
        (
            {"expr": "price", "name": "t", "where": "qty < 50"},
            ["t", "--expr", "price", "--where", "qty < 50"],
        ),
    ],
    ids=["expr-fields", "expr-arrays", "where", "where-expr"],
)
def test_map_is_map(store: arraystore.Store, kwargs: Any, cli: list[str]) -> None:
    _same_store(store)
    arr = store.map(out="py", **kwargs)
    assert isinstance(arr, arraystore.Array) and arr.name == "py"
    code, out, err = run_cli(["map", str(store.path), *cli, "--out", "cli"])
    assert code == 0, err
    assert out.startswith("wrote cli: ")
    assert_same(arr[...], store["cli"][...])


def test_map_matches_numpy(store: arraystore.Store) -> None:
    _same_store(store)
    t = store["t"][...]
    assert_same(store.map("sqrt(price) * qty", "t", out="a")[...], np.sqrt(t["price"]) * t["qty"])
    assert_same(store.map(name="t", where="qty > 100", out="b")[...], t[t["qty"] > 100])
    arr = store.map("x + 1", out="c", chunks=(50, 3), attrs={"k": 1})
    assert arr.chunks == (50, 3) and arr.attrs == {"k": 1}
    assert_same(arr[...], store["x"][...] + 1)
    store.map("x - 1", out="c", overwrite=True)
    assert_same(store["c"][...], store["x"][...] - 1)


# ------------------------------------------------------------------ bad input
def _refused(store: arraystore.Store, call: Any, error: type[Exception], match: str) -> None:
    before = store.names()
    with pytest.raises(error, match=match) as exc:
        call()
    _one_line_error(exc)
    assert store.names() == before


def test_unknown_arrays_are_one_line_errors(store: arraystore.Store) -> None:
    _same_store(store)
    nf = arraystore.ArrayNotFound
    _refused(store, lambda: store.cast("nope", "f4", out="y"), nf, "'nope'")
    _refused(store, lambda: store.map("a + 1", "nope", out="y"), nf, "'nope'")
    _refused(store, lambda: store.map("nope + 1", out="y"), Exception, "'nope'")
    _refused(store, lambda: store.map(name="nope", where="a > 1", out="y"), nf, "'nope'")
    _refused(store, lambda: store.stats("nope"), nf, "'nope'")
    _refused(store, lambda: store.stats(expr="nope * 2"), Exception, "'nope'")
    _refused(store, lambda: store.verify("nope"), nf, "'nope'")
    _refused(store, lambda: store.verify(["x", "nope"]), nf, "'nope'")


def test_bad_dtypes_and_options_are_one_line_errors(store: arraystore.Store) -> None:
    _same_store(store)
    x = store["x"]
    bad = arraystore.ArrayStoreError
    _refused(store, lambda: x.astype("f9", out="y"), bad, "f9")
    _refused(store, lambda: store.cast("x", "nonsense", out="y"), bad, "nonsense")
    _refused(store, lambda: store.cast("x", "f4", out="y", casting="sloppy"), bad, "sloppy")
    _refused(store, lambda: store.map("x + 1", out="y", dtype="f9"), bad, "f9")
    _refused(store, lambda: store.stats("t", bins=0), bad, "bins")
    _refused(store, lambda: store.stats("t", axis=5), bad, "axis")
    inv = arraystore.InvalidArgument
    _refused(store, lambda: store.map(out="y"), inv, "expr and/or where")
    _refused(
        store,
        lambda: store.map("x", name="x", where="x > 1", out="y", chunks=5),
        inv,
        "chunks or attrs",
    )
    _refused(store, lambda: store.stats(), inv, "array name")
    _refused(store, lambda: store.stats("t", expr="price", quantiles=[0.5]), inv, "quantiles")


def test_existing_outputs_are_refused(store: arraystore.Store) -> None:
    _same_store(store, ("x", "y"))
    exists = arraystore.ArrayExists
    _refused(store, lambda: store.cast("x", "f4", out="y"), exists, "'y' already exists")
    _refused(store, lambda: store["x"].astype("f4", out="y"), exists, "'y' already exists")
    _refused(store, lambda: store.map("x + 1", out="y"), exists, "'y'")
    _refused(store, lambda: store.map(name="t", where="qty > 1", out="y"), exists, "'y'")
    assert_same(store["y"][...], store["x"][...])  # untouched


def test_astype_needs_a_new_out(store: arraystore.Store) -> None:
    _same_store(store)
    inv = arraystore.InvalidArgument
    _refused(store, lambda: store["x"].astype("f4"), inv, "give out=NAME")
    _refused(store, lambda: store["x"].astype("f4", out="x"), inv, "must differ from 'x'")
    _refused(store, lambda: store["t"]["qty"].astype("i2", out="q"), inv, "field view 'qty'")
    assert store["x"].dtype == np.float64


def test_read_only_store_refuses_writing_verbs(store: arraystore.Store) -> None:
    _same_store(store)
    ro = arraystore.open(store.path, mode="r")
    assert ro.ls() == store.ls() and not ro.verify().corrupt
    assert ro.cast("x", "f4", dry_run=True).dry_run
    assert ro.stats("x")["fields"]
    err = arraystore.ReadOnlyError
    _refused(ro, lambda: ro.cast("x", "f4", out="y"), err, "read-only")
    _refused(ro, lambda: ro["x"].astype("f4", out="y"), err, "read-only")
    _refused(ro, lambda: ro.map("x + 1", out="y"), err, "read-only")
    _refused(ro, lambda: ro.remove("x"), err, "read-only")
    _refused(ro, lambda: ro.verify(repair=True), err, "read-only")


@pytest.mark.parametrize(
    ("cli", "call"),
    [
        (["cast", "nope", "--to", "f4"], lambda s: s.cast("nope", "f4")),
        (["cast", "x", "--to", "f9"], lambda s: s.cast("x", "f9")),
        (["cast", "x", "--to", "f4", "--out", "y"], lambda s: s.cast("x", "f4", out="y")),
        (["cast", "x", "--to", "i1"], lambda s: s.cast("x", "i1")),
        (["map", "--expr", "x + 1", "--out", "y"], lambda s: s.map("x + 1", out="y")),
        (["map", "--expr", "nope + 1", "--out", "z"], lambda s: s.map("nope + 1", out="z")),
        (
            ["map", "t", "--where", "qty", "--out", "z"],
            lambda s: s.map(name="t", where="qty", out="z"),
        ),
        (["stats", "nope"], lambda s: s.stats("nope")),
        (["stats", "x", "--axis", "7"], lambda s: s.stats("x", axis=7)),
        (["verify", "nope"], lambda s: s.verify("nope")),
        (["rm", "nope"], lambda s: s.remove("nope")),
        (["mv", "nope", "z"], lambda s: s.rename("nope", "z")),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_cli_and_python_give_the_same_error(
    store: arraystore.Store, cli: list[str], call: Any
) -> None:
    _same_store(store, ("x", "y"))
    with pytest.raises(arraystore.ArrayStoreError) as exc:
        call(store)
    code, _, err = run_cli([cli[0], str(store.path), *cli[1:]])
    assert code == 1 and err == f"error: {_one_line_error(exc)}\n"
    assert store.names() == ["t", "x", "y"]
