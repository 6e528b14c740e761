"""Fuzzers (issue 8, acceptance 2): hostile input raises ``ArrayStoreError`` subclasses only.

* metadata: random JSON documents, mutations of a valid document (written as
  ``attributes["arraystore"]`` of an array's ``zarr.json``) and byte-level corruptions of
  every ``zarr.json`` -> opening / describing / reading the array raises only ``ArrayStoreError``;
* dtype specs: random text, mutations of valid specs and random JSON objects ->
  ``parse_dtype`` returns a dtype (which round-trips through its spec and JSON forms) or
  raises ``ArrayStoreError``;
* CLI: argument lists from a vocabulary of commands, options and values plus random
  text -> exit status 0 or 1 (the CLI maps usage errors to 1), never a traceback, and a
  failure prints one ``error: ...`` line.

Each fuzzer runs ``max_examples=200`` by default (about 20 s in all, no deadline). For a
longer run::

    ARRAYSTORE_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/fuzz/test_fuzz.py
    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/fuzz/test_fuzz.py   # 10000 each

(add ``--hypothesis-seed=N`` to vary the search, ``--hypothesis-show-statistics`` to see
what was tried). A failure is shrunk and printed by hypothesis; the ``.hypothesis``
database replays it first on the next run.

Known bugs: a few exceptions are open library bugs, each reproduced by an
``xfail(strict=True)`` test below or in ``test_corpus.py`` (reason ``BUG file:line
...``). The fuzzers skip examples that hit exactly those signatures (:data:`KNOWN_BUGS`)
so that they keep looking for new ones; when a bug is fixed its xfail test XPASSes (and
fails): remove it and its ``BUGS`` entry.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import shutil
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import arraystore
from arraystore import ArrayStoreError
from arraystore.cli import main
from arraystore.core.dtypes import dtype_to_json, dtype_to_spec, parse_dtype
from arraystore.testing import meta_file, read_meta, write_meta

# ------------------------------------------------------------------ settings


def _examples() -> int:
    if os.environ.get("ARRAYSTORE_FUZZ_EXAMPLES"):
        return max(1, int(os.environ["ARRAYSTORE_FUZZ_EXAMPLES"]))
    return 10_000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 200


FUZZ = settings(
    max_examples=_examples(),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)

# ------------------------------------------------------------- known bugs


@dataclass(frozen=True)
class KnownBug:
    """An exception signature: type, and the innermost arraystore frame (file, function)."""

    exc: tuple[type[BaseException], ...]
    file: str
    functions: tuple[str, ...]  # empty: any function of the file
    reason: str


BUGS: dict[str, KnownBug] = {
    "json-subarray-shape": KnownBug(
        (TypeError, ValueError),
        "arraystore/core/dtypes.py",
        ("parse_dtype", "<genexpr>"),
        "BUG arraystore/core/dtypes.py:160 a JSON dtype entry whose shape is not a list of "
        'ints (["a", "f8", 3] or ["a", "f8", ["x"]]) raises a bare TypeError/ValueError',
    ),
    "unicode-digit": KnownBug(
        (ValueError,),
        "arraystore/core/chunks.py",
        ("_as_int",),
        "BUG arraystore/core/chunks.py:30 _as_int accepts str.isdigit() text such as '²' "
        "(superscript two) and int() then raises a bare ValueError",
    ),
    "hist": KnownBug(
        (OverflowError, ValueError, IndexError),
        "arraystore/cli.py",
        ("stats",),
        "BUG arraystore/cli.py:430 stats --hist inf/nan/'' raise bare errors",
    ),
    "ddof": KnownBug(
        (OverflowError,),
        "arraystore/ops/reduce/kernels/__init__.py",
        (),
        "BUG arraystore/cli.py:440 stats --ddof beyond int64 raises OverflowError",
    ),
    "from-dir": KnownBug(
        (OSError,),
        "arraystore/backends/memmap/npy.py",
        ("read_header",),
        "BUG arraystore/backends/memmap.py:63 --from a directory raises IsADirectoryError",
    ),
    "zero-size-field": KnownBug(
        (ValueError,),
        "arraystore/_native/buffers.py",
        ("buffer",),
        "BUG arraystore/core/dtypes.py:194 zero-size subarray fields ('a:(0)f4') are accepted "
        "and break stats/cast",
    ),
    "zarr-lazy-open": KnownBug(
        (Exception,),
        "arraystore/backends/zarr/__init__.py",
        ("array", "read"),
        "BUG arraystore/backends/zarr.py:158 ZarrHandle.array() opens zarr-python lazily (and "
        "only the first field's zarr.json is checked at open): its metadata errors escape "
        "(KeyError 'codecs'/'fill_value'/'data_type', KeyError 'dtype' for zarr_format 2, "
        "OverflowError for a huge fill_value, ZeroDivisionError for chunk_shape [0, 2] in a "
        "second field...)",
    ),
    "zarr-codecs": KnownBug(
        (AttributeError, TypeError),
        "arraystore/backends/zarr/codecs.py",
        ("codec_from_json",),
        "BUG arraystore/backends/zarr.py:105 codec_from_json assumes a list of objects: "
        "'codecs': \"0\" (or [1]) raises AttributeError",
    ),
    "zarr-negative-shape": KnownBug(
        (ValueError,),
        "arraystore/core/chunks.py",
        ("normalize_index",),
        "BUG arraystore/backends/zarr.py:328 a negative dimension in zarr.json 'shape' is "
        "accepted at open; reading then raises a bare ValueError",
    ),
    "root-attributes": KnownBug(
        (TypeError, AttributeError),
        "arraystore/store.py",
        ("_root_doc",),
        "BUG arraystore/store.py:81 the root zarr.json 'attributes' is assumed to be an "
        "object: 'attributes': true raises TypeError",
    ),
    "zarr-field-name": KnownBug(
        (TypeError,),
        "arraystore/backends/zarr/__init__.py",
        ("open",),
        "BUG arraystore/backends/zarr.py:313 ZarrBackend.open uses the sidecar's first field "
        "name as a path before validating it: dtype [[1]] raises TypeError (and "
        '[["../x", "f8"]] reads ../x/zarr.json outside the array)',
    ),
    "numpy-alias": KnownBug(
        (DeprecationWarning,),
        "arraystore/core/dtypes.py",
        ("_plain",),
        "BUG arraystore/core/dtypes.py:109 _plain passes specs to np.dtype() unfiltered, so "
        "NumPy-deprecated aliases ('a', 'a3') are accepted with a DeprecationWarning (an error "
        "under this suite's filterwarnings=error) and will change meaning when NumPy drops them",
    ),
    "inf-chunks": KnownBug(
        (OverflowError,),
        "arraystore/core/meta.py",
        ("from_doc", "<genexpr>"),
        "BUG arraystore/core/meta.py:119 from_doc converts chunks with int() but does not "
        "catch OverflowError: 'chunks': [Infinity] escapes as OverflowError",
    ),
    "zarr-field-shape": KnownBug(
        (ValueError,),
        "arraystore/backends/zarr/__init__.py",
        ("_fast_read",),
        "BUG arraystore/backends/zarr.py:313 ZarrBackend.open does not check the field arrays "
        "against the sidecar dtype: a sidecar subarray shape (3,) for a field stored as (2,) "
        "opens fine and reading raises numpy's broadcast ValueError",
    ),
}
KNOWN_BUGS = list(BUGS.values())


def _origin(exc: BaseException) -> tuple[str, str]:
    """(path relative to the repo, function) of the innermost arraystore frame."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/arraystore/" in f.filename]
    if not frames:
        return "", ""
    f = frames[-1]
    path = f.filename.replace(os.sep, "/")
    return path[path.rindex("arraystore/") :], f.name


