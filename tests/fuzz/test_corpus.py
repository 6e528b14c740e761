"""Bad-input corpus for the command line (issue 8, acceptance 1).

Every case runs ``arraystore.cli.main`` in-process on a fresh copy of a small workspace
(a store with a memmap array ``ex`` and a zarr structured array ``zex``, a few source
files, a file posing as a store, a zarr group that is not an arraystore store, ...) and
asserts the CLI contract of DESIGN.md §7:

* exit status 1;
* exactly one line on stderr, starting ``error: ``, naming the problem (a regex);
* no traceback (an exception escaping ``main`` fails the case);
* nothing changed: every path under the workspace, with its bytes, is the same before
  and after (no new array, no hidden temp folder, no lock file left behind).

``tests/cli/test_cli.py`` and ``tests/api/test_bad_input.py`` test a few of these messages and the
API; this corpus is the exhaustive CLI side. Cases marked ``xfail(strict=True)`` with a
reason starting ``BUG`` document open library bugs; once fixed they XPASS (and fail):
drop the mark then.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import re
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore import ReadOnlyError
from arraystore.cli import main
from arraystore.testing import data_file, meta_file, read_meta, write_meta

# ----------------------------------------------------------------- helpers


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI like ``arraystore ARGS``; any exception but SystemExit fails the test."""
    try:
        main.main(args, prog_name="arraystore")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:  # a traceback the user would see
        capsys.readouterr()
        pytest.fail(f"exception escaped the CLI for {args}:\n{traceback.format_exc()}")
    out, err = capsys.readouterr()
    return code, out, err


def tree_hash(root: Path) -> dict[str, str]:
    """Every path below ``root`` (hidden included, symlinks not followed) -> digest."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = Path(dirpath, d)
            out[str(p.relative_to(root))] = "<symlink>" if p.is_symlink() else "<dir>"
        for f in filenames:
            p = Path(dirpath, f)
            if p.is_symlink():
                out[str(p.relative_to(root))] = "<symlink>" + os.readlink(p)
                continue
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            out[str(p.relative_to(root))] = h.hexdigest()
    return out


def assert_same_tree(before: dict[str, str], after: dict[str, str]) -> None:
    new = sorted(set(after) - set(before))
    gone = sorted(set(before) - set(after))
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    assert not (new or gone or changed), f"new: {new}, gone: {gone}, changed: {changed}"


def assert_one_line_error(code: int, err: str, match: str) -> str:
    assert "Traceback" not in err, err
    assert code == 1, f"exit {code}, stderr {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert re.search(match, line), f"{match!r} not in {line!r}"
    return line


# --------------------------------------------------------------- workspace


def _build_workspace(root: Path) -> None:
    root.mkdir(parents=True)
    s = arraystore.open(root / "s.store", mode="a")
    s.create("ex", (4,), "f8", fill="range")
    s.create("zex", (4,), "id:i8,v:2f4", backend="zarr", fill="range", chunks=2)
    files = root / "files"
    files.mkdir()
    np.save(files / "f8.npy", np.arange(10.0))
    np.save(files / "f16.npy", np.arange(3, dtype=np.longdouble))
    np.save(files / "object.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    (files / "pickle.npy").write_bytes(pickle.dumps([1, 2, 3]))
    np.save(files / "truncated.npy", np.arange(100.0))
    with open(files / "truncated.npy", "r+b") as f:
        f.truncate(300)
    (files / "adir.npy").mkdir()
    (root / "file.store").write_bytes(b"I am a file, not a store\n")
    group = root / "group.store"  # a valid zarr v3 group, but not an arraystore store
    group.mkdir()
    (group / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"other": 1}})
    )
    plain = root / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("hello\n")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "ws"
    _build_workspace(root)
    return root


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the workspace for one case."""
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    return root


# --------------------------------------------------------- setup helpers

Setup = Callable[[Path], None]


def _sidecar(name: str, content: bytes | str | Callable[[dict[str, Any]], Any]) -> Setup:
    """Damage array ``name``'s metadata: ``content`` replaces its zarr.json (bytes or
    text), or edits our metadata document in it (a callable)."""

    def setup(ws: Path) -> None:
        p = meta_file(ws / "s.store", name)
        if callable(content):
            doc = read_meta(ws / "s.store", name)
            new = content(doc)
            write_meta(ws / "s.store", name, doc if new is None else new)
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)

    setup.__name__ = f"sidecar_{name}"
    return setup


def _huge_sidecar(ws: Path) -> None:
    doc = read_meta(ws / "s.store", "ex")
    doc["attrs"] = {"pad": "x" * (16 * 2**20 + 10)}
    write_meta(ws / "s.store", "ex", doc)


