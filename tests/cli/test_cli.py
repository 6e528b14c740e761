"""CLI: commands through click's CliRunner, one end-to-end subprocess, the examples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.testing import run_cli

ROOT = Path(__file__).resolve().parents[2]


def test_create_ls_info_rm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "c.store")
    code, out, err = run_cli(
        [
            "create",
            store,
            "trades",
            "--shape",
            "1000",
            "--dtype",
            "id:i8,price:f8,vec:3f4",
            "--fill",
            "random",
            "--backend",
            "zarr",
            "--codec",
            "zstd:1",
            "--chunks",
            "300",
        ],
        capsys,
    )
    assert code == 0, err
    assert "created trades" in out
    code, out, _ = run_cli(
        ["create", store, "grid", "--shape", "100,8", "--dtype", "f4", "--fill", "range"], capsys
    )
    assert code == 0
    code, out, _ = run_cli(["ls", store, "--json"], capsys)
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["grid", "trades"]
    assert rows[1]["dtype"] == "id:i8,price:f8,vec:3f4"
    code, out, _ = run_cli(["info", store, "trades", "--json"], capsys)
    doc = json.loads(out)
    assert doc["chunks"] == [300] and doc["codec"] == "zstd:1" and doc["nbytes"] == 1000 * 28
    assert [f["name"] for f in doc["fields"]] == ["id", "price", "vec"]
    code, out, _ = run_cli(["info", store, "trades"], capsys)
    assert code == 0 and "field vec" in out and "on disk" in out
    code, out, _ = run_cli(["ls", store], capsys)
    assert "trades" in out and "grid" in out
    arr = arraystore.open(store)["grid"]
    np.testing.assert_array_equal(arr[...], np.arange(800, dtype="f4").reshape(100, 8))
    code, out, _ = run_cli(["mv", store, "grid", "grid2"], capsys)
    assert code == 0 and arraystore.open(store).names() == ["grid2", "trades"]
    code, out, _ = run_cli(["rm", store, "grid2"], capsys)
    assert code == 0 and arraystore.open(store).names() == ["trades"]


def test_rm_is_like_posix_rm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``rm STORE a b d`` (issue 15): every named array that exists goes, then each
    missing names are named on one error line (exit 1; ``-f`` / ``--missing-ok``: exit 0,
    silent);
    a name given twice goes once, without an error; a bad name removes nothing."""
    store = tmp_path / "s.store"
    s = arraystore.open(store, mode="a")
    for n in "abgek":
        s.create(n, data=np.arange(3.0))
    code, out, err = run_cli(["rm", str(store), "a", "d", "b", "a", "x"], capsys)
    assert code == 1 and out.splitlines() == ["removed a", "removed b"], out
    assert err.splitlines() == [f"error: no arrays 'd', 'x' in {store}"], err
    assert s.names() == ["e", "g", "k"]
    for flag in ("-f", "--missing-ok"):
        code, out, err = run_cli(["rm", str(store), flag, "a", "g", "g"], capsys)
        assert (code, out, err) == (0, "removed g\n", ""), (code, out, err)
        s.create("g", data=np.arange(3.0))
    code, out, err = run_cli(["rm", str(store), "e", "../x"], capsys)
    assert code == 1 and "'../x' must not contain" in err and s.names() == ["e", "g", "k"]
    with pytest.raises(arraystore.errors.ArrayNotFound):  # the Python API stays strict
        s.delete("a")