def known_bug(exc: BaseException) -> KnownBug | None:
    if isinstance(exc, ArrayStoreError):
        return None
    file, function = _origin(exc)
    for bug in KNOWN_BUGS:
        if (
            isinstance(exc, bug.exc)
            and file.endswith(bug.file)
            and (not bug.functions or function in bug.functions)
        ):
            return bug
    return None


@contextlib.contextmanager
def only_arraystore_errors() -> Iterator[None]:
    """Let ArrayStoreError through silently; skip known bugs; anything else fails."""
    try:
        yield
    except ArrayStoreError:
        pass
    except Exception as exc:
        if known_bug(exc) is not None:
            assume(False)
        raise


# -------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["f8", "<f4", "i8", "bfloat16", "O", "S0", "memmap", "zarr", "", "x"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

# "interesting" replacements for each key of a sidecar
SIDECAR_VALUES: dict[str, list[Any]] = {
    "format": [0, 1, 2, 1.0, "1", True, None, -1, 2**64],
    "backend": ["memmap", "zarr", "hdf5", "", None, 1, ["memmap"], {"x": 1}],
    "dtype": [
        "f8",
        "<f4",
        ">f8",
        "i8",
        "u1",
        "bool",
        "c16",
        "S8",
        "U2",
        "bfloat16",
        "O",
        "M8[s]",
        "V8",
        "S",
        "f8,f8",
        "a:f8",
        [["id", "<i8"], ["v", "<f4", [2]]],
        [["id", "<i8"]],
        [["v", "<f4", [3]], ["id", "<i8"]],
        [["id", "<i8"], ["id", "<i8"]],
        [],
        [[]],
        [["../x", "<i8"]],
        [["a", "<f4", [0]]],
        [["a", "<f4", [-1]]],
        [["a", "<f4", 2]],
        [["a", None]],
        None,
        5,
        {"names": ["a"], "formats": ["f8"]},
        "[[",
        "x" * 300,
    ],
    "chunks": [
        [1],
        [2],
        [4],
        [0],
        [-1],
        [10**30],
        [1, 1],
        [],
        "4",
        4,
        [1.5],
        [float("nan")],
        [float("inf")],
        ["2"],
        None,
        [True],
    ],
    "attrs": [{}, [], None, {"a": [1, {"b": None}]}, "x", {"": float("nan")}],
    "history": [[], {}, None, [{"op": "cast"}], [1, "x", None], "x"],
    "checksum": [True, False, None, 0, "yes", [], {}],
}


