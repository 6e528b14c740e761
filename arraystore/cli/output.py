"""Rich tables the command line (:mod:`arraystore.cli`) prints: ls, info, stats and cast
reports.

A number is never cut short: numeric columns never wrap nor truncate (rich's default cuts a
cell with "…" when the terminal or a pipe's 80 columns are too narrow); when the table
cannot give them their full width, the numeric headers wrap, and if that is not enough
each row is printed as a block of ``header value`` lines. Text cells (names, dtypes) fold.

``ls`` lists what it can: an array whose metadata or data cannot be opened is one flagged
row (JSON: an ``"error"`` field) instead of failing the listing of the whole store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
import numpy as np

from arraystore.engine.memory import format_size

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def _checksum_label(doc: dict[str, Any]) -> str:
    if not doc["checksum"]:
        return "off (verify cannot detect bit flips)"
    if doc["backend"] == "zarr":
        return "crc32c per chunk (zarr codec)"
    return "crc32c per 1 MiB block (in the data file)"


def console() -> Console:
    """The console the command line prints to (its width: the terminal's, else
    ``COLUMNS``, else 80)."""
    from rich.console import Console

    return Console()


def kv_table(title: str | None = None, header: tuple[str, str] | None = None) -> Table:
    """A two-column ``key value`` table; both columns fold (at a width where even the
    value column is narrower than a number printed with :func:`_fmt`, ~12 cells)."""
    from rich.table import Table

    t = Table(show_header=header is not None, box=None, title=title, title_justify="left")
    for h in header or ("", ""):
        t.add_column(h, overflow="fold")
    return t


def _width(text: str) -> int:
    from rich.cells import cell_len

    return max(cell_len(line) for line in text.split("\n"))


def _fits(
    headers: list[str], rows: list[list[str]], numeric: set[int], width: int, pad: int
) -> bool:
    """Whether the numeric columns keep their full width, with ``pad`` cells of padding
    per column (text cells may fold to 6 cells or their header's longest word)."""
    need = 0
    for i, h in enumerate(headers):
        w = max(_width(c) for c in [h, *(r[i] for r in rows)])
        need += (w if i in numeric else min(w, max(6, *map(len, h.split())))) + pad
    return need <= width


def _wrap_header(header: str, cells: list[str]) -> str:
    """``header`` wrapped (at spaces) to the width of the widest cell below it (>= 6)."""
    import textwrap

    width = max([6, *(_width(c) for c in cells), *(len(w) for w in header.split())])
    return "\n".join(textwrap.wrap(header, width)) or header


def print_table(
    con: Console,
    headers: list[str],
    rows: list[list[str]],
    numeric: set[int],
    title: str | None = None,
) -> None:
    """Print ``rows`` under ``headers`` (cells are rich markup: escape names); the columns
    in ``numeric`` never wrap nor truncate (see the module doc for the narrow layouts)."""
    from rich.table import Table

    padding = (0, 1, 0, 1)  # rich's default: one cell either side
    if not _fits(headers, rows, numeric, con.width, 2):
        wrapped = [
            _wrap_header(h, [r[i] for r in rows]) if i in numeric else h
            for i, h in enumerate(headers)
        ]
        if not _fits(wrapped, rows, numeric, con.width, 1):
            t = kv_table(title)
            for n, r in enumerate(rows):
                if n:
                    t.add_row("", "")
                for h, v in zip(headers, r, strict=True):
                    t.add_row(h, v)
            con.print(t)
            return
        headers, padding = wrapped, (0, 1, 0, 0)  # one cell between columns
    t = Table(box=None, title=title, title_justify="left", padding=padding)
    for i, h in enumerate(headers):
        t.add_column(h, no_wrap=i in numeric, overflow="fold")
    for r in rows:
        t.add_row(*r)
    con.print(t)


def print_ls(rows: list[dict[str, Any]], store: str) -> None:
    from rich.markup import escape

    if not rows:
        click.echo(f"{store}: no arrays")
        return
    cells = []
    for r in rows:
        if "error" in r:
            short = r["error"] if len(r["error"]) <= 70 else r["error"][:67] + "..."
            tag = "UNSUPPORTED" if r.get("unsupported") else "BROKEN"
            cells.append([f"{escape(r['name'])} (!)", f"{tag}: {escape(short)}", "", "", "", ""])
            continue
        cells.append(
            [
                escape(r["name"]),
                "×".join(map(str, r["shape"])) or "()",
                r["dtype"],
                r["backend"] + (" (foreign)" if r.get("foreign") else ""),
                escape(r["codec"]),
                format_size(r["nbytes"]),
            ]
        )
    headers = ["name", "shape", "dtype", "backend", "codec", "size"]
    numeric = {5} if any("error" in r for r in rows) else {1, 5}  # BROKEN: text in shape
    print_table(console(), headers, cells, numeric)


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
    con = console()
    for fname, d in doc["fields"].items():
        t = kv_table(f"{doc['array']} · {fname}", ("stat", "value"))
        for k, v in d.items():
            if k == "quantiles":
                for q, val in v.items():
                    t.add_row(f"q{q}", _fmt(val))
            elif k == "histogram":
                t.add_row("histogram", " ".join(map(str, v["counts"])))
            else:
                t.add_row(k, _fmt(v))
        con.print(t)
    gbps = doc.get("gb_per_s")
    if gbps:
        con.print(
            f"read {format_size(doc['bytes_read'])} in {doc['seconds']:.2f} s ({gbps:.2f} GB/s)",
            style="dim",
        )


def _print_cast(doc: dict[str, Any]) -> None:
    title = f"{'plan (dry run)' if doc['dry_run'] else 'cast'}: {doc['array']}"
    if doc["out"] != doc["array"]:
        title += f" -> {doc['out']}"
    headers = ["field", "from", "to", "verdict", "out of range", "NaN/inf", "rounded"]
    headers += ["clipped", "max abs err", "max rel err"]
    rows = []
    for fname, d in doc["fields"].items():
        verdict = "ok" if d["ok"] else ("would refuse" if doc["dry_run"] else "refused")
        rows.append(
            [
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
            ]
        )
    con = console()
    print_table(con, headers, rows, numeric=set(range(4, 10)), title=title)
    line = (
        f"{format_size(doc['bytes_before'])} -> {format_size(doc['bytes_after'])} "
        f"({doc['ratio']:.2f}× smaller)"
    )
    if doc.get("gb_per_s"):
        line += f" in {doc['seconds']:.2f} s ({doc['gb_per_s']:.2f} GB/s)"
    con.print(line)