def _truncate_npy(ws: Path) -> None:
    p = data_file(ws / "s.store", "ex")
    with open(p, "r+b") as f:
        f.truncate(os.path.getsize(p) - 8)


def _no_npy(ws: Path) -> None:
    data_file(ws / "s.store", "ex").unlink()


def _garbage_chunk(ws: Path) -> None:
    (ws / "s.store" / "zex" / "id" / "c" / "0").write_bytes(b"garbage!")


_LOCK_FDS: list[int] = []  # closed by test_bad_input


def _zarr_doc(*edits: tuple[str, Callable[[dict[str, Any]], None]]) -> Setup:
    """Edit zarr.json files of the zarr array ``zex`` (paths relative to it)."""

    def setup(ws: Path) -> None:
        for rel, change in edits:
            p = ws / "s.store" / "zex" / rel / "zarr.json"
            doc = json.loads(p.read_text())
            change(doc)
            p.write_text(json.dumps(doc))

    return setup


def _zex_shape(n: Any, chunk: Any = 2) -> Setup:
    """Both field arrays of ``zex`` (id: (n,), v: (n, 2)) get shape n and chunk ``chunk``."""

    def edit(sub: list[int]) -> Callable[[dict[str, Any]], None]:
        def change(doc: dict[str, Any]) -> None:
            doc["shape"] = [n, *sub]
            doc["chunk_grid"]["configuration"]["chunk_shape"] = [chunk, *sub]

        return change

    return _zarr_doc(("id", edit([])), ("v", edit([2])))


def _zex_chunk(rel: str, as_dir: bool = False) -> Setup:
    def setup(ws: Path) -> None:
        p = ws / "s.store" / "zex" / rel
        p.unlink()
        if as_dir:
            p.mkdir()

    return setup


def _live_lock(ws: Path) -> None:
    """A held lock (flock-ed, as a live writer holds it) naming PID 1 (always runs). A
    lock file nobody flocks is stale whatever PID it names (issue 15)."""
    lock = ws / "s.store" / ".ex.lock"
    lock.write_text("1")
    fd = os.open(lock, os.O_RDONLY)
    _LOCK_FDS.append(fd)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _zero_size_field(ws: Path) -> None:
    """A memmap array with a zero-size subarray field, as versions that accepted
    'a:(0)f4' wrote it (create now refuses that dtype): sidecar and .npy header edited."""
    arraystore.open(ws / "s.store").create("z0", (3,), "a:(1)f4")
    npy = data_file(ws / "s.store", "z0")
    doc = read_meta(ws / "s.store", "z0")
    doc["dtype"][0][2] = [0]
    write_meta(ws / "s.store", "z0", doc)
    raw = npy.read_bytes()
    assert b"(1,)" in raw[:128]
    npy.write_bytes(raw.replace(b"(1,)", b"(0,)", 1))