def _base_sidecars(store: Path) -> dict[str, dict[str, Any]]:
    return {n: read_meta(store, n) for n in ARRAYS}


def _node_with(store: Path, name: str, doc: Any) -> tuple[Path, bytes]:
    """The array's zarr.json, and its bytes with ``doc`` as our metadata."""
    path = meta_file(store, name)
    node = json.loads(path.read_text())
    node["attributes"]["arraystore"] = doc
    return path, _dump(node)


@st.composite
def mutated_sidecar(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["interesting", "random", "delete", "add", "nest"]))
        key = draw(st.sampled_from(sorted(SIDECAR_VALUES)))
        if op == "interesting":
            doc[key] = copy.deepcopy(draw(st.sampled_from(SIDECAR_VALUES[key])))
        elif op == "random":
            doc[key] = draw(json_values)
        elif op == "delete":
            doc.pop(key, None)
        elif op == "add":
            doc[draw(st.text(max_size=8))] = draw(json_values)
        elif isinstance(doc.get(key), list) and doc[key]:  # mutate inside a list value
            i = draw(st.integers(0, len(doc[key]) - 1))
            doc[key][i] = draw(json_values)
    return doc


@st.composite
def corrupted_bytes(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and data:
            del data[pos]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


# --------------------------------------------------------------- workspace

ARRAYS = ("ex", "zex", "zp")


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a memmap array, a zarr structured array and a zarr plain array."""
    path = tmp_path_factory.mktemp("fuzz") / "s.store"
    s = arraystore.open(path, mode="a")
    s.create("ex", (4,), "f8", fill="range", chunks=2)
    s.create("zex", (4,), "id:i8,v:2f4", backend="zarr", fill="range", chunks=2)
    s.create(
        "zp",
        (5, 2),
        "i4",
        backend="zarr",
        codec="zstd:1",
        fill="range",
        chunks=(2, 2),
        checksum=True,
    )
    return path


@contextlib.contextmanager
def replaced(path: Path, data: bytes) -> Iterator[None]:
    old = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(old)


def exercise(store_path: Path, name: str) -> None:
    """Everything a reader does with an array: open, describe, read, verify."""
    from arraystore.ops.verify import verify

    s = arraystore.open(store_path, mode="r")
    s.names()
    arr = s[name]
    arr.info()
    repr(arr)
    meta = arr.meta
    n_chunks = math.prod(-(-n // max(1, c)) for n, c in zip(meta.shape, meta.chunks, strict=False))
    if arr.nbytes <= 2**20 and n_chunks <= 1_000:  # a real reader would; a fuzzer cannot wait
        arr[...]
        for _ in arr.iter_chunks():
            pass
        verify(s, name)


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


# ------------------------------------------------------- (a) metadata fuzz


@FUZZ
@given(data=st.data())
def test_fuzz_sidecar_mutations(fuzz_store: Path, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(ARRAYS))
    base = _base_sidecars(fuzz_store)[name]
    doc = data.draw(mutated_sidecar(base))
    with replaced(*_node_with(fuzz_store, name, doc)), only_arraystore_errors():
        exercise(fuzz_store, name)


@FUZZ
@given(name=st.sampled_from(ARRAYS), doc=json_values)
def test_fuzz_sidecar_random_json(fuzz_store: Path, name: str, doc: Any) -> None:
    with replaced(*_node_with(fuzz_store, name, doc)), only_arraystore_errors():
        exercise(fuzz_store, name)


@FUZZ
@given(data=st.data())
def test_fuzz_metadata_bytes(fuzz_store: Path, data: st.DataObject) -> None:
    """Byte-level damage to any metadata file: sidecars, zarr.json of arrays and fields,
    and the store's root zarr.json."""
    files = sorted(
        p for p in fuzz_store.rglob("*.json") if p.name in ("arraystore.json", "zarr.json")
    )
    target = data.draw(st.sampled_from(files))
    damaged = data.draw(corrupted_bytes(target.read_bytes()))
    rel = target.relative_to(fuzz_store).parts
    name = rel[0] if len(rel) > 1 else data.draw(st.sampled_from(ARRAYS))
    with replaced(target, damaged), only_arraystore_errors():
        exercise(fuzz_store, name)


@FUZZ
@given(data=st.data())
def test_fuzz_zarr_json_mutations(fuzz_store: Path, data: st.DataObject) -> None:
    """Structural mutations of the zarr.json that zarr arrays (and fields) own."""
    target = data.draw(
        st.sampled_from([fuzz_store / "zp" / "zarr.json", fuzz_store / "zex" / "v" / "zarr.json"])
    )
    doc = json.loads(target.read_text())
    interesting: dict[str, list[Any]] = {
        "shape": [[5, 2], [5], [0, 2], [-1, 2], [5, 2, 1], [2**40, 2], "5", None, [1.5, 2]],
        "data_type": [
            "int32",
            "float64",
            "int8",
            "bool",
            "complex128",
            "foo",
            1,
            None,
            {"name": "int32"},
        ],
        "chunk_grid": [
            None,
            {},
            {"name": "regular", "configuration": {"chunk_shape": [0, 2]}},
            {"name": "regular", "configuration": {"chunk_shape": [1]}},
            {"name": "regular", "configuration": {"chunk_shape": [3, 3]}},
            {"name": "rectangular"},
        ],
        "codecs": [
            [],
            None,
            [{"name": "bytes"}],
            [{"name": "bytes", "configuration": {"endian": "big"}}],
            [{"name": "zstd"}],
            [{"name": "gzip", "configuration": {"level": 99}}],
            [{"name": "crc32c"}],
            [{"name": "bytes"}, {"name": "crc32c", "configuration": {"x": 1}}],
            [{"name": "transpose", "configuration": {"order": [1, 0]}}, {"name": "bytes"}],
        ],
        "fill_value": [0, None, "NaN", "x", [1, 2], 2**70],
        "chunk_key_encoding": [
            None,
            {"name": "v2"},
            {"name": "default", "configuration": {"separator": "."}},
            {"name": "bogus"},
        ],
        "zarr_format": [2, 3, "3", None],
        "node_type": ["array", "group", None, 1],
        "dimension_names": [None, ["a"], ["a", "b"], 5],
    }
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(interesting)))
        if data.draw(st.booleans()):
            doc[key] = copy.deepcopy(data.draw(st.sampled_from(interesting[key])))
        elif data.draw(st.booleans()):
            doc.pop(key, None)
        else:
            doc[key] = data.draw(json_values)
    name = target.relative_to(fuzz_store).parts[0]
    with replaced(target, _dump(doc)), only_arraystore_errors():
        exercise(fuzz_store, name)


