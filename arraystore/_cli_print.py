"""Rich tables the command line (:mod:`arraystore.cli`) prints: stats and cast reports."""

from __future__ import annotations

from typing import Any


def _checksum_label(doc: dict[str, Any]) -> str:
    if not doc["checksum"]:
        return "off (verify cannot detect bit flips)"
    if doc["backend"] == "zarr":
        return "crc32c per chunk (zarr codec)"
    return "crc32c per 1 MiB block (data.crc32c)"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        import numpy as np

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
        from .engine.memory import format_size

        console.print(
            f"read {format_size(doc['bytes_read'])} in {doc['seconds']:.2f} s ({gbps:.2f} GB/s)",
            style="dim",
        )


def _print_cast(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from .engine.memory import format_size

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
