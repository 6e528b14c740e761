"""Dtype specs (arraystore.core.dtypes): parse, normalise, describe, round trip."""

from __future__ import annotations

import json
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arraystore.core.dtypes import (
    Field,
    check_name,
    dtype_from_json,
    dtype_to_json,
    dtype_to_spec,
    field_dtype,
    fields_of,
    is_numeric,
    kind_name,
    parse_dtype,
)
from arraystore.errors import DTypeError, FieldNotFound, InvalidName

FAST = settings(max_examples=100, deadline=None)

PLAIN = ["b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
STRINGS = ["S1", "S10", "U1", "U7"]
RESERVED = {"zarr.json", "arraystore.json"}

_FIRST = "abcxyzABCXYZ_"
field_names = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_FIRST),
    st.text(alphabet=_FIRST + "0123456789.-", max_size=8).filter(lambda t: ".." not in t),
).filter(lambda n: n not in RESERVED)
subshapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
byteorders = st.sampled_from(["<", ">", "="])


@st.composite
def plain_dtypes(draw: Any, strings: bool = True) -> np.dtype:
    code = draw(st.sampled_from(PLAIN + (STRINGS if strings else [])))
    dt = np.dtype(code)
    return dt.newbyteorder(draw(byteorders)) if dt.itemsize > 1 and dt.kind != "S" else dt


@st.composite
def struct_dtypes(draw: Any) -> np.dtype:
    names = draw(st.lists(field_names, min_size=1, max_size=5, unique=True))
    fields = []
    for name in names:
        base, sub = draw(plain_dtypes()), draw(subshapes)
        fields.append((name, base, sub) if sub else (name, base))
    return np.dtype(fields)


any_dtypes = st.one_of(plain_dtypes(), struct_dtypes())


def is_native_le(dt: np.dtype) -> bool:
    if dt.names is None:
        return dt.byteorder in ("<", "|") or dt.itemsize == 1
    return all(is_native_le(f.dtype) for f in fields_of(dt))


# ------------------------------------------------------------ round trips


@FAST
@given(any_dtypes)
def test_parse_normalises_to_packed_little_endian(dt):
    got = parse_dtype(dt)
    assert is_native_le(got)
    assert got.names == dt.names
    assert got.itemsize == dt.itemsize  # packed, same fields
    assert not got.isalignedstruct
    if dt.names is None:
        assert got == dt.newbyteorder("<") or got == dt
    else:
        for a, b in zip(fields_of(got), fields_of(dt), strict=True):
            assert (a.name, a.subshape, a.dtype.kind, a.dtype.itemsize) == (
                b.name,
                b.subshape,
                b.dtype.kind,
                b.dtype.itemsize,
            )
    assert parse_dtype(got) == got  # idempotent
    # values survive the byte-order change
    values = np.zeros(3, dt)
    assert values.astype(got).tobytes() == np.zeros(3, got).tobytes()


@FAST
@given(any_dtypes)
def test_spec_roundtrip(dt):
    norm = parse_dtype(dt)
    spec = dtype_to_spec(norm)
    assert isinstance(spec, str)
    assert parse_dtype(spec) == norm
    assert dtype_to_spec(parse_dtype(spec)) == spec


@FAST
@given(any_dtypes)
def test_json_roundtrip(dt):
    norm = parse_dtype(dt)
    doc = dtype_to_json(norm)
    text = json.dumps(doc)
    assert dtype_from_json(json.loads(text)) == norm
    if norm.names is not None:
        assert parse_dtype(text) == norm  # a JSON list in a string is a spec too
    assert dtype_to_json(dtype_from_json(doc)) == doc


@FAST
@given(struct_dtypes())
def test_fields_of(dt):
    norm = parse_dtype(dt)
    fields = fields_of(norm)
    assert [f.name for f in fields] == list(dt.names)
    for f in fields:
        assert isinstance(f, Field)
        assert f.dtype.subdtype is None
        assert field_dtype(norm, f.name) == f
        assert f.itemsize == norm.fields[f.name][0].itemsize
    assert sum(f.itemsize for f in fields) == norm.itemsize


# ------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("f8", np.dtype("<f8")),
        ("float32", np.dtype("<f4")),
        (" i8 ", np.dtype("<i8")),
        (">i4", np.dtype("<i4")),
        ("bool", np.dtype("?")),
        ("c16", np.dtype("<c16")),
        ("S10", np.dtype("S10")),
        ("U5", np.dtype("<U5")),
        (np.float64, np.dtype("<f8")),
        (float, np.dtype("<f8")),
        (np.dtype(">u2"), np.dtype("<u2")),
        ("id:i8,price:f8,vec:3f4", np.dtype([("id", "<i8"), ("price", "<f8"), ("vec", "<f4", 3)])),
        ("m:(2,3)f4", np.dtype([("m", "<f4", (2, 3))])),
        ("a:(3,)f4, b: >f8", np.dtype([("a", "<f4", (3,)), ("b", "<f8")])),
        ("x:()u1", np.dtype([("x", "u1")])),
        ('[["id", "<i8"], ["vec", "<f4", [3]]]', np.dtype([("id", "<i8"), ("vec", "<f4", 3)])),
        ([["id", "i8"], ["m", ">f4", [2, 2]]], np.dtype([("id", "<i8"), ("m", "<f4", (2, 2))])),
        (np.dtype({"names": ["a", "b"], "formats": ["u1", "f8"]}, align=True), "a:u1,b:f8"),
    ],
)
def test_parse_examples(spec, expected):
    expected = parse_dtype(expected) if isinstance(expected, str) else expected
    got = parse_dtype(spec)
    assert got == expected
    assert got.itemsize == expected.itemsize


