"""``arraystore ls`` and ``info``: metadata only, never array data."""

from __future__ import annotations

import json
import math

import click

from arraystore.cli.options import open_target, storage_option, store_opener
from arraystore.cli.output import (
    _checksum_label,
    console,
    kv_table,
    print_ls,
    warn_broken,
)
from arraystore.cli.util import (
    _print_json,
    json_option,
)
from arraystore.engine.memory import format_size


@click.command(name="ls")
@click.argument("store")
@storage_option
@json_option
def ls_cmd(store: str, as_json: bool) -> None:
    """List the arrays of STORE (reads metadata only); a broken array is flagged."""
    open_store = store_opener()
    rows = open_store(store, mode="r").ls()
    if as_json:
        _print_json(rows)
    else:
        print_ls(rows, store)
    warn_broken(rows)


@click.command()
@click.argument("store")
@storage_option
@click.argument("name", required=False)
@json_option
def info(store: str, name: str | None, as_json: bool) -> None:
    """Shape, dtype and fields, chunks, codec, logical vs stored bytes of array NAME
    (NAME omitted: STORE is the path of one array, a .npy file or a zarr array)."""
    s, name = open_target(store, name)
    doc = s.info(name)
    if as_json:
        _print_json(doc)
        return
    t = kv_table(f"{store} / {name}")
    t.add_row("backend", doc["backend"])
    t.add_row("shape", str(tuple(doc["shape"])))
    t.add_row("dtype", doc["dtype"])
    t.add_row("chunks", str(tuple(doc["chunks"])))
    if doc.get("shards"):
        per = math.prod(s // c for s, c in zip(doc["shards"], doc["chunks"], strict=True))
        t.add_row("shards", f"{tuple(doc['shards'])}: {per} inner chunks per shard file")
    t.add_row("codec", doc["codec"])
    t.add_row("checksum", _checksum_label(doc))
    if doc.get("foreign"):
        where = f"zarr v{doc['zarr_format']}" if "zarr_format" in doc else ".npy"
        t.add_row("foreign", f"{where}, not written by arraystore: read-only, in place")
        t.add_row("read path", doc["read_path"])
    if doc.get("dims"):
        t.add_row("dims", ", ".join(doc["dims"]))
    if doc["format"] < 2 and not doc.get("foreign"):
        t.add_row("format", "1 (upgraded on the next write, or by 'arraystore upgrade')")
    t.add_row("logical size", format_size(doc["nbytes"]))
    t.add_row("on disk", format_size(doc["stored_bytes"]))
    if doc["ratio"]:
        t.add_row("ratio", f"{doc['ratio']:.2f}×")
    for f in doc["fields"]:
        sub = f"  {tuple(f['subshape'])}" if f["subshape"] else ""
        t.add_row(f"field {f['name']}", f"{f['dtype']}{sub}")
    for k, v in doc["attrs"].items():
        t.add_row(f"attr {k}", json.dumps(v))
    for h in doc["history"]:
        t.add_row("history", json.dumps(h)[:200])
    console().print(t)