@FUZZ
@given(
    doc=json_values
    | st.builds(
        lambda attrs: {"zarr_format": 3, "node_type": "group", "attributes": attrs}, json_values
    )
)
def test_fuzz_root_zarr_json(fuzz_store: Path, doc: Any) -> None:
    with replaced(fuzz_store / "zarr.json", _dump(doc)), only_arraystore_errors():
        s = arraystore.open(fuzz_store, mode="r")
        s.names()
        s["ex"].info()


# ----------------------------------------------------------- (b) dtype fuzz

VALID_SPECS = [
    "f8",
    "<f4",
    "float32",
    "int64",
    "i2",
    "u1",
    "bool",
    "?",
    "c16",
    "S10",
    "U3",
    "bfloat16",
    "bf16",
    "id:i8,price:f8,vec:3f4",
    "vec:(2,3)f4",
    "a:i8, b:f4",
    "x:bool,y:S4",
    '[["id", "<i8"], ["vec", "<f4", [3]]]',
    '[["a", "bfloat16"]]',
]
SPEC_ALPHABET = "fiucbSUVMmO?<>|=:,()[]{}\"' 0123456789xabdefgnlt_.-/\\²٣\x00\n"


@st.composite
def mutated_spec(draw: st.DrawFn) -> str:
    text = list(draw(st.sampled_from(VALID_SPECS)))
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        pos = draw(st.integers(0, len(text)))
        ch = draw(st.sampled_from(SPEC_ALPHABET) | st.characters())
        if op == "insert":
            text.insert(pos, ch)
        elif op == "delete" and pos < len(text):
            del text[pos]
        elif op == "replace" and pos < len(text):
            text[pos] = ch
        elif op == "duplicate":
            text = text[:pos] + text + text[pos:]
    return "".join(text)