@pytest.mark.parametrize(
    ("dt", "spec", "doc"),
    [
        ("f8", "f8", "<f8"),
        ("bool", "bool", "|b1"),
        ("u1", "u1", "|u1"),
        ("S4", "S4", "|S4"),
        ("U3", "U3", "<U3"),
        ("id:i8,vec:3f4", "id:i8,vec:3f4", [["id", "<i8"], ["vec", "<f4", [3]]]),
        ("m:(2,3)f2", "m:(2,3)f2", [["m", "<f2", [2, 3]]]),
        ("flag:(2,)bool", "flag:2bool", [["flag", "|b1", [2]]]),
    ],
)
def test_describe_examples(dt, spec, doc):
    parsed = parse_dtype(dt)
    assert dtype_to_spec(parsed) == spec
    assert dtype_to_json(parsed) == doc


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("f9", "unknown dtype"),
        ("float128x", "unknown dtype"),
        ("", "empty"),
        ("O", "object"),
        (object, "object"),
        ("x:O", "object"),
        ([["a", "O"]], "object"),
        ("S", "unsized"),
        ("U", "unsized"),
        ("M8[s]", "datetime"),
        ("m8", "datetime"),
        ("V8", "void"),
        ("3f4", "subarray"),
        ("(2,2)i4", "subarray"),
        ("a:", "NAME:DTYPE"),
        ("a:i8,a:f8", "more than once"),
        ("a:f9", "unknown dtype"),
        ([("a", [("b", "f8")])], "nested"),
        ([], "no fields"),
        ("[1, 2]", "must be"),
        ('["x"', "not valid JSON"),
        ([["a"]], "must be"),
    ],
)
def test_refused(spec, message):
    with pytest.raises(DTypeError, match=message):
        parse_dtype(spec)


@pytest.mark.parametrize(
    "spec",
    [":f8", ".a:f8", "a b:f8", "a/b:f8", "..:f8", "zarr.json:f8", "arraystore.json:f8", "-a:i4"],
)
def test_bad_field_names(spec):
    with pytest.raises(InvalidName, match="field name"):
        parse_dtype(spec)


def test_field_named_c_is_fine():
    """zarr's chunk-key prefix ``c`` clashes only inside an array's folder (issue 19)."""
    assert parse_dtype("a:i4,c:f8").names == ("a", "c")
    assert check_name("c") == "c"


def test_error_classes_refine_builtins():
    with pytest.raises(TypeError):
        parse_dtype("O")
    with pytest.raises(ValueError):
        parse_dtype("a/b:f8")


def test_bfloat16():
    pytest.importorskip("ml_dtypes")
    dt = parse_dtype("bf16")
    assert dt.name == "bfloat16" and dt.itemsize == 2
    assert dtype_to_spec(dt) == "bfloat16"
    assert parse_dtype(dtype_to_json(dt)) == dt
    assert kind_name(dt) == "float" and is_numeric(dt)
    rec = parse_dtype("w:3bfloat16,b:i1")
    assert parse_dtype(dtype_to_spec(rec)) == rec


def test_bfloat16_without_ml_dtypes():
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        with pytest.raises(DTypeError, match="ml_dtypes"):
            parse_dtype("bfloat16")
    else:
        pytest.skip("ml_dtypes is installed")


def test_field_lookup():
    dt = parse_dtype("id:i8,vec:3f4")
    assert field_dtype(dt, "vec") == Field("vec", np.dtype("<f4"), (3,))
    assert Field("vec", np.dtype("<f4"), (3,)).itemsize == 12
    with pytest.raises(FieldNotFound, match="fields: id, vec"):
        field_dtype(dt, "price")
    with pytest.raises(FieldNotFound, match="plain dtype"):
        field_dtype(parse_dtype("f8"), "price")
    assert fields_of(parse_dtype("f8")) == []


@pytest.mark.parametrize(
    ("dt", "kind", "numeric"),
    [
        ("bool", "bool", True),
        ("i2", "int", True),
        ("u8", "uint", True),
        ("f2", "float", True),
        ("c8", "complex", True),
        ("S3", "bytes", False),
        ("U3", "str", False),
    ],
)
def test_kind_name(dt, kind, numeric):
    assert kind_name(parse_dtype(dt)) == kind
    assert is_numeric(parse_dtype(dt)) is numeric


# ---------------------------------------------------------------- names


@FAST
@given(st.text(min_size=0, max_size=20))
def test_check_name_never_escapes(name):
    """Whatever text comes in, an accepted name is one plain, visible path component."""
    try:
        assert check_name(name) == name
    except InvalidName:
        return
    assert name and name not in (".", "..") and ".." not in name
    assert not name.startswith((".", "-"))
    assert PurePosixPath(name).name == name and PureWindowsPath(name).name == name
    assert name not in RESERVED


@FAST
@given(st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_\-]{0,30}(\.[A-Za-z0-9_\-]{1,5})?\Z"))
def test_check_name_accepts_ordinary_names(name):
    if name not in RESERVED:
        assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "..", "a..b", ".x", "-x", "a\\b", "a b", "é", "x" * 256, "zarr.json", 3, None],
)
def test_check_name_refuses(name):
    with pytest.raises(InvalidName):
        check_name(name)
