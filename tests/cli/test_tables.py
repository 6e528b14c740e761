"""CLI tables never cut a number short ("…"): in an 80-column pipe and a 40-column terminal,
every number of ls, info, stats and the cast report is printed whole (issue 19, item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.engine.memory import format_size
from arraystore.testing import run_cli

WIDTHS = [80, 40]


def _cli(args: list[str]) -> str:
    code, out, err = run_cli(args)
    assert code == 0, err
    return out


def _whole(out: str, expected: list[str]) -> None:
    assert "…" not in out, out
    missing = [e for e in expected if e not in out]
    assert not missing, f"{missing} not printed whole in:\n{out}"


def _numbers(doc: dict[str, object], keys: tuple[str, ...]) -> list[str]:
    """The scalar numbers of ``doc[key]`` as the tables print them (``%.6g`` floats)."""
    out = []
    for k in keys:
        v = doc.get(k)
        if isinstance(v, float):
            out.append(f"{v:.6g}")
        elif isinstance(v, int):
            out.append(str(v))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("tables") / "t.store")
    rng = np.random.default_rng(7)
    s = arraystore.open(path, mode="a")
    # wide values: large offsets with digits a float32 cannot keep, tiny ones too
    prices = 320000.0 + rng.random(20000) * 1e-3
    s.create("a_rather_long_array_name", shape=(20000,), dtype="f8", backend="zarr")[:] = prices
    rec = np.zeros(5000, dtype=[("qty", "i8"), ("tiny", "f8"), ("big", "f8")])
    rec["qty"] = rng.integers(-3_000_000_000, 3_000_000_000, 5000)
    rec["tiny"] = rng.random(5000) * 1e-12
    rec["big"] = 2.3785e15 + rng.random(5000) * 1e3
    s.create("records", shape=(5000,), dtype=rec.dtype, backend="memmap")[:] = rec
    return path


@pytest.mark.parametrize("width", WIDTHS)
def test_cast_report_numbers_whole(store: str, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    for name, to in [("a_rather_long_array_name", "f4"), ("records", "qty:i4,tiny:f4,big:f4")]:
        args = ["cast", store, name, "--to", to, "--dry-run", "--casting", "unsafe"]
        doc = json.loads(_cli([*args, "--json"]))
        keys = ("out_of_range", "nan_inf", "rounded", "clipped", "max_abs_err", "max_rel_err")
        expected = [n for d in doc["fields"].values() for n in _numbers(d, keys)]
        assert any(len(e) >= 9 for e in expected)  # numbers a narrow column would cut
        _whole(_cli(args), expected)


@pytest.mark.parametrize("width", WIDTHS)
def test_stats_numbers_whole(store: str, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    args = ["stats", store, "records", "--quantiles", "0.5,0.99"]
    doc = json.loads(_cli([*args, "--json"]))
    expected = []
    for d in doc["fields"].values():
        expected += _numbers(d, ("count", "sum", "mean", "std", "min", "max"))
        expected += [f"{v:.6g}" for v in d["quantiles"].values()]
    _whole(_cli(args), expected)


@pytest.mark.parametrize("width", WIDTHS)
def test_ls_info_numbers_whole(store: str, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    rows = json.loads(_cli(["ls", store, "--json"]))
    expected = [format_size(r["nbytes"]) for r in rows] + [str(r["shape"][0]) for r in rows]
    _whole(_cli(["ls", store]), expected)
    doc = json.loads(_cli(["info", store, "records", "--json"]))
    expected = [format_size(doc["nbytes"]), format_size(doc["stored_bytes"]), "(5000,)"]
    _whole(_cli(["info", store, "records"]), expected)


def test_wide_terminal_keeps_one_row_per_array(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A terminal wide enough prints the usual table: one line per array."""
    monkeypatch.setenv("COLUMNS", "120")
    store = str(tmp_path / "w.store")
    _cli(["create", store, "grid", "--shape", "500000,64", "--dtype", "f8"])
    out = _cli(["ls", store])
    assert out.splitlines()[1].split() == [
        "grid",
        "500000×64",
        "f8",
        "memmap",
        "none",
        "244.1",
        "MiB",
    ]
