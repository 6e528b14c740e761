"""The public surface of ``import arraystore`` (issue 16 item 3, issue 19 item 6)."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore import errors


def test_dir_is_the_public_api_only() -> None:
    assert sorted(dir(arraystore)) == sorted([*arraystore.__all__, "__version__"])
    assert "Any" not in dir(arraystore) and "annotations" not in dir(arraystore)
    for name in arraystore.__all__:
        assert getattr(arraystore, name) is not None


def test_version_comes_from_the_package_metadata() -> None:
    assert arraystore.__version__ == version("arraystore")


def test_every_error_class_is_exported() -> None:
    classes = {
        n
        for n, v in vars(errors).items()
        if isinstance(v, type) and issubclass(v, errors.ArrayStoreError)
    }
    assert classes <= set(arraystore.__all__), classes - set(arraystore.__all__)


# ------------------------------------------------------------------ signatures
# Issue 16 item 3 / ARCHITECTURE R8: every public entry point is typed, takes no bare
# ``**kwargs`` and has a numpydoc ``Parameters`` section naming each parameter.
_SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}$", re.MULTILINE)


def _public_callables() -> list[tuple[str, Any, str]]:
    """``(qualified name, function, docstring)`` for ``arraystore.__all__`` and the public
    methods of its classes (a constructor's docstring is its class's, as numpydoc's)."""
    out: list[tuple[str, Any, str]] = []
    for name in arraystore.__all__:
        obj = getattr(arraystore, name)
        if not isinstance(obj, type):
            out.append((name, obj, inspect.getdoc(obj) or ""))
            continue
        for attr in sorted(dir(obj)):
            member = inspect.getattr_static(obj, attr)
            if isinstance(member, property):
                member, attr = member.fget, f"{attr} (property)"
            fn = getattr(member, "__func__", member)
            if not inspect.isfunction(fn) or not fn.__module__.startswith("arraystore"):
                continue  # inherited from object / Exception
            if attr == "__init__":
                out.append((f"{name}()", fn, inspect.getdoc(obj) or ""))
            elif not attr.startswith("_"):
                out.append((f"{name}.{attr}", fn, inspect.getdoc(fn) or ""))
    return out


def _documented(doc: str) -> list[str]:
    """The parameter names listed in the numpydoc ``Parameters`` section of ``doc``."""
    sections = list(_SECTION.finditer(doc))
    for i, m in enumerate(sections):
        if m.group(1) == "Parameters":
            end = sections[i + 1].start() if i + 1 < len(sections) else len(doc)
            body = doc[m.end() : end]
            heads = [line for line in body.splitlines() if line and not line[0].isspace()]
            return [n.strip().lstrip("*") for h in heads for n in h.split(" : ")[0].split(",")]
    return []


_PUBLIC = _public_callables()


def test_the_public_api_is_walked() -> None:
    names = {n for n, _, _ in _PUBLIC}
    assert {"open", "map_blocks", "from_dask", "parse_dtype", "Store()", "Array()"} <= names
    assert {"Store.create", "Store.import_file", "Store.rename", "Store.names"} <= names
    assert {"Array.map", "Array.export", "Array.batches", "Array.sum", "Array.quantile"} <= names
    assert {"Store.ls", "Store.remove", "Store.verify", "Store.stats", "Store.cast"} <= names
    assert {"Store.map", "Store.info", "Array.astype"} <= names
    assert "Array.shape (property)" in names


@pytest.mark.parametrize(("name", "fn", "doc"), _PUBLIC, ids=[n for n, _, _ in _PUBLIC])
def test_public_callable_is_typed_and_documented(name: str, fn: Any, doc: str) -> None:
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    assert not [p.name for p in params if p.kind is p.VAR_KEYWORD], f"{name}: bare **kwargs"
    missing = [p.name for p in params if p.annotation is p.empty]
    assert not missing, f"{name}: parameters without a type annotation: {missing}"
    assert sig.return_annotation is not sig.empty, f"{name}: no return annotation"
    assert doc.strip(), f"{name}: no docstring"
    if params:
        listed = _documented(doc)
        assert listed, f"{name}: no numpydoc 'Parameters' section"
        undocumented = [p.name for p in params if p.name not in listed]
        assert not undocumented, f"{name}: not in its Parameters section: {undocumented}"
        unknown = [n for n in listed if n not in sig.parameters]
        assert not unknown, f"{name}: Parameters lists what it does not take: {unknown}"


# ------------------------------------------------------------ explicit options
# The façade's keyword-only options reach the operations (they replaced ``**kwargs``).
def test_import_and_export_pass_their_format_options(
    store: arraystore.Store, tmp_path: Path
) -> None:
    src = tmp_path / "in.csv"
    src.write_text("junk line\na;b\n1;2.5\n3;NA\n")
    arr = store.import_file("t", src, delimiter=";", skip_rows=1, dtype={"a": "i4"})
    assert arr.fields == ("a", "b") and arr.dtype["a"] == np.dtype("i4")
    np.testing.assert_array_equal(arr["b"][...], [2.5, np.nan])
    with pytest.raises(arraystore.InvalidArgument, match="block_size"):
        store.import_file("u", src, block_size=10)
    np.save(tmp_path / "x.npy", np.arange(3.0))
    with pytest.raises(arraystore.InvalidArgument, match=r"\.npy import takes no"):
        store.import_file("u", tmp_path / "x.npy", delimiter=";")
    with pytest.raises(TypeError):
        store.import_file("u", src, delimitr=";")  # type: ignore[call-arg]
    assert "u" not in store

    out = arr.export(tmp_path / "out.csv", delimiter="|", nan_as_null=True)
    assert out.read_text().splitlines()[1:] == ["1|2.5", "3|"]
    assert np.load(store["t"]["a"].export(tmp_path / "a.npy")).tolist() == [1, 3]
    with pytest.raises(arraystore.InvalidArgument, match="unknown npy export options"):
        arr["a"].export(tmp_path / "b.npy", delimiter="|")


def test_map_and_map_blocks_pass_their_options(store: arraystore.Store, tmp_path: Path) -> None:
    x = store.create("x", (10, 2), "f8", fill="range")
    other = arraystore.open(tmp_path / "other.store", mode="a")
    y = x.map(
        lambda b: (b * 2).astype("f4"),
        out="y",
        store=other,
        dtype="f4",
        chunks=(5, 2),
        attrs={"k": 1},
    )
    assert y.store is other and "y" not in store
    assert (y.dtype, y.chunks, y.attrs) == (np.dtype("f4"), (5, 2), {"k": 1})
    seen: list[int] = []
    z = arraystore.map_blocks(
        np.add, x, y[...], out="z", progress=lambda t, n: seen.append(n), executor="serial"
    )
    np.testing.assert_array_equal(z[...], x[...] * 3)
    assert sum(seen) > 0
    with pytest.raises(TypeError, match="store"):
        x.map("x + 1", out="w", store=other)
    with pytest.raises(arraystore.ArrayExists):
        x.map("x + 1", out="z")
    np.testing.assert_array_equal(x.map("x + 1", out="z", overwrite=True)[...], x[...] + 1)


def test_from_dask_passes_compute_options(store: arraystore.Store) -> None:
    da = pytest.importorskip("dask.array")
    d = da.arange(12, chunks=4)
    a = arraystore.from_dask(d, store, "a", scheduler="sync", attrs={"k": 1})
    b = arraystore.from_dask(d, store, "b", num_workers=1, compute_kwargs={"optimize_graph": 0})
    assert a[...].tolist() == b[...].tolist() == list(range(12)) and a.attrs == {"k": 1}
    with pytest.raises(ValueError):  # dask's own check: the scheduler reaches it
        arraystore.from_dask(d, store, "c", scheduler="no-such-scheduler")


def test_batches_and_reductions_pass_their_options(store: arraystore.Store) -> None:
    arr = store.create("r", (10,), "id:i8,v:f8", fill="range")
    got = list(arr.batches(4, fields="v", drop_last=True, prefetch=0))
    assert [len(b) for b in got] == [4, 4]
    seen: list[int] = []
    total = arr.sum(
        fields="v",
        memory="64MiB",
        executor="threads",
        workers=1,
        progress=lambda t, n: seen.append(n),
    )
    assert total == arr["v"][...].sum() and seen
    assert arr.var(None, "v", False, 1) == np.var(arr["v"][...], ddof=1)
    with pytest.raises(TypeError):
        arr.sum(ddof=1)  # type: ignore[call-arg]
