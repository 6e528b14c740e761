"""``arraystore import`` and ``arraystore export`` (registered on :data:`arraystore.cli.main`)."""

from __future__ import annotations

import os
from typing import Any

import click

from arraystore.cli.options import (
    cast_on_write_options,
    open_target,
    storage_option,
    store_opener,
    writable_option,
)
from arraystore.cli.output import _print_cast
from arraystore.cli.util import progress_bar, quiet_option
from arraystore.core.dtypes import dtype_to_spec


@click.command(name="import")
@click.argument("store")
@storage_option
@click.argument("name")
@click.argument("file")
@writable_option
@click.option("--format", "fmt", default=None, help="npy, csv, parquet or arrow (default: suffix).")
@click.option(
    "--dtype",
    default=None,
    help="Column types, e.g. 'price:f4,qty:i4'; .npy: the file cast into it (or auto).",
)
@cast_on_write_options
@click.option(
    "--errors", default="raise", show_default=True, help="CSV parse errors: raise|coerce."
)
@click.option("--backend", default=None, help="memmap (default) or zarr (default for URL stores).")
@click.option("--codec", default=None)
@click.option("--chunks", default=None)
@click.option("--shards", default=None, help="zarr: shard shape (multiples of the chunks).")
@click.option("--overwrite", is_flag=True)
@click.option("--checksum", is_flag=True, help="Store checksums in the new array.")
@quiet_option
def import_cmd(
    store: str,
    name: str,
    file: str,
    fmt: str | None,
    dtype: str | None,
    errors: str,
    backend: str | None,
    codec: str | None,
    chunks: str | None,
    shards: str | None,
    overwrite: bool,
    checksum: bool,
    quiet: bool,
    **cast: Any,
) -> None:
    """Import a .npy, CSV, Parquet or Arrow file (streamed, atomic) as array NAME."""
    open_store = store_opener()
    s = open_store(store, mode="a")
    audits: list[Any] = []
    with progress_bar(
        os.path.getsize(file) if os.path.exists(file) else 0, f"import {name}", quiet
    ) as adv:
        arr = s.import_file(
            name,
            file,
            format=fmt,
            dtype=dtype,
            errors=errors,
            backend=backend,
            codec=codec,
            chunks=chunks,
            overwrite=overwrite,
            progress=adv,
            checksum=checksum,
            shards=shards,
            audit=audits.append,
            **cast,
        )
    if audits:
        _print_cast(audits[0].to_dict())
    click.echo(f"imported {name}: shape {arr.shape}, {dtype_to_spec(arr.dtype)}")


@click.command(name="export")
@click.argument("store")
@storage_option
@click.argument("name")
@click.argument("file", required=False)
@click.option("--format", "fmt", default=None, help="npy, csv, parquet or arrow (default: suffix).")
@click.option("--overwrite", is_flag=True)
@quiet_option
def export_cmd(
    store: str, name: str, file: str | None, fmt: str | None, overwrite: bool, quiet: bool
) -> None:
    """Export array NAME to a .npy, CSV, Parquet or Arrow file, chunk by chunk (``export
    PATH FILE``: PATH is one array, a .npy file or a zarr array)."""
    target: str | None = name
    if file is None:  # export PATH FILE
        target, file = None, name
    s, target = open_target(store, target)
    arr = s[target]
    name = target
    with progress_bar(arr.nbytes, f"export {name}", quiet) as adv:
        path = arr.export(file, format=fmt, overwrite=overwrite, progress=adv)
    click.echo(f"exported {name} to {path}")


@click.command(name="append")
@click.argument("store")
@storage_option
@click.argument("name")
@click.option("--from", "file", required=True, help="A .npy, CSV, Parquet or Arrow file.")
@click.option("--format", "fmt", default=None, help="npy, csv, parquet or arrow (default: suffix).")
@click.option(
    "--casting",
    default="value",
    show_default=True,
    help="Cast policy for another dtype (value refuses a lossy value).",
)
@click.option("--rtol", type=float, default=0.0, show_default=True)
def append_cmd(
    store: str, name: str, file: str, fmt: str | None, casting: str, rtol: float
) -> None:
    """Append the rows of a file to array NAME, in place and atomically."""
    open_store = store_opener()
    s = open_store(store, mode="r+")
    if name not in s:
        s.open_handle(name)  # ArrayNotFound, one line, before reading the file
    shape = s.append(name, file, format=fmt, casting=casting, rtol=rtol)
    click.echo(f"appended to {name}: shape {shape}")