dtype_specs = (
    mutated_spec()
    | st.text(alphabet=SPEC_ALPHABET, max_size=24)
    | st.text(max_size=16)
    | st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "id", "", "../x", 1]),
            st.sampled_from(["<f8", "i4", "S3", "O", "bfloat16", "x"]) | json_values,
        ).map(list)
        | st.tuples(st.sampled_from(["a", "v"]), st.just("<f4"), json_values).map(list),
        max_size=3,
    )
    | json_values
)


def check_dtype_spec(spec: Any) -> None:
    try:
        dt = parse_dtype(spec)
    except ArrayStoreError:
        return
    except Exception as exc:
        if known_bug(exc) is not None:
            assume(False)
        raise
    assert isinstance(dt, np.dtype)
    assert not dt.hasobject
    # what it parsed to is a dtype arraystore can write down and read back
    assert parse_dtype(dtype_to_spec(dt)) == dt, (spec, dt, dtype_to_spec(dt))
    assert parse_dtype(dtype_to_json(dt)) == dt
    assert parse_dtype(json.loads(json.dumps(dtype_to_json(dt)))) == dt


@FUZZ
@given(spec=dtype_specs)
def test_fuzz_parse_dtype(spec: Any) -> None:
    check_dtype_spec(spec)


# ------------------------------------------------------------- (c) CLI fuzz

