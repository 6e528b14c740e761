"""Rich tables the command line (:mod:`arraystore.cli`) prints: ls, stats and cast reports.

``ls`` lists what it can: an array whose metadata or data cannot be opened is one flagged
row (JSON: an ``"error"`` field) instead of failing the listing of the whole store.
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from arraystore.core.dtypes import dtype_to_spec
from arraystore.engine.memory import format_size
from arraystore.errors import ArrayStoreError


def _checksum_label(doc: dict[str, Any]) -> str:
    if not doc["checksum"]:
        return "off (verify cannot detect bit flips)"
    if doc["backend"] == "zarr":
        return "crc32c per chunk (zarr codec)"
    return "crc32c per 1 MiB block (data.crc32c)"


def ls_rows(store: Any) -> list[dict[str, Any]]:
    """One row per array of ``store``; a broken array's row holds ``name`` and ``error``."""
    rows: list[dict[str, Any]] = []
    for name in store.names():
        try:
            arr = store[name]
            row = {
                "name": name,
                "shape": list(arr.shape),
                "dtype": dtype_to_spec(arr.dtype),
                "backend": arr.backend,
                "codec": arr.codec,
                "nbytes": arr.nbytes,
            }
        except (ArrayStoreError, OSError) as exc:
            row = {"name": name, "error": " ".join(str(exc).split()) or type(exc).__name__}
        rows.append(row)
    return rows


def print_ls(rows: list[dict[str, Any]], store: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if not rows:
        click.echo(f"{store}: no arrays")
        return
    table = Table("name", "shape", "dtype", "backend", "codec", "size", box=None)
    for r in rows:
        if "error" in r:
            short = r["error"] if len(r["error"]) <= 70 else r["error"][:67] + "..."
            table.add_row(f"{escape(r['name'])} (!)", f"BROKEN: {escape(short)}", "", "", "", "")
            continue
        table.add_row(
            escape(r["name"]),
            "×".join(map(str, r["shape"])) or "()",
            r["dtype"],
            r["backend"],
            escape(r["codec"]),
            format_size(r["nbytes"]),
        )
    Console().print(table)


def warn_broken(rows: list[dict[str, Any]]) -> None:
    """One stderr line naming the arrays ``ls`` could not open (its exit status stays 0:
    the listing itself worked; ``verify`` is the command whose status reports damage)."""
    broken = [r["name"] for r in rows if "error" in r]
    if broken:
        click.echo(
            f"warning: {len(broken)} array(s) could not be opened: {', '.join(broken)} "
            "(see 'arraystore info' / 'arraystore verify')",
            err=True,
        )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return np.array2string(np.asarray(v), precision=4, threshold=8, edgeitems=3)
    return str(v)


def _print_stats(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for fname, d in doc["fields"].items():
        t = Table(
            "stat", "value", title=f"{doc['array']} · {fname}", title_justify="left", box=None
        )
        for k, v in d.items():
            if k == "quantiles":
                for q, val in v.items():
                    t.add_row(f"q{q}", _fmt(val))
            elif k == "histogram":
                t.add_row("histogram", " ".join(map(str, v["counts"])))
            else:
                t.add_row(k, _fmt(v))
        console.print(t)
    gbps = doc.get("gb_per_s")
    if gbps:
        console.print(
            f"read {format_size(doc['bytes_read'])} in {doc['seconds']:.2f} s ({gbps:.2f} GB/s)",
            style="dim",
        )


def _print_cast(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    title = f"{'plan (dry run)' if doc['dry_run'] else 'cast'}: {doc['array']}"
    if doc["out"] != doc["array"]:
        title += f" -> {doc['out']}"
    t = Table(
        "field",
        "from",
        "to",
        "verdict",
        "out of range",
        "NaN/inf",
        "rounded",
        "clipped",
        "max abs err",
        "max rel err",
        title=title,
        title_justify="left",
        box=None,
    )
    for fname, d in doc["fields"].items():
        verdict = "ok" if d["ok"] else ("would refuse" if doc["dry_run"] else "refused")
        t.add_row(
            fname,
            d["from"],
            d["to"],
            verdict,
            str(d.get("out_of_range", 0)),
            str(d.get("nan_inf", 0)),
            str(d.get("rounded", 0)),
            str(d.get("clipped", 0)),
            _fmt(d.get("max_abs_err", 0.0)),
            _fmt(d.get("max_rel_err", 0.0)),
        )
    console = Console()
    console.print(t)
    line = (
        f"{format_size(doc['bytes_before'])} -> {format_size(doc['bytes_after'])} "
        f"({doc['ratio']:.2f}× smaller)"
    )
    if doc.get("gb_per_s"):
        line += f" in {doc['seconds']:.2f} s ({doc['gb_per_s']:.2f} GB/s)"
    console.print(line)