def _update(**changes: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.update(changes)


# ------------------------------------------------------------------- cases


#: bugs still open (their cases stay strict xfails); the others are fixed
OPEN_BUGS: tuple[str, ...] = ()


@dataclass
class Case:
    id: str
    args: list[str]
    match: str
    setup: Setup | None = None
    bug: str | None = None  # reason of a (now fixed, unless in OPEN_BUGS) bug


BAD_NAMES = [
    ("dotdot", "../x", "'../x' must not contain"),
    ("hidden", ".x", "'.x' may only use"),
    ("slash", "a/b", "'a/b' must not contain"),
    ("empty", "", "must be a non-empty string"),
]

NAME_COMMANDS: list[tuple[str, list[str]]] = [
    ("create", ["create", "{s}", "{n}", "--shape", "3", "--dtype", "f8"]),
    ("info", ["info", "{s}", "{n}"]),
    ("rm", ["rm", "{s}", "{n}"]),
    ("mv-new", ["mv", "{s}", "ex", "{n}"]),
    ("mv-old", ["mv", "{s}", "{n}", "y"]),
    ("stats", ["stats", "{s}", "{n}"]),
    ("cast", ["cast", "{s}", "{n}", "--to", "f4"]),
    ("cast-out", ["cast", "{s}", "ex", "--to", "f4", "--out", "{n}"]),
    ("verify", ["verify", "{s}", "{n}"]),
]

VERIFY_NAME_BUG = (
    "BUG arraystore/ops/verify.py:94 verify(store, name) does not validate NAME: a bad or "
    "missing name is reported as 'CORRUPT: ...' on stdout (exit 1, nothing on stderr) "
    "instead of the InvalidName / ArrayNotFound error line"
)

CASES: list[Case] = []
for cmd_id, template_args in NAME_COMMANDS:
    for name_id, name, match in BAD_NAMES:
        CASES.append(
            Case(
                f"name-{cmd_id}-{name_id}",
                [name if a == "{n}" else a for a in template_args],
                re.escape(match) if name_id != "empty" else match,
                bug=VERIFY_NAME_BUG if cmd_id == "verify" else None,
            )
        )

HIST_BUG = (
    "BUG arraystore/cli.py:{line} stats --hist {v!r}: int(_parse_floats(bins)[0]) raises "
    "{exc} (traceback); validate --hist as a positive integer or 'auto'"
)

CASES += [
    # ------------------------------------------------------------ dtypes
    Case(
        "dtype-unknown",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "f9"],
        "unknown dtype 'f9'",
    ),
    Case(
        "dtype-unknown-field",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "a:i8,b:q9"],
        "unknown dtype 'q9'",
    ),
    Case("dtype-object", ["create", "{s}", "n", "--shape", "3", "--dtype", "O"], "object dtype"),
    *[
        Case(
            f"dtype-zarr-{i}",
            ["create", "{s}", "n", "--shape", "3", "--dtype", spec, "--backend", "zarr"],
            rf"dtype '{bad}'{where} \(\w+\) has no zarr data type",
        )
        for i, (spec, bad, where) in enumerate(
            [
                ("f16", "<f16", ""),
                ("G", "<c32", ""),
                ("longdouble", "<f16", ""),
                ("a:U3,b:f16", "<f16", " \\(field 'b'\\)"),
            ]
        )
    ],
    Case(
        "dtype-zarr-bfloat16",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "bfloat16", "--backend", "zarr"],
        "bfloat16 cannot be stored by the zarr backend",
    ),
    Case(
        "dtype-zarr-cast",
        ["cast", "{s}", "zex", "--to", "id:f16"],
        r"dtype '<f16' \(field 'id'\) \(float128\) has no zarr data type",
    ),
    Case(
        "dtype-zarr-map",
        ["map", "{s}", "ex", "--expr", "ex", "--out", "n", "--dtype", "G", "--backend", "zarr"],
        r"dtype '<c32' \(complex256\) has no zarr data type",
    ),
    Case(
        "dtype-zarr-import",
        ["import", "{s}", "n", "{w}/files/f16.npy", "--backend", "zarr"],
        r"dtype '<f16' \(float128\) has no zarr data type",
    ),
    Case(
        "dtype-object-field",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "a:i8,b:O"],
        "object dtype.*'b'",
    ),
    Case("dtype-datetime", ["create", "{s}", "n", "--shape", "3", "--dtype", "M8[s]"], "datetime"),
    Case("dtype-unsized", ["create", "{s}", "n", "--shape", "3", "--dtype", "S"], "unsized string"),
    Case("dtype-void", ["create", "{s}", "n", "--shape", "3", "--dtype", "V8"], "void"),
    Case(
        "dtype-dup-field",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "a:i8,a:f8"],
        "'a' occurs more than once",
    ),
    Case(
        "dtype-bad-field-name",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "a/b:i8"],
        "field name 'a/b'",
    ),
    Case(
        "dtype-bad-json", ["create", "{s}", "n", "--shape", "3", "--dtype", "[["], "not valid JSON"
    ),
    Case(
        "dtype-bare-subarray",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "3f4"],
        "bare subarray",
    ),
    Case(
        "dtype-zero-size-subarray-zarr",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "a:(0)f4", "--backend", "zarr"],
        "a:\\(0\\)f4|zero|size",
        bug="BUG arraystore/core/dtypes.py:194 normalize() accepts zero-size subarray fields "
        "('a:(0)f4'); the zarr create then commits an array it cannot reopen ('chunks (3, 0) "
        "must all be >= 1'): exit 1 but a broken array 'n' is left in the store",
    ),
    Case(
        "stats-zero-size-subarray-memmap",
        ["stats", "{s}", "z0"],
        "z0|size",
        setup=_zero_size_field,
        bug="BUG arraystore/core/dtypes.py:194 a memmap array with a zero-size subarray field "
        "('a:(0)f4') is created, then stats/cast crash with numpy's ValueError 'When "
        "changing to a smaller dtype...' (traceback)",
    ),
    # ------------------------------------------------ backend, codec, fill
    Case(
        "backend-unknown",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "f8", "--backend", "hdf5"],
        "unknown backend 'hdf5'",
    ),
    Case(
        "codec-unknown",
        [
            "create",
            "{s}",
            "n",
            "--shape",
            "3",
            "--dtype",
            "f8",
            "--backend",
            "zarr",
            "--codec",
            "snappy",
        ],
        "unknown codec 'snappy'",
    ),
    Case(
        "codec-bad-level",
        [
            "create",
            "{s}",
            "n",
            "--shape",
            "3",
            "--dtype",
            "f8",
            "--backend",
            "zarr",
            "--codec",
            "gzip:10",
        ],
        "level 10",
    ),
    Case(
        "codec-bad-level-text",
        [
            "create",
            "{s}",
            "n",
            "--shape",
            "3",
            "--dtype",
            "f8",
            "--backend",
            "zarr",
            "--codec",
            "zstd:abc",
        ],
        "codec level in 'zstd:abc'",
    ),
    Case(
        "codec-on-memmap",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "f8", "--codec", "zstd"],
        "--backend zarr",
    ),
    Case(
        "fill-unknown",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "f8", "--fill", "pi"],
        "unknown fill 'pi'",
    ),
    Case(
        "seed-negative",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "f8", "--fill", "random", "--seed", "-1"],
        "seed must be a non-negative integer",
    ),
    Case(
        "seed-not-int",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "f8", "--seed", "x"],
        "'--seed': 'x' is not a valid integer",
    ),
    Case(
        "create-exists",
        ["create", "{s}", "ex", "--shape", "3", "--dtype", "f8"],
        "'ex' already exists",
    ),
    # -------------------------------------------------------------- shapes
    Case("shape-missing", ["create", "{s}", "n", "--dtype", "f8"], "needs --shape"),
    Case(
        "shape-negative",
        ["create", "{s}", "n", "--shape", "4,-1", "--dtype", "f8"],
        "negative dimension",
    ),
    Case(
        "shape-float",
        ["create", "{s}", "n", "--shape", "2.5", "--dtype", "f8"],
        "shape entries must be an integer, got '2.5'",
    ),
    Case(
        "shape-exponent",
        ["create", "{s}", "n", "--shape", "1e99", "--dtype", "f8"],
        "shape entries must be an integer, got '1e99'",
    ),
    Case("shape-word", ["create", "{s}", "n", "--shape", "x", "--dtype", "f8"], "bad shape 'x'"),
    Case(
        "shape-junk-entry",
        ["create", "{s}", "n", "--shape", "3,x", "--dtype", "f8"],
        "shape",
        bug="BUG arraystore/core/chunks.py:38 normalize_shape('3,x') turns 'x' into a "
        "separator and drops empty parts: the typo silently creates shape (3,) (same for "
        "'3,,4' -> (3, 4)); reject empty entries",
    ),
    Case(
        "shape-overflow",
        ["create", "{s}", "n", "--shape", "99999999999,9999999999", "--dtype", "f8"],
        "too large|size",
        bug="BUG arraystore/backends/memmap.py:218 f.truncate(offset + nbytes) raises "
        "OverflowError for > 2**63 bytes (traceback); check nbytes in Store.create",
    ),
    # -------------------------------------------------------------- chunks
    Case(
        "chunks-zero",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "f8", "--chunks", "0"],
        "chunk sizes must be >= 1",
    ),
    Case(
        "chunks-word",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "f8", "--chunks", "x"],
        "chunk sizes must be an integer, got 'x'",
    ),
    Case(
        "chunks-ndim",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "f8", "--chunks", "1,1"],
        "one entry per dimension",
    ),
    # --------------------------------------------------- memory / workers
    Case(
        "memory-zero",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "f8", "--memory", "0"],
        "--memory must be positive",
    ),
    Case(
        "memory-word",
        ["create", "{s}", "n", "--shape", "3", "--dtype", "f8", "--memory", "lots"],
        "invalid size 'lots'",
    ),
    Case("memory-unit", ["stats", "{s}", "ex", "--memory", "12parsecs"], "invalid size"),
    Case(
        "memory-negative",
        ["cast", "{s}", "ex", "--to", "f4", "--memory", "-5MiB"],
        "must not be negative",
    ),
    Case(
        "memory-cast-zero",
        ["cast", "{s}", "ex", "--to", "f4", "--memory", "0"],
        "memory budget must be positive",
    ),
    Case("memory-too-small", ["stats", "{s}", "ex", "--memory", "1B"], "raise --memory"),
    Case(
        "workers-zero",
        ["cast", "{s}", "ex", "--to", "f4", "--workers", "0"],
        "--workers must be >= 1",
    ),
    Case(
        "workers-word",
        ["stats", "{s}", "ex", "--workers", "x"],
        "'--workers': 'x' is not a valid integer",
    ),
    Case(
        "executor-stats", ["stats", "{s}", "ex", "--executor", "bogus"], "unknown executor 'bogus'"
    ),
    Case(
        "executor-cast",
        ["cast", "{s}", "ex", "--to", "f4", "--executor", "bogus"],
        "unknown executor 'bogus'",
    ),
    # ---------------------------------------------------------------- stats
    Case("axis-word", ["stats", "{s}", "ex", "--axis", "x"], "unknown axis 'x'"),
    Case("axis-out-of-range", ["stats", "{s}", "ex", "--axis", "5"], "axis 5 is out of bounds"),
    Case("axis-duplicate", ["stats", "{s}", "ex", "--axis", "0,0"], "duplicate value in axis"),
    Case(
        "quantiles-word",
        ["stats", "{s}", "ex", "--quantiles", "a,b"],
        "--quantiles must be comma-separated numbers",
    ),
    Case(
        "quantiles-range",
        ["stats", "{s}", "ex", "--quantiles", "0.5,1.5"],
        r"quantiles must be in \[0, 1\]",
    ),
    Case(
        "quantiles-nan",
        ["stats", "{s}", "ex", "--quantiles", "nan"],
        r"quantiles must be in \[0, 1\]",
    ),
    Case("hist-word", ["stats", "{s}", "ex", "--hist", "x"], "--hist must be"),
    Case("hist-zero", ["stats", "{s}", "ex", "--hist", "0"], "--hist must be a number of bins"),
    Case(
        "hist-negative", ["stats", "{s}", "ex", "--hist", "-3"], "--hist must be a number of bins"
    ),
    Case(
        "hist-inf",
        ["stats", "{s}", "ex", "--hist", "inf"],
        "hist",
        bug=HIST_BUG.format(line=430, v="inf", exc="OverflowError"),
    ),
    Case(
        "hist-nan",
        ["stats", "{s}", "ex", "--hist", "nan"],
        "hist",
        bug=HIST_BUG.format(line=430, v="nan", exc="ValueError"),
    ),
    Case(
        "hist-empty",
        ["stats", "{s}", "ex", "--hist", ""],
        "hist",
        bug=HIST_BUG.format(line=430, v="", exc="IndexError"),
    ),
    Case(
        "hist-huge",
        ["stats", "{s}", "ex", "--hist", "1e30"],
        "hist|bins",
        bug="BUG arraystore/cli.py:430 stats --hist 1e30: numpy's 'Maximum allowed size "
        "exceeded' leaks out without naming --hist; bound the number of bins",
    ),
    Case("ddof-negative", ["stats", "{s}", "ex", "--ddof", "-1"], "--ddof"),
    Case(
        "ddof-overflow",
        ["stats", "{s}", "ex", "--ddof", "99999999999999999999"],
        "ddof",
        bug="BUG arraystore/cli.py:440 stats --ddof 99999999999999999999 raises "
        "OverflowError (traceback); bound --ddof (click.IntRange) or check it in reduce()",
    ),
    Case(
        "stats-unknown-field",
        ["stats", "{s}", "zex", "--field", "nope"],
        "no field 'nope' \\(fields: id, v\\)",
    ),
    Case("stats-field-of-plain", ["stats", "{s}", "ex", "--field", "nope"], "plain dtype"),
    # ----------------------------------------------------------------- cast
    Case("cast-no-target", ["cast", "{s}", "ex"], "cast needs --to"),
    Case(
        "cast-to-and-auto", ["cast", "{s}", "ex", "--to", "f4", "--auto"], "either --to or --auto"
    ),
    Case(
        "cast-policy-unknown",
        ["cast", "{s}", "ex", "--to", "f4", "--casting", "bogus"],
        "unknown casting 'bogus'",
    ),
    Case(
        "cast-errors-unknown",
        ["cast", "{s}", "ex", "--to", "f4", "--errors", "bogus"],
        "errors must be 'raise' or 'coerce'",
    ),
    Case(
        "cast-rtol-negative",
        ["cast", "{s}", "ex", "--to", "f4", "--rtol", "-1"],
        "rtol must be a finite number",
    ),
    Case("cast-to-bytes", ["cast", "{s}", "ex", "--to", "S10"], "casting to strings"),
    Case("cast-to-unicode", ["cast", "{s}", "ex", "--to", "U5"], "casting to strings"),
    Case("cast-field-to-bytes", ["cast", "{s}", "zex", "--to", "v:S3"], "casting to strings"),
    Case("cast-to-object", ["cast", "{s}", "ex", "--to", "O"], "object dtype"),
    Case("cast-to-unknown", ["cast", "{s}", "ex", "--to", "f9"], "unknown dtype 'f9'"),
    Case(
        "cast-unknown-field",
        ["cast", "{s}", "zex", "--to", "nope:f4"],
        "no field 'nope' \\(fields: id, v\\)",
    ),
    Case(
        "cast-field-of-plain",
        ["cast", "{s}", "ex", "--to", "a:f4"],
        "per-field targets need a structured array",
    ),
    Case(
        "cast-subarray-shape",
        ["cast", "{s}", "zex", "--to", "v:3f4"],
        r"subarray shape \(2,\), not \(3,\)",
    ),
    Case(
        "cast-empty-field-spec", ["cast", "{s}", "zex", "--to", "id:"], "must look like FIELD:DTYPE"
    ),
    Case(
        "cast-refused",
        ["cast", "{s}", "ex", "--to", "b1"],
        "refused.*out of range.*nothing was written",
    ),
    Case(
        "cast-out-exists",
        ["cast", "{s}", "ex", "--to", "f4", "--out", "zex"],
        "'zex' already exists",
    ),
    Case("cast-nothing-to-resume", ["cast", "{s}", "ex", "--resume"], "nothing to resume"),
    Case("cast-missing", ["cast", "{s}", "missing", "--to", "f4"], "no array 'missing'"),
    # -------------------------------------------------------- rm / mv
    Case("rm-missing", ["rm", "{s}", "missing"], "no array 'missing'"),
    Case("mv-missing", ["mv", "{s}", "missing", "x"], "no array 'missing'"),
    Case("mv-onto-existing", ["mv", "{s}", "ex", "zex"], "'zex' already exists"),
    Case("info-missing", ["info", "{s}", "missing"], "no array 'missing'.*arrays: ex, zex"),
    # -------------------------------------------------------------- stores
    *[
        Case(f"nostore-{c[0]}", [c[0], "{w}/nostore", *c[1:]], "no store at .*nostore")
        for c in (
            ["ls"],
            ["info", "ex"],
            ["stats", "ex"],
            ["cast", "ex", "--to", "f4"],
            ["rm", "ex"],
            ["mv", "ex", "y"],
            ["verify"],
        )
    ],
    Case("filestore-ls", ["ls", "{w}/file.store"], "is a file, not a store directory"),
    Case(
        "filestore-create",
        ["create", "{w}/file.store", "n", "--shape", "3", "--dtype", "f8"],
        "is a file, not a store directory",
    ),
    Case("filestore-verify", ["verify", "{w}/file.store"], "is a file, not a store directory"),
    # a zarr group arraystore did not write is a foreign store (issue 18): read-only
    Case("group-rm", ["rm", "{w}/group.store", "n"], "is open read-only"),
    Case(
        "group-create",
        ["create", "{w}/group.store", "n", "--shape", "3", "--dtype", "f8"],
        "is open read-only",
    ),
    Case("plain-dir-ls", ["ls", "{w}/plain"], "not an arraystore store"),
    Case(
        "plain-dir-create",
        ["create", "{w}/plain", "n", "--shape", "3", "--dtype", "f8"],
        "not an arraystore store",
    ),
    Case("array-as-store", ["ls", "{s}/zex"], "zarr group but not an arraystore store"),
    # ---------------------------------------------------- corrupt arrays
    Case(
        "sidecar-garbage",
        ["info", "{s}", "ex"],
        "ex/zarr.json is not valid JSON",
        setup=_sidecar("ex", b"\x00\xff garbage {{"),
    ),
    Case(
        "sidecar-garbage-cast",
        ["cast", "{s}", "ex", "--to", "f4"],
        "ex/zarr.json is not valid JSON",
        setup=_sidecar("ex", "{"),
    ),
    Case(
        "sidecar-list",
        ["stats", "{s}", "ex"],
        "must hold a JSON object",
        setup=_sidecar("ex", "[1, 2]"),
    ),
    Case(
        "sidecar-version",
        ["info", "{s}", "ex"],
        "unsupported arraystore format version 99",
        setup=_sidecar("ex", _update(format=99)),
    ),
    Case(
        "sidecar-version-zarr",
        ["stats", "{s}", "zex"],
        "format version 'one'",
        setup=_sidecar("zex", _update(format="one")),
    ),
    Case(
        "sidecar-unknown-key",
        ["stats", "{s}", "ex"],
        "unknown metadata keys.*surprise",
        setup=_sidecar("ex", _update(surprise=1)),
    ),
    Case("sidecar-huge", ["info", "{s}", "ex"], "larger than 16777216 bytes", setup=_huge_sidecar),
    Case(
        "sidecar-object-dtype",
        ["info", "{s}", "ex"],
        "object dtype",
        setup=_sidecar("ex", _update(dtype="O")),
    ),
    Case(
        "sidecar-backend",
        ["info", "{s}", "ex"],
        "unknown backend 'hdf5'",
        setup=_sidecar("ex", _update(backend="hdf5")),
    ),
    Case(
        "npy-truncated-info",
        ["info", "{s}", "ex"],
        "c/0 is .* bytes.*truncated",
        setup=_truncate_npy,
    ),
    Case(
        "npy-truncated-cast", ["cast", "{s}", "ex", "--to", "f4"], "truncated", setup=_truncate_npy
    ),
    Case("npy-missing", ["stats", "{s}", "ex"], "c/0 is missing", setup=_no_npy),
    Case("zarr-chunk-garbage", ["stats", "{s}", "zex"], "c/0", setup=_garbage_chunk),
    # zarr metadata / chunks that disagree with ours (issue 15, items 4-6)
    Case(
        "zarr-chunk-missing",
        ["stats", "{s}", "zex"],
        "chunk 'v/c/0/0' missing",
        setup=_zex_chunk("v/c/0/0"),
    ),
    Case(
        "zarr-chunk-is-dir",
        ["stats", "{s}", "zex", "--field", "id"],
        "chunk 'id/c/0' missing",
        setup=_zex_chunk("id/c/0", as_dir=True),
    ),
    Case(
        "zarr-last-chunk-missing",
        ["info", "{s}", "zex"],
        "chunk 'id/c/1' missing",
        setup=_zex_chunk("id/c/1"),
    ),
    *[
        Case(
            f"zarr-data-type-{cmd[0]}",
            [cmd[0], "{s}", "zex", *cmd[1:]],
            r"zex/id/zarr.json: data_type int32 disagrees with our metadata \(dtype int64\)",
            setup=_zarr_doc(("id", _update(data_type="int32"))),
        )
        for cmd in (["stats"], ["info"], ["cast", "--to", "id:i4"])
    ],
    Case(
        "zarr-data-type-unknown",
        ["stats", "{s}", "zex"],
        "zex/v/zarr.json: unknown zarr data_type 'float128'",
        setup=_zarr_doc(("v", _update(data_type="float128"))),
    ),
    Case(
        "zarr-checksum-disagrees",
        ["stats", "{s}", "zex"],
        "codecs disagree with our metadata, which says checksums",
        setup=_sidecar("zex", _update(checksum=True)),
    ),
    *[
        Case(
            f"zarr-shape-{cmd[0]}-{tag}",
            [cmd[0], "{s}", "zex", *cmd[1:]],
            match,
            setup=_zex_shape(n, chunk),
        )
        for cmd in (["stats"], ["cast", "--to", "id:i4"], ["info"])
        for tag, n, chunk, match in (
            ("1e15", 10**15, 2, r"has over 2\*\*32 chunks"),
            ("1e30", 10**30, 10**29, "impossibly large"),
            ("float", 4.0, 2, r"shape \[4.0\] must be a list of integers >= 0"),
            ("negative", -4, 2, "must be a list of integers >= 0"),
            ("chunk-zero", 4, 0, r"chunk shape \[0\] must be a list of integers >= 1"),
            ("grown", 10**9, 1, "chunk 'id/c/999999999' missing"),
        )
    ],
    # ------------------------------------------------------------ --from
    Case(
        "from-object",
        ["create", "{s}", "n", "--from", "{w}/files/object.npy"],
        "object dtype, which arraystore never loads",
    ),
    Case(
        "from-pickle",
        ["create", "{s}", "n", "--from", "{w}/files/pickle.npy"],
        r"not a valid \.npy file",
    ),
    Case(
        "from-truncated", ["create", "{s}", "n", "--from", "{w}/files/truncated.npy"], "truncated"
    ),
    Case(
        "from-missing",
        ["create", "{s}", "n", "--from", "{w}/files/missing.npy"],
        "missing.npy is missing",
    ),
    Case(
        "from-shape-mismatch",
        ["create", "{s}", "n", "--from", "{w}/files/f8.npy", "--shape", "11"],
        r"shape \(10,\), not \(11,\)",
    ),
    Case(
        "from-and-fill",
        ["create", "{s}", "n", "--from", "{w}/files/f8.npy", "--fill", "ones"],
        "only one of",
    ),
    Case(
        "from-directory",
        ["create", "{s}", "n", "--from", "{w}/files/adir.npy"],
        "adir.npy",
        bug="BUG arraystore/backends/memmap.py:63 read_header catches only FileNotFoundError: "
        "'--from DIR' raises IsADirectoryError (traceback); map OSError to CorruptData",
    ),
    # ----------------------------------------------------------- locks
    Case(
        "locked-cast",
        ["cast", "{s}", "ex", "--to", "f4"],
        r"'ex' is locked by a writer \(PID 1\)",
        setup=_live_lock,
    ),
    Case("locked-rm", ["rm", "{s}", "ex"], r"locked by a writer \(PID 1\)", setup=_live_lock),
    Case(
        "locked-overwrite",
        ["create", "{s}", "ex", "--shape", "3", "--dtype", "f8", "--overwrite"],
        r"locked by a writer \(PID 1\)",
        setup=_live_lock,
    ),
    # ------------------------------------------------------ click usage
    Case("usage-command", ["bogus"], "No such command 'bogus'"),
    Case(
        "usage-missing-arg", ["info", "{s}"], r"is a store: name one of its arrays \(STORE NAME\)"
    ),
    Case("usage-missing-arg-mv", ["mv", "{s}", "a"], "Missing argument 'NEW'"),
    Case("usage-extra-arg", ["ls", "{s}", "extra"], r"unexpected extra argument \(extra\)"),
    Case(
        "usage-float",
        ["cast", "{s}", "ex", "--to", "f4", "--rtol", "x"],
        "'--rtol': 'x' is not a valid float",
    ),
]