COMMANDS = ["create", "ls", "info", "rm", "mv", "stats", "cast", "verify"]
NAMES = ["ex", "zex", "n", "missing", "../x", ".x", "a/b", "", "zarr.json"]
OPTIONS = [
    "--shape",
    "--dtype",
    "--chunks",
    "--backend",
    "--codec",
    "--fill",
    "--seed",
    "--from",
    "--overwrite",
    "--checksum",
    "--memory",
    "--workers",
    "--quiet",
    "-q",
    "--json",
    "--field",
    "--axis",
    "--quantiles",
    "--hist",
    "--keep-nan",
    "--ddof",
    "--executor",
    "--to",
    "--auto",
    "--out",
    "--casting",
    "--rtol",
    "--nan-to",
    "--errors",
    "--allow-half",
    "--allow-float-to-int",
    "--dry-run",
    "--resume",
    "--repair",
    "--help",
    "--version",
    "--bogus",
]
VALUES = [
    "3",
    "0",
    "-1",
    "2,2",
    "4x2",
    "x",
    "1e99",
    "2.5",
    "",
    "auto",
    "f8",
    "f4",
    "i1",
    "u2",
    "b1",
    "bool",
    "S4",
    "U2",
    "O",
    "M8",
    "id:i8,v:2f4",
    "v:f2",
    "id:i2",
    "nope:f4",
    "bf16",
    "c8",
    "[[",
    '[["a", "<f8"]]',
    "memmap",
    "zarr",
    "hdf5",
    "none",
    "zstd",
    "zstd:99",
    "lz4",
    "blosc-lz4",
    "gzip:5",
    "zeros",
    "ones",
    "range",
    "random",
    "pi",
    "1B",
    "1KiB",
    "16MiB",
    "0",
    "lots",
    "-5MiB",
    "serial",
    "threads",
    "bogus",
    "value",
    "clip",
    "safe",
    "same_kind",
    "unsafe",
    "raise",
    "coerce",
    "nan",
    "inf",
    "0.5",
    "0.1,0.9",
    "1.5",
    "0,0",
    "5",
    "{files}/f8.npy",
    "{files}/object.npy",
    "{files}/missing.npy",
]


@st.composite
def cli_args(draw: st.DrawFn) -> list[str]:
    random_text = st.text(max_size=8)
    first = draw(st.sampled_from(COMMANDS) | random_text)
    args = [first]
    if draw(st.integers(0, 9)) > 0:
        args.append(draw(st.sampled_from(["{store}", "{store}/ex", "{files}", "{nostore}"])))
    tokens = st.sampled_from(NAMES) | st.sampled_from(OPTIONS) | st.sampled_from(VALUES)
    args += draw(st.lists(tokens | random_text, max_size=8))
    return args


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory, fuzz_store: Path) -> Path:
    root = tmp_path_factory.mktemp("cli-fuzz")
    shutil.copytree(fuzz_store, root / "template.store")
    files = root / "files"
    files.mkdir()
    np.save(files / "f8.npy", np.arange(6.0))
    np.save(files / "object.npy", np.array([1, None], dtype=object), allow_pickle=True)
    return root


def _run_main(args: list[str]) -> tuple[int, str, str, BaseException | None]:
    out, err = io.StringIO(), io.StringIO()
    code, exc = 0, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main.main(args, prog_name="arraystore")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception as e:
            exc = e
    return code, out.getvalue(), err.getvalue(), exc


