"""Issue 4: bad input to cast (API and CLI: one-line errors, the store unchanged) and the
``arraystore cast`` command line (JSON output, dry run, resume). Split from
``test_cast_ops.py``; its helpers are imported from there."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.errors import (
    ArrayExists,
    ArrayNotFound,
    ArrayStoreError,
    CastError,
    DTypeError,
    FieldNotFound,
    InvalidArgument,
    InvalidName,
    MemoryBudgetError,
)
from arraystore.ops.cast import cast
from arraystore.testing import BackendCase, assert_same, run_cli, tree_hash
from tests.ops.cast.test_cast_ops import (
    _interrupt_after,
    auto_data,
    hidden,
    plain_data,
    rec_data,
    zarr_chunks,
)

# ------------------------------------------------------------------ 6. bad input (API)
BAD_INPUT = [
    pytest.param("r", "price:", {}, InvalidArgument, "must look like FIELD:DTYPE", id="spec-colon"),
    pytest.param("r", "price f4", {}, DTypeError, "unknown dtype 'price f4'", id="spec-space"),
    pytest.param("r", ":f4", {}, InvalidArgument, "FIELD:DTYPE", id="spec-no-field"),
    pytest.param("r", "nope:f4", {}, FieldNotFound, "no field 'nope'", id="unknown-field"),
    pytest.param("r", "price:O", {}, DTypeError, "object", id="field-object"),
    pytest.param("p", "O", {}, DTypeError, "object", id="object"),
    pytest.param("p", "S8", {}, CastError, "strings", id="to-bytes"),
    pytest.param("r", "price:S8", {}, CastError, "strings", id="field-to-bytes"),
    pytest.param("p", "U4", {}, CastError, "strings", id="to-unicode"),
    pytest.param("p", "f4", {"resume": True}, InvalidArgument, "nothing to resume", id="resume"),
    pytest.param("p", "f4", {"out": "r"}, ArrayExists, "already exists", id="out-exists"),
    pytest.param("p", "f4", {"out": "../x"}, InvalidName, "must not contain", id="out-bad-name"),
    pytest.param("p", "f4", {"casting": "nope"}, InvalidArgument, "unknown casting", id="casting"),
    pytest.param("p", "f4", {"rtol": -1e-3}, InvalidArgument, "rtol", id="rtol-negative"),
    pytest.param("p", "f4", {"rtol": float("nan")}, InvalidArgument, "rtol", id="rtol-nan"),
    pytest.param("p", "f4", {"errors": "ignore"}, InvalidArgument, "errors", id="errors"),
    pytest.param("p", "price:f4", {}, InvalidArgument, "structured", id="fields-on-plain"),
    pytest.param("nope", "f4", {}, ArrayNotFound, "no array 'nope'", id="no-array"),
    pytest.param("p", "i4", {"casting": "safe"}, CastError, "casting='safe'", id="safe-rule"),
    pytest.param("p", "f4", {"memory": 0}, InvalidArgument, "memory", id="memory-zero"),
    # errors found while the cast runs must not leave its work folder behind either
    pytest.param(
        "p",
        "f4",
        {"memory": "1KiB"},
        MemoryBudgetError,
        "--memory",
        id="memory-too-small",
    ),
    pytest.param(
        "p",
        "i4",
        {"nan_to": 0},
        InvalidArgument,
        "nan_to applies to the clip policy only",
        id="nan_to-without-clip",
    ),
    pytest.param(
        "p",
        "i1",
        {"nan_to": 1000, "casting": "clip"},
        InvalidArgument,
        "nan_to=1000 does not fit",
        id="nan_to-out-of-range",
    ),
    pytest.param(
        "t",
        "txt:i4",
        {"errors": "coerce"},
        CastError,
        "needs a fill value",
        id="coerce-int-without-fill",
    ),
    pytest.param(
        "t",
        "txt:f8",
        {"errors": "coerce", "fill": "abc"},
        InvalidArgument,
        "fill='abc' must be a number",
        id="fill-not-a-number",
    ),
]


def _bad_input_store(store: arraystore.Store) -> None:
    store.create("r", data=rec_data(1_000))
    store.create("p", data=np.array([1.0, np.nan, 2.5]))
    store.create("t", data=np.array([(b"1",), (b"x",)], dtype=[("txt", "S4")]))


@pytest.mark.parametrize(("name", "to", "kwargs", "exc", "match"), BAD_INPUT)
def test_bad_input_api(
    store: arraystore.Store,
    name: str,
    to: str,
    kwargs: dict[str, Any],
    exc: type[Exception],
    match: str,
) -> None:
    _bad_input_store(store)
    before = tree_hash(store.path)
    with pytest.raises(exc) as ei:
        cast(store, name, to, **kwargs)
    assert type(ei.value) is exc  # the exact class, not a parent
    assert match in str(ei.value) and "\n" not in str(ei.value)
    assert tree_hash(store.path) == before
    assert hidden(store) == []


@pytest.mark.parametrize("to", [np.dtype("f4"), np.float32])
def test_numpy_dtype_target(store: arraystore.Store, to: Any) -> None:
    data = np.arange(10.0)
    store.create("p", data=data)
    try:
        cast(store, "p", to, out="q")
    finally:
        leftover = hidden(store)
    assert leftover == []
    assert_same(store["q"][...], data.astype("f4"))


def test_next_cast_works_after_a_task_error(store: arraystore.Store) -> None:
    _bad_input_store(store)
    with pytest.raises(InvalidArgument, match="clip policy only"):
        cast(store, "p", "i4", nan_to=0)
    cast(store, "p", "f4")
    assert store["p"].dtype == np.dtype("f4")


# ------------------------------------------------------------------ 6. bad input (CLI)
BAD_CLI = [
    pytest.param(["r", "--to", "price:"], "must look like FIELD:DTYPE", id="spec-colon"),
    pytest.param(["r", "--to", "price f4"], "unknown dtype", id="spec-space"),
    pytest.param(["r", "--to", "nope:f4"], "no field 'nope'", id="unknown-field"),
    pytest.param(["p", "--to", "O"], "object", id="object"),
    pytest.param(["p", "--to", "S8"], "strings", id="to-bytes"),
    pytest.param(["r", "--to", "price:S8"], "strings", id="field-to-bytes"),
    pytest.param(["p", "--resume"], "nothing to resume", id="resume"),
    pytest.param(["p", "--to", "f4", "--resume"], "nothing to resume", id="resume-with-to"),
    pytest.param(["p", "--to", "f4", "--out", "r"], "already exists", id="out-exists"),
    pytest.param(["p", "--to", "f4", "--casting", "nope"], "unknown casting", id="casting"),
    pytest.param(["p", "--to", "f4", "--rtol", "-1"], "rtol", id="rtol-negative"),
    pytest.param(["p", "--to", "f4", "--rtol", "abc"], "rtol", id="rtol-not-a-number"),
    pytest.param(["p", "--to", "f4", "--errors", "x"], "errors", id="errors"),
    pytest.param(["p", "--to", "i4"], "refused: 1 NaN/inf", id="refused-nan"),
    pytest.param(["p"], "needs --to", id="no-target"),
    pytest.param(["p", "--to", "f4", "--auto"], "either --to or --auto", id="to-and-auto"),
    pytest.param(["p", "--to", "f4", "--workers", "0"], "--workers", id="workers"),
    pytest.param(["nope", "--to", "f4"], "no array 'nope'", id="no-array"),
    pytest.param(["p", "--to", "f4", "--bogus"], "No such option", id="unknown-option"),
]


@pytest.mark.parametrize(("args", "match"), BAD_CLI)
def test_bad_input_cli(
    store: arraystore.Store,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    match: str,
) -> None:
    _bad_input_store(store)
    before = tree_hash(store.path)
    code, out, err = run_cli(["cast", str(store.path), *args], capsys)
    assert code == 1, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and match in lines[0], err
    assert "Traceback" not in err
    assert tree_hash(store.path) == before
    assert hidden(store) == []


def test_cli_cast_out_json_and_dry_run(
    store: arraystore.Store, capsys: pytest.CaptureFixture[str], backend_case: BackendCase
) -> None:
    data = auto_data(5_000)
    store.create("a", data=data, **backend_case.kwargs, **zarr_chunks(backend_case, (1_000,)))
    before = tree_hash(store.path)
    code, out, err = run_cli(
        ["cast", str(store.path), "a", "--auto", "--allow-float-to-int", "--dry-run", "--json"],
        capsys,
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["dry_run"] is True and doc["fields"]["small"]["to"] == "u1"
    assert doc["ratio"] == pytest.approx(doc["bytes_before"] / doc["bytes_after"])
    assert tree_hash(store.path) == before
    code, out, err = run_cli(["cast", str(store.path), "a", "--auto", "--dry-run"], capsys)
    assert code == 0, err
    assert "plan (dry run)" in out and "smaller" in out
    assert tree_hash(store.path) == before
    code, out, err = run_cli(
        ["cast", str(store.path), "a", "--to", "small:u1,f32:f4", "--out", "b", "--json"], capsys
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["out"] == "b" and doc["fields"]["f32"]["ok"] is True
    got = store["b"][...]
    assert_same(got["small"], data["small"].astype("u1"))
    assert_same(got["f32"], data["f32"].astype("f4"))
    assert_same(store["a"][...], data)
    # in place, then `info` shows the history
    code, out, err = run_cli(["cast", str(store.path), "a", "--to", "mid:i2", "-q"], capsys)
    assert code == 0, err
    assert "cast: a" in out
    code, out, err = run_cli(["info", str(store.path), "a", "--json"], capsys)
    hist = json.loads(out)["history"]
    assert hist[-1]["op"] == "cast" and "mid:i2" in hist[-1]["to"]


def test_cli_resume(
    store: arraystore.Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = np.tile(plain_data(50_000), (16, 1))  # 19 MB: several work units
    store.create("x", data=data)
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        code, out, err = run_cli(
            [
                "cast",
                str(store.path),
                "x",
                "--to",
                "f4",
                "--memory",
                "32MiB",
                "--executor",
                "serial",
            ],
            capsys,
        )
    assert code == 130 and ("aborted" in err or "interrupted" in err)
    assert hidden(store) == [".x.cast"]
    code, out, err = run_cli(["cast", str(store.path), "x", "--to", "f4"], capsys)
    assert code == 1 and err.startswith("error: an interrupted cast") and err.count("\n") == 1
    code, out, err = run_cli(["cast", str(store.path), "x", "--resume", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["resumed_chunks"] == 1
    assert_same(store["x"][...], data.astype("f4"))
    assert hidden(store) == []


def test_small_budget_with_one_worker(store: arraystore.Store) -> None:
    data = plain_data(400_000)  # 9.6 MB
    store.create("x", data=data)
    cast(store, "x", "f4", memory="24MiB", executor="serial")
    assert_same(store["x"][...], data.astype("f4"))


def test_errors_are_arraystore_errors() -> None:
    for exc in (CastError, InvalidArgument, DTypeError, FieldNotFound, ArrayExists):
        assert issubclass(exc, ArrayStoreError)