def _params() -> list[Any]:
    out = []
    for c in CASES:
        open_bug = c.bug and any(k in c.bug for k in OPEN_BUGS)
        marks = [pytest.mark.xfail(strict=True, reason=c.bug)] if open_bug else []
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


def test_corpus_is_large_and_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", _params())
def test_bad_input(ws: Path, capsys: pytest.CaptureFixture[str], case: Case) -> None:
    if case.setup is not None:
        case.setup(ws)
    args = [a.replace("{s}", str(ws / "s.store")).replace("{w}", str(ws)) for a in case.args]
    try:
        before = tree_hash(ws)
        code, _, err = run_cli(args, capsys)
        assert_one_line_error(code, err, case.match)
        assert_same_tree(before, tree_hash(ws))
    finally:
        while _LOCK_FDS:
            os.close(_LOCK_FDS.pop())


# ------------------------------------------------------------- read-only

WRITE_COMMANDS = [
    ["create", "{s}", "n", "--shape", "3", "--dtype", "f8"],
    ["create", "{s}", "ex", "--shape", "3", "--dtype", "f8", "--overwrite"],
    ["rm", "{s}", "ex"],
    ["mv", "{s}", "ex", "y"],
    ["cast", "{s}", "ex", "--to", "f4"],
]


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root ignores directory permissions (see test_read_only_api_refuses_writes)",
)
@pytest.mark.parametrize(
    "args", WRITE_COMMANDS, ids=["create", "create-overwrite", "rm", "mv", "cast"]
)
def test_read_only_store_dir(ws: Path, capsys: pytest.CaptureFixture[str], args: list[str]):
    store = ws / "s.store"
    mode = store.stat().st_mode
    os.chmod(store, 0o555)
    try:
        before = tree_hash(ws)
        code, _, err = run_cli([a.replace("{s}", str(store)) for a in args], capsys)
        assert_one_line_error(code, err, "[Pp]ermission denied|read-only")
        assert_same_tree(before, tree_hash(ws))
    finally:
        os.chmod(store, mode)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions"
)
def test_read_only_store_dir_still_reads(ws: Path, capsys: pytest.CaptureFixture[str]):
    store = ws / "s.store"
    os.chmod(store, 0o555)
    try:
        for args in (["ls", str(store)], ["info", str(store), "ex"], ["stats", str(store), "ex"]):
            code, _, err = run_cli(args, capsys)
            assert code == 0, err
    finally:
        os.chmod(store, 0o755)


