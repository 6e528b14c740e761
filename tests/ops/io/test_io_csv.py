"""CSV import/export: inferred and given types, null policy, errors with line numbers."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

import arraystore
from arraystore.ops import interop
from arraystore.testing import backend_params, listing

pa = pytest.importorskip("pyarrow")
pcsv = pytest.importorskip("pyarrow.csv")


def _lines(n: int = 3000) -> list[str]:
    out = ["id,price,qty,name,flag,big"]
    for i in range(n):
        price = "" if i % 7 == 0 else f"{i * 0.25}"
        qty = "NA" if i % 11 == 0 else str(i - 1000)
        out.append(f"{i},{price},{qty},name {i},{'true' if i % 2 else 'false'},{2**63 + i}")
    return out


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "zstd:1")))
def test_csv_round_trip_equals_source(store, tmp_path, case):
    src = _write(tmp_path / "a.csv", _lines())
    arr = interop.import_file(store, "a", src, block_size=4096, chunks=500, **case.kwargs)
    assert arr.dtype == np.dtype(
        [
            ("id", "i8"),
            ("price", "f8"),
            ("qty", "i8"),
            ("qty__valid", "?"),
            ("name", "U9"),
            ("flag", "?"),
            ("big", "u8"),
        ]
    )
    got = arr[...]
    i = np.arange(3000)
    np.testing.assert_array_equal(np.isnan(got["price"]), i % 7 == 0)
    np.testing.assert_array_equal(got["qty__valid"], i % 11 != 0)
    assert (got["qty"][i % 11 == 0] == 0).all()
    assert got["big"][5] == 2**63 + 5 and got["name"][12] == "name 12"
    out = tmp_path / "out.csv"
    interop.export_file(arr, out)
    src_t, out_t = pcsv.read_csv(src), pcsv.read_csv(out)
    assert out_t.schema == src_t.schema
    assert out_t.equals(src_t)  # values, types, nulls
    # and the export re-imports to the same array
    back = interop.import_file(store, "b", out, **case.kwargs)
    assert back.dtype == arr.dtype
    for f in arr.fields:
        np.testing.assert_array_equal(back[f][...], got[f])


def test_given_dtypes_tsv_no_header_and_gzip(store, tmp_path):
    text = "1\t2.5\tx\n2\t\ty\n"
    (tmp_path / "a.tsv").write_text(text)
    with gzip.open(tmp_path / "b.csv.gz", "wt") as f:
        f.write("p,q\n1,2\n3,4\n")
    a = interop.import_file(store, "a", tmp_path / "a.tsv", header=False, dtype="f0:i2,f1:f4,f2:U3")
    assert a.dtype == np.dtype([("f0", "i2"), ("f1", "f4"), ("f2", "U3")])
    assert a["f1"][0] == np.float32(2.5) and np.isnan(a["f1"][1])
    b = interop.import_file(store, "b", tmp_path / "b.csv.gz", dtype="u1")
    assert b.dtype == np.dtype([("p", "u1"), ("q", "u1")]) and b["q"][1] == 4


def test_malformed_values_name_their_lines(store, tmp_path):
    lines = _lines(200)
    lines[17] = "16,abc,1,x,true,1"  # line 18 of the file
    lines[41] = "40,1..5,1,x,true,1"  # line 42
    src = _write(tmp_path / "bad.csv", lines)
    before = listing(store.path)
    with pytest.raises(arraystore.InvalidArgument) as err:
        interop.import_file(store, "b", src, dtype="price:f8")
    msg = str(err.value)
    assert msg.startswith("line 18: cannot parse 'abc' as f8 in column 'price'")
    assert "line 42 ('1..5')" in msg and "errors='coerce'" in msg
    assert listing(store.path) == before  # no array, no spool, no lock left behind
    arr = interop.import_file(store, "b", src, dtype="price:f8", errors="coerce")
    report = {c["column"]: c for c in arr.attrs["import"]["columns"]}
    assert report["price"]["coerced"] == 2
    assert np.isnan(arr["price"][16]) and np.isnan(arr["price"][40])
    assert arr["price"][15] == 15 * 0.25


def test_errors_past_the_first_block_blank_lines_and_ranges(store, tmp_path):
    lines = _lines(2000)
    lines.insert(5, "")  # blank lines are not rows; line numbers still count them
    lines[1500] = "1499,oops,1,x,true,1"
    src = _write(tmp_path / "late.csv", lines)
    with pytest.raises(arraystore.InvalidArgument, match=r"^line 1501: cannot parse 'oops' as f8"):
        interop.import_file(store, "l", src, block_size=4096)
    with pytest.raises(arraystore.InvalidArgument, match=r"^line 3: cannot parse '-999' as u2"):
        interop.import_file(store, "r", _write(tmp_path / "r.csv", _lines(20)), dtype="qty:u2")


def test_int_column_widened_to_float_when_a_later_block_has_decimals(store, tmp_path):
    lines = _lines(2000)
    lines[1800] = "1799,1.0,2.5,x,true,1"
    arr = interop.import_file(store, "w", _write(tmp_path / "w.csv", lines), block_size=4096)
    assert arr.dtype["qty"] == np.dtype("f8") and "qty__valid" not in arr.fields
    assert arr["qty"][1799] == 2.5 and arr.attrs["import"]["widened"] == ["qty"]


def test_rows_with_wrong_cell_counts(store, tmp_path):
    lines = _lines(50)
    lines[30] = "29,1,1,x,true,1,extra"
    src = _write(tmp_path / "r.csv", lines)
    with pytest.raises(arraystore.InvalidArgument, match=r"^line 31: expected 6 cells, got 7"):
        interop.import_file(store, "r", src)
    arr = interop.import_file(store, "r", src, errors="coerce")
    assert arr.shape == (49,) and arr.attrs["import"]["skipped_rows"] == 1


def test_strings_given_width_columns_and_names(store, tmp_path):
    src = _write(tmp_path / "s.csv", ["Unit Price,c,text", "1,2,hello", "3,4,hi"])
    with pytest.raises(arraystore.InvalidArgument, match=r"line 2: cannot parse 'hello' as U3"):
        interop.import_file(store, "s", src, dtype={"text": "U3"})
    s = interop.import_file(store, "s", src, dtype={"text": "U3"}, errors="coerce")
    assert s.dtype.names == ("Unit_Price", "c", "text", "text__valid")
    assert s["text"][...].tolist() == ["", "hi"]
    out = tmp_path / "o.csv"
    interop.export_file(s, out)
    assert out.read_text().splitlines()[0] == '"Unit Price","c","text"'
    only = interop.import_file(store, "o", src, columns=["text"])
    assert only.dtype == np.dtype([("text", "U5")])


def test_empty_and_header_only_files(store, tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(arraystore.InvalidArgument, match="empty"):
        interop.import_file(store, "e", tmp_path / "e.csv")
    h = interop.import_file(store, "h", _write(tmp_path / "h.csv", ["a,b"]), dtype="b:i4")
    assert h.shape == (0,) and h.dtype == np.dtype([("a", "f8"), ("b", "i4")])


def test_a_header_that_is_not_utf8_is_a_one_line_error(store, tmp_path):
    """A UTF-16 CSV (or latin-1 names) raised pyarrow's raw UnicodeDecodeError (a
    traceback from 'arraystore import'); the store is left unchanged."""
    (tmp_path / "u16.csv").write_bytes("x,y\n1,2\n".encode("utf-16"))
    (tmp_path / "l1.csv").write_bytes("pr\xe9,y\n1,2\n".encode("latin-1"))
    before = listing(store.path)
    for src in ("u16.csv", "l1.csv"):
        with pytest.raises(arraystore.InvalidArgument, match="header line is not UTF-8"):
            interop.import_file(store, "u", tmp_path / src)
    assert listing(store.path) == before


def test_compressed_csv_export_and_unknown_options(store, tmp_path):
    arr = store.create("x", 50, "a:i4,b:f8", fill="range")
    out = interop.export_file(arr, tmp_path / "x.csv.gz", delimiter=";")
    with gzip.open(out, "rt") as f:
        assert f.readline().strip() == '"a";"b"'
    assert pcsv.read_csv(out, parse_options=pcsv.ParseOptions(delimiter=";")).num_rows == 50
    with pytest.raises(arraystore.InvalidArgument, match="unknown csv export options"):
        interop.export_file(arr, tmp_path / "y.csv", quoting="all")
    with pytest.raises(arraystore.InvalidArgument, match="unknown CSV options"):
        interop.import_file(store, "y", out, quoting="all")


def test_fast_pass_equals_the_exact_pass(store, tmp_path, monkeypatch):
    from arraystore.ops.io import csv as io_csv

    lines = _lines(3000)
    lines[10] = "9, 2.5 ,7,x,true,3"  # blanks around numbers: the fast pass falls back
    src = _write(tmp_path / "a.csv", lines)
    clean = _write(tmp_path / "b.csv", _lines(3000))
    spec = "price:f4,qty:i2"
    fast_a = interop.import_file(store, "fa", src, dtype=spec, block_size=4096)
    fast_b = interop.import_file(store, "fb", clean, dtype=spec, block_size=4096)

    def no_fast(*args, **kwargs):
        raise io_csv._Fallback("forced")

    monkeypatch.setattr(io_csv, "_spool_fast", no_fast)
    exact_a = interop.import_file(store, "ea", src, dtype=spec, block_size=4096)
    exact_b = interop.import_file(store, "eb", clean, dtype=spec, block_size=4096)
    for fast, exact in ((fast_a, exact_a), (fast_b, exact_b)):
        assert fast.dtype == exact.dtype
        for f in fast.fields:
            np.testing.assert_array_equal(fast[f][...], exact[f][...])
        got = {c["column"]: c["nulls"] for c in fast.attrs["import"]["columns"]}
        assert got == {c["column"]: c["nulls"] for c in exact.attrs["import"]["columns"]}
    assert fast_a["price"][9] == np.float32(2.5)


def _signbits(values):
    return np.signbit(np.asarray(values, dtype=np.float64)).tolist()


@pytest.mark.parametrize("dtype", ["a:f8", "a:f4", None])
def test_numbers_a_float_column_cannot_hold_are_bad_cells(store, tmp_path, dtype):
    """Issue 15 #16: a 1M-digit integer became inf and 99999999999999999999999 became
    1e+23, silently. Now: overflow to inf (of a number written with digits) and integer
    literals float64 cannot hold exactly are parse failures; 'inf', -0 and 2**64 are fine."""
    cells = ["1.5", "-0", "99999999999999999999999", "1e999", "9" * 1_000_000, "inf"]
    cells += ["18446744073709551616", "-1e400", "0.1", " -0.0 "]
    lines = ["a,b"] + [f"{c},{i}" for i, c in enumerate(cells)]
    src = _write(tmp_path / "big.csv", lines)
    with pytest.raises(arraystore.InvalidArgument) as info:
        interop.import_file(store, "x", src, dtype=dtype)
    msg = str(info.value)
    assert "line 4: cannot parse '99999999999999999999999'" in msg and "column 'a'" in msg
    assert "line 5 ('1e999')" in msg and "(1000000 characters)" in msg
    assert "\n" not in msg and len(msg) < 1000
    arr = interop.import_file(store, "y", src, dtype=dtype, errors="coerce")
    col = next(c for c in arr.attrs["import"]["columns"] if c["column"] == "a")
    assert col["coerced"] == 4
    got = arr["a"][...]
    bad = [2, 3, 4, 7]
    assert np.isnan(got[bad]).all()
    keep = [i for i in range(len(cells)) if i not in bad]
    want = np.array([float(cells[i]) for i in keep], dtype=got.dtype)
    np.testing.assert_array_equal(got[keep], want)
    assert _signbits(got[keep]) == _signbits(want)  # -0 stays -0.0


def test_big_integers_keep_the_fast_pass_honest(store, tmp_path, monkeypatch):
    """The fast pass (pyarrow's float parser) hands any value of magnitude >= 2**53 to the
    exact pass, so it reports the same bad cells."""
    from arraystore.ops.io import csv as io_csv

    src = _write(tmp_path / "b.csv", ["a", "1", "9007199254740993", "2.5"])
    calls = []
    real = io_csv._spool_exact
    monkeypatch.setattr(io_csv, "_spool_exact", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.raises(arraystore.InvalidArgument, match="line 3: cannot parse"):
        interop.import_file(store, "x", src, dtype="a:f8")
    assert calls


@pytest.mark.parametrize("fast", [True, False])
def test_integer_cells_are_decimal_as_int_reads_them(store, tmp_path, monkeypatch, fast):
    """Q2: pyarrow's integer parser read ``0x10`` as 16 and refused ``+5`` (then inferred
    float64, or a bad cell with dtype i8); int() and numpy do the opposite. Integer cells
    are decimal ASCII digits with an optional sign (blanks around); anything else is a bad
    cell, in the fast pass and the exact pass alike."""
    import re

    from arraystore.ops.io import csv as io_csv

    if not fast:

        def no_fast(*args, **kwargs):
            raise io_csv._Fallback("forced")

        monkeypatch.setattr(io_csv, "_spool_fast", no_fast)
    hexes = _write(tmp_path / "h.csv", ["x", "0x10", "0X1F"])
    arr = interop.import_file(store, "h", hexes)  # not integers: text, as pyarrow's 0o7
    assert arr.dtype["x"].kind == "U" and arr["x"][...].tolist() == ["0x10", "0X1F"]
    with pytest.raises(arraystore.InvalidArgument, match=r"^line 2: cannot parse '0x10' as i8"):
        interop.import_file(store, "h2", hexes, dtype="x:i8")
    plus = _write(tmp_path / "p.csv", ["x", "+5", "7"])
    for dtype in (None, "x:i8", "x:u1"):
        arr = interop.import_file(store, "p", plus, dtype=dtype, overwrite=True)
        assert arr.dtype["x"] == np.dtype(dtype[2:] if dtype else "<i8")
        assert arr["x"][...].tolist() == [5, 7]
    cells = ["+5", " -3 ", "0x10", "0X1F", "0o7", "0b1", "1_000", "\u0663", "007", "-0", "+-1"]
    cells += ["0x", "-0x10", "18446744073709551615", "1e3", "5.0", "NA", "+ 5"]
    src = _write(tmp_path / "m.csv", ["i,u"] + [f"{c},{c}" for c in cells])
    for dt, lo, hi in (("i8", -(2**63), 2**63), ("u8", 0, 2**64)):
        arr = interop.import_file(store, dt, src, dtype=dt, errors="coerce")
        for field in "iu":
            got = arr[field][...].tolist()
            valid = arr[f"{field}__valid"][...].tolist()
            for cell, g, v in zip(cells, got, valid, strict=True):
                ok = re.fullmatch(r"\s*[+-]?[0-9]+\s*", cell) and lo <= int(cell) < hi
                assert (v, g if v else None) == ((True, int(cell)) if ok else (False, None)), cell
    later = _write(tmp_path / "l.csv", ["x"] + [str(i) for i in range(3000)] + ["0x10"])
    with pytest.raises(arraystore.InvalidArgument, match=r"cannot parse '0x10' as i8.*dtype="):
        interop.import_file(store, "l", later, block_size=1024)