def test_create_from_npy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = np.arange(60, dtype=">i4").reshape(20, 3)
    np.save(tmp_path / "src.npy", src)
    store = str(tmp_path / "s.store")
    code, _, err = run_cli(
        ["create", store, "a", "--from", str(tmp_path / "src.npy"), "--chunks", "7,3"], capsys
    )
    assert code == 0, err
    arr = arraystore.open(store)["a"]
    assert arr.dtype == np.dtype("<i4")
    np.testing.assert_array_equal(arr[...], src)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "{s}", "x", "--shape", "10", "--dtype", "nope"], "unknown dtype 'nope'"),
        (["create", "{s}", "x", "--shape", "10", "--dtype", "O"], "object dtype"),
        (["create", "{s}", "x", "--shape", "-3", "--dtype", "f8"], "negative"),
        (
            ["create", "{s}", "x", "--shape", "10", "--dtype", "f8", "--chunks", "0"],
            "chunk sizes must be >= 1",
        ),
        (
            ["create", "{s}", "x", "--shape", "10", "--dtype", "f8", "--backend", "hdf5"],
            "unknown backend 'hdf5'",
        ),
        (
            [
                "create",
                "{s}",
                "x",
                "--shape",
                "10",
                "--dtype",
                "f8",
                "--backend",
                "zarr",
                "--codec",
                "zip",
            ],
            "unknown codec 'zip'",
        ),
        (["create", "{s}", "../x", "--shape", "10", "--dtype", "f8"], "must not contain"),
        (["create", "{s}", "x", "--dtype", "f8"], "needs --shape"),
        (
            ["create", "{s}", "x", "--shape", "10", "--dtype", "f8", "--fill", "pi"],
            "unknown fill 'pi'",
        ),
        (["info", "{s}", "missing"], "no array 'missing'"),
        (["create", "{s}", "x", "--shape", "10", "--dtype", "f8", "--bogus"], "No such option"),
    ],
)
def test_user_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    store = tmp_path / "e.store"
    arraystore.open(store, mode="a")
    before = sorted(os.listdir(store))
    code, _out, err = run_cli([a.format(s=store) for a in args], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert sorted(os.listdir(store)) == before  # nothing half-written


def test_existing_array_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "o.store")
    assert (
        run_cli(["create", store, "x", "--shape", "4", "--dtype", "f8", "--fill", "ones"], capsys)[
            0
        ]
        == 0
    )
    code, _, err = run_cli(["create", store, "x", "--shape", "4", "--dtype", "f8"], capsys)
    assert code == 1 and "already exists" in err
    assert (
        run_cli(
            [
                "create",
                store,
                "x",
                "--shape",
                "5",
                "--dtype",
                "i2",
                "--fill",
                "range",
                "--overwrite",
            ],
            capsys,
        )[0]
        == 0
    )
    np.testing.assert_array_equal(arraystore.open(store)["x"][...], np.arange(5, dtype="i2"))