@FUZZ
@given(args=cli_args())
def test_fuzz_cli(cli_template: Path, args: list[str]) -> None:
    work = cli_template / f"w-{uuid.uuid4().hex[:8]}"
    store = work / "s.store"
    shutil.copytree(cli_template / "template.store", store)
    try:
        subst = {
            "{store}": str(store),
            "{files}": str(cli_template / "files"),
            "{nostore}": str(work / "nostore"),
        }
        real = []
        for a in args:
            for k, v in subst.items():
                a = a.replace(k, v)
            real.append(a)
        code, out, err, exc = _run_main(real)
        if exc is not None:
            if known_bug(exc) is not None:
                assume(False)
            raise AssertionError(
                f"traceback for {real}:\n"
                + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            )
        assert "Traceback" not in err
        assert code in (0, 1), (real, code, err)
        if code == 1 and err:
            lines = err.splitlines()
            if len(lines) > 1 and any(len((a + "x").splitlines()) > 1 for a in real):
                assume(False)  # known bug: see test_bug_line_break_in_argument
            assert len(lines) == 1 and lines[0].startswith("error: "), (real, err)
        elif code == 1:  # only verify reports through stdout (corruption found)
            assert real[0] == "verify", (real, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------- known bugs, reproduced


def _raises_plain(fn: Callable[[], Any]) -> None:
    """Passes iff ``fn`` raises an ArrayStoreError (what the fixed library will do)."""
    with pytest.raises(ArrayStoreError):
        fn()


def test_bug_json_subarray_shape() -> None:
    # an int shape is numpy's own shorthand for (3,): accepted; anything else is refused
    assert parse_dtype([["a", "f8", 3]]) == np.dtype([("a", "<f8", (3,))])
    _raises_plain(lambda: parse_dtype([["a", "f8", ["x"]]]))


def test_bug_unicode_digit_shape(tmp_path: Path) -> None:
    s = arraystore.open(tmp_path / "s.store", mode="a")
    _raises_plain(lambda: s.create("n", "²", "f8"))


def test_bug_null_dtype() -> None:
    _raises_plain(lambda: parse_dtype(None))
    _raises_plain(lambda: parse_dtype('[["a", null]]'))


def test_bug_zero_size_subarray_field() -> None:
    _raises_plain(lambda: parse_dtype("a:(0)f4"))


@pytest.mark.parametrize(
    "change",
    [
        {"codecs": None},
        {"fill_value": None},
        {"data_type": None},
        {"zarr_format": 2},
        {"fill_value": 2**70},
    ],
    ids=["no-codecs", "no-fill", "no-data-type", "format-2", "huge-fill"],
)
def test_bug_zarr_json_errors_escape(tmp_path: Path, change: dict[str, Any]) -> None:
    s = arraystore.open(tmp_path / "s.store", mode="a")
    s.create("zp", (5, 2), "i4", backend="zarr", codec="zstd:1", chunks=(2, 2))
    p = tmp_path / "s.store" / "zp" / "zarr.json"
    doc = json.loads(p.read_text())
    for k, v in change.items():
        if v is None:
            doc.pop(k)
        else:
            doc[k] = v
    p.write_text(json.dumps(doc))
    _raises_plain(lambda: arraystore.open(tmp_path / "s.store", mode="r")["zp"][...])


def test_bug_zarr_codecs_not_a_list(tmp_path: Path) -> None:
    s = arraystore.open(tmp_path / "s.store", mode="a")
    s.create("zp", (5,), "i4", backend="zarr")
    p = tmp_path / "s.store" / "zp" / "zarr.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), "codecs": "0"}))
    _raises_plain(lambda: arraystore.open(tmp_path / "s.store", mode="r")["zp"])


def test_bug_zarr_negative_shape(tmp_path: Path) -> None:
    s = arraystore.open(tmp_path / "s.store", mode="a")
    s.create("zp", (5, 2), "i4", backend="zarr", chunks=(2, 2))
    p = tmp_path / "s.store" / "zp" / "zarr.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), "shape": [-1, 2]}))
    _raises_plain(lambda: arraystore.open(tmp_path / "s.store", mode="r")["zp"][...])


def test_bug_chunk_iteration_is_not_lazy() -> None:
    """Fixed (chunks.py iter_chunk_indices was itertools.product, which materialises every
    range: MemoryError for a sparse (2**40,) grid). Now a lazy odometer in C order."""
    from itertools import product

    from arraystore.core.chunks import chunks_touching, grid_shape, iter_chunk_indices

    it = iter_chunk_indices((2**40, 2), (1, 2))
    assert next(it) == (0, 0)
    assert next(it) == (1, 0)
    touching = chunks_touching((slice(0, 2**40), slice(0, 2)), (2**40, 2), (1, 1))
    assert [next(touching) for _ in range(3)] == [(0, 0), (0, 1), (1, 0)]
    rng = np.random.default_rng(7)
    for _ in range(300):
        nd = int(rng.integers(0, 5))
        shape = [int(n) for n in rng.integers(0, 6, nd)]
        chunks = [int(c) for c in rng.integers(1, 4, nd)]
        want = list(product(*(range(n) for n in grid_shape(shape, chunks))))
        assert list(iter_chunk_indices(shape, chunks)) == want


@pytest.mark.parametrize(
    "args",
    [["ls", "{store}", "a\nb"], ["ls", "{store}/no\nstore"]],
    ids=["extra-argument", "store-path"],
)
def test_bug_line_break_in_argument(tmp_path: Path, args: list[str]) -> None:
    arraystore.open(tmp_path / "s.store", mode="a")
    real = [a.replace("{store}", str(tmp_path / "s.store")) for a in args]
    code, _, err, exc = _run_main(real)
    assert exc is None and code == 1
    assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize("attributes", [True, 5, 1.5])
def test_bug_root_attributes_not_an_object(tmp_path: Path, attributes: Any) -> None:
    root = tmp_path / "s.store"
    root.mkdir()
    doc = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
    (root / "zarr.json").write_text(json.dumps(doc))
    _raises_plain(lambda: arraystore.open(root, mode="r"))


def test_bug_zarr_sidecar_field_name_not_validated(tmp_path: Path) -> None:
    s = arraystore.open(tmp_path / "s.store", mode="a")
    s.create("zex", (4,), "id:i8,v:2f4", backend="zarr")
    write_meta(
        tmp_path / "s.store", "zex", {**read_meta(tmp_path / "s.store", "zex"), "dtype": [[1]]}
    )
    _raises_plain(lambda: arraystore.open(tmp_path / "s.store", mode="r")["zex"])


def test_bug_zarr_second_field_not_validated(tmp_path: Path) -> None:
    s = arraystore.open(tmp_path / "s.store", mode="a")
    s.create("zex", (4,), "id:i8,v:2f4", backend="zarr", chunks=2)
    p = tmp_path / "s.store" / "zex" / "v" / "zarr.json"
    grid = {"name": "regular", "configuration": {"chunk_shape": [0, 2]}}
    p.write_text(json.dumps({**json.loads(p.read_text()), "chunk_grid": grid}))
    _raises_plain(lambda: arraystore.open(tmp_path / "s.store", mode="r")["zex"][...])


def test_bug_infinite_chunks_in_sidecar(tmp_path: Path) -> None:
    s = arraystore.open(tmp_path / "s.store", mode="a")
    s.create("ex", (4,), "f8")
    doc = {**read_meta(tmp_path / "s.store", "ex"), "chunks": [float("inf")]}
    meta_file(tmp_path / "s.store", "ex").write_bytes(
        _node_with(tmp_path / "s.store", "ex", doc)[1]
    )
    _raises_plain(lambda: arraystore.open(tmp_path / "s.store", mode="r")["ex"])


def test_bug_zarr_field_shape_not_checked(tmp_path: Path) -> None:
    s = arraystore.open(tmp_path / "s.store", mode="a")
    s.create("zex", (4,), "id:i8,v:2f4", backend="zarr", chunks=2)
    doc = {**read_meta(tmp_path / "s.store", "zex"), "dtype": [["id", "<i8"], ["v", "<f4", [3]]]}
    write_meta(tmp_path / "s.store", "zex", doc)
    _raises_plain(lambda: arraystore.open(tmp_path / "s.store", mode="r")["zex"][...])


def test_bug_deprecated_numpy_alias() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            dt = parse_dtype("a3")
        except ArrayStoreError:
            return  # refusing it is fine
    assert dt == np.dtype("S3")  # so is accepting it quietly