def test_permission_denied_is_one_line(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulates a read-only directory (works as root too): Path.mkdir fails with EACCES."""
    import errno

    def denied(self: Path, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    before = tree_hash(ws)
    code, _, err = run_cli(
        ["create", str(ws / "s.store"), "n", "--shape", "3", "--dtype", "f8"], capsys
    )
    assert_one_line_error(code, err, "Permission denied")
    assert_same_tree(before, tree_hash(ws))


def test_read_only_api_refuses_writes(ws: Path) -> None:
    """``open(path, mode="r")``: every writing entry point raises ReadOnlyError (the API
    counterpart of a read-only directory, which root cannot get through chmod)."""
    from arraystore.ops.cast import cast

    store = ws / "s.store"
    ro = arraystore.open(store, mode="r")
    before = tree_hash(ws)
    attempts: list[Callable[[], Any]] = [
        lambda: ro.lock("ex").__enter__(),
        lambda: cast(ro, "ex", "f4"),
        lambda: cast(ro, "zex", "auto", out="zex2"),
        lambda: ro.create("ex", 3, "f8", overwrite=True),
        lambda: ro.delete("zex"),
        lambda: ro.rename("zex", "ex", overwrite=True),
    ]
    for attempt in attempts:
        with pytest.raises(ReadOnlyError, match="read-only"):
            attempt()
    assert_same_tree(before, tree_hash(ws))
    # a dry run only reads: allowed
    assert cast(ro, "ex", "f4", dry_run=True).dry_run


def test_read_only_api_verify_repair(ws: Path) -> None:
    from arraystore.ops.verify import verify

    store = ws / "s.store"
    (store / ".ex.tmp-1-abcdef12").mkdir()
    (store / ".ex.lock").write_text("999999999")
    ro = arraystore.open(store, mode="r")
    before = tree_hash(ws)
    with pytest.raises(ReadOnlyError):
        verify(ro, repair=True)
    assert_same_tree(before, tree_hash(ws))