def test_end_to_end_subprocess_and_fast_help(tmp_path: Path) -> None:
    exe = [sys.executable, "-m", "arraystore.cli"]
    store = str(tmp_path / "p.store")
    r = subprocess.run(
        [*exe, "create", store, "a", "--shape", "1000,4", "--dtype", "f8", "--fill", "random"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*exe, "info", store, "nope"], capture_output=True, text=True, check=False)
    assert r.returncode == 1 and r.stderr.startswith("error: no array 'nope'")
    # --help must not import the heavy modules (numpy is fine: ~0.1 s)
    code = (
        "import sys; from arraystore.cli import main\n"
        "try:\n main.main(['--help'])\nexcept SystemExit: pass\n"
        "print(sorted(m for m in ('zarr','numcodecs','rich') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_quickstart_example_runs(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "quickstart ok" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "{s}", "x", "--shape", "0x10", "--dtype", "f8"], "hexadecimal"),
        (["create", "{s}", "x", "--shape", "4,0X1", "--dtype", "f8"], "hexadecimal"),
        (["stats", "{s}", "a", "--quantiles", ""], "comma-separated numbers, got ''"),
        (["stats", "{s}", "a", "--quantiles", "0.5,,0.6"], "comma-separated numbers"),
        (["stats", "{s}", "a", "--quantiles", "0.5,"], "comma-separated numbers"),
        (["stats", "{s}", "a", "--quantiles", "nan"], "in [0, 1], got [nan]"),
        (["stats", "{s}", "a", "--quantiles", "0.2,1.5"], "in [0, 1], got [0.2, 1.5]"),
        (["stats", "{s}", "a", "--quantiles", "-0.1"], "in [0, 1]"),
        (["stats", "{s}", "--expr", "a * 2", "--quantiles", ""], "cannot be combined"),
        (["stats", "{s}", "a", "--hist", "²"], "--hist must be a number of bins"),
        # probe 2: ',' reduced over no axis at all (per-element stats), '0,,1' dropped the
        # empty item, '--1' was a traceback; non-ASCII digits as --shape refuses them
        (["stats", "{s}", "a", "--axis", ","], "--axis must be an integer"),
        (["stats", "{s}", "a", "--axis", "0,,1"], "--axis must be an integer"),
        (["stats", "{s}", "a", "--axis", "--1"], "--axis must be an integer"),
        (["stats", "{s}", "a", "--axis", "\u0660"], "--axis must be an integer"),
        (["stats", "{s}", "a", "--quantiles", "\u0660.5"], "comma-separated numbers"),
        # Q2: '' was a 0-d array, a non-ASCII digit a size, ',,' a dropped chunk item
        (["create", "{s}", "x", "--shape", ""], "bad shape '': empty"),
        (["create", "{s}", "x", "--shape", " "], "a 0-d array is --shape '()'"),
        (["create", "{s}", "x", "--shape", "3", "--memory", "\u0663MiB"], "invalid size"),
        (["stats", "{s}", "a", "--memory", "1\u0660MiB"], "invalid size"),
        (["create", "{s}", "x", "--shape", "3,3", "--chunks", "1,,1"], "'1,,1': empty item"),
        (["create", "{s}", "x", "--shape", "3,3", "--chunks", ",3"], "empty item"),
        (["import", "{s}", "x", "{d}"], "is a directory"),
        (["import", "{s}", "x", "{d}/missing.csv"], "no such file"),
        (["import", "{s}", "x", "{d}/big.csv"], "line 3: cannot parse '99999"),
        (
            [
                "create",
                "{s}",
                "x",
                "--shape",
                "3",
                "--dtype",
                "f8",
                "--backend",
                "zarr",
                "--codec",
                "zstd:²",
            ],
            "bad codec level",
        ),
    ],
)
def test_issue15_small_inputs_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Issue 15 #17 (and #16 on the CLI): each of these was accepted, misread or a
    traceback; now one ``error:`` line, exit 1, nothing written."""
    store = tmp_path / "e.store"
    arraystore.open(store, mode="a").create("a", shape=10, dtype="f8", fill="range")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "big.csv").write_text("a\n1\n" + "9" * 1_000_000 + "\n2\n")
    before = sorted(os.listdir(store))
    code, _out, err = run_cli([a.format(s=store, d=tmp_path / "d") for a in args], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0] and len(lines[0]) < 500
    assert sorted(os.listdir(store)) == before


def test_zero_d_shape_and_chunk_spellings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Q2: a 0-d array is ``--shape '()'`` (``''`` is refused); chunks may be written
    like a tuple, with a trailing comma; a tiny array runs under a tiny --memory."""
    store = tmp_path / "z.store"
    code, _out, err = run_cli(
        ["create", str(store), "z", "--shape", "()", "--fill", "ones"], capsys
    )
    assert code == 0, err
    assert arraystore.open(store)["z"].shape == ()
    args = ["create", str(store), "k", "--shape", "3,4", "--chunks", "(2,4,)", "--memory", "1KiB"]
    code, _out, err = run_cli([*args, "--fill", "range"], capsys)
    assert code == 0, err
    assert arraystore.open(store)["k"].chunks == (2, 4)
    code, out, err = run_cli(["stats", str(store), "k", "--memory", "1MiB", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["fields"]["k"]["sum"] == 66


def test_ls_flags_a_broken_array_and_lists_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One corrupt array used to fail ``ls`` for the whole store (issue 15, item 12)."""
    store = tmp_path / "s.store"
    s = arraystore.open(store, mode="a")
    s.create("good", (3,), "f8")
    s.create("meta", (3,), "f8", backend="zarr")
    s.create("zdtype", (3,), "f8", backend="zarr")
    (store / "meta" / "zarr.json").write_bytes(b"\x00 not json")
    doc = json.loads((store / "zdtype" / "zarr.json").read_text())
    doc["data_type"] = "int64"
    (store / "zdtype" / "zarr.json").write_text(json.dumps(doc))
    code, out, err = run_cli(["ls", str(store), "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["good", "meta", "zdtype"]
    assert "error" not in rows[0] and rows[0]["shape"] == [3]
    assert "meta/zarr.json is not valid JSON" in rows[1]["error"]
    assert "data_type int64 disagrees" in rows[2]["error"]
    assert err.count("\n") == 1 and "meta, zdtype" in err
    code, out, err = run_cli(["ls", str(store)], capsys)
    assert code == 0 and "good" in out and "meta (!)" in out and "zdtype (!)" in out, out
    assert "BROKEN" in out
    for name, match in (("meta", "not valid JSON"), ("zdtype", "disagrees")):
        code, _, err = run_cli(["info", str(store), name], capsys)
        assert code == 1 and err.startswith("error: ") and match in err
        assert err.count("\n") == 1


def test_verify_reports_and_rm_removes_folders_without_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder without our metadata was skipped by verify (ok) and rm refused it."""
    store = tmp_path / "s.store"
    s = arraystore.open(store, mode="a")
    s.create("good", (3,), "f8")
    s.create("lostmeta", (3,), "f8", backend="zarr")
    s.create("lostnpy", (3,), "f8")
    node = json.loads((store / "lostmeta" / "zarr.json").read_text())
    del node["attributes"]["arraystore"]  # zarr's own array metadata stays
    (store / "lostmeta" / "zarr.json").write_text(json.dumps(node))
    (store / "lostnpy" / "zarr.json").unlink()
    (store / "junk").mkdir()
    code, out, _ = run_cli(["verify", str(store)], capsys)
    assert code == 1, out
    assert "CORRUPT: lostmeta: not an array: its metadata (zarr.json attributes.arraystore)" in out
    assert "CORRUPT: lostnpy: not an array" in out
    assert "warning: junk: a folder that is not an array" in out
    for name in ("lostmeta", "lostnpy"):
        code, out, err = run_cli(["rm", str(store), name], capsys)
        assert code == 0 and f"removed {name}" in out, err
    code, out, _ = run_cli(["verify", str(store)], capsys)
    assert code == 0 and "warning: junk" in out, out  # only a warning: nothing lost
    code, out, _ = run_cli(["rm", str(store), "junk"], capsys)
    assert code == 0 and not (store / "junk").exists()
    (tmp_path / "outside").mkdir()
    (store / "link").symlink_to(tmp_path / "outside")
    for bad, match in (("link", "no array 'link'"), ("../outside", "must not contain")):
        code, _, err = run_cli(["rm", str(store), bad], capsys)
        assert code == 1 and match in err, err
    assert (tmp_path / "outside").is_dir() and sorted(os.listdir(store)) == [
        "good",
        "link",
        "zarr.json",
    ]


def test_create_dtype_defaults_to_float64_and_the_lost_chunk_repro(tmp_path, capsys):
    """Issue 15 item 4's command (no --dtype): f8 like numpy; a removed chunk is corrupt."""
    r = str(tmp_path / "r")
    args = ["create", r, "zz", "--shape", "1000,4", "--chunks", "100,4", "--fill", "range"]
    code, _, err = run_cli([*args, "--backend", "zarr", "--codec", "lz4", "--checksum"], capsys)
    assert code == 0, err
    assert arraystore.open(r)["zz"].dtype == np.dtype("f8")
    (tmp_path / "r" / "zz" / "c" / "3" / "0").unlink()
    code, out, err = run_cli(["verify", r], capsys)
    assert code == 1 and "chunk 'c/3/0' missing" in out + err
    code, _, err = run_cli(["stats", r, "zz"], capsys)
    assert code == 1 and err.startswith("error:") and "c/3/0" in err
