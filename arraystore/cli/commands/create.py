"""``arraystore create``: a new array, filled or from a .npy file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from arraystore import Array
from arraystore.cli.options import (
    cast_on_write_options,
    storage_option,
    store_opener,
    writable_option,
)
from arraystore.cli.output import _print_cast
from arraystore.cli.util import (
    _executor,
    _print_json,
    create_inputs,
    json_option,
    memory_option,
    progress_bar,
    quiet_option,
    workers_option,
)
from arraystore.core.dtypes import dtype_to_spec
from arraystore.engine.memory import format_size

if TYPE_CHECKING:
    from arraystore.ops.cast import CastResult


@click.command()
@click.argument("store")
@storage_option
@click.argument("name")
@writable_option
@click.option("--shape", default=None, help="Comma-separated shape, e.g. 1000000,64.")
@click.option(
    "--dtype",
    default=None,
    help="f8, 'id:i8,price:f8,vec:3f4'... (default f8); --from: cast into it, as cast --to.",
)
@click.option(
    "--chunks", default=None, help="Chunk shape, e.g. 65536,64 (default: ~64 MiB row blocks)."
)
@click.option("--backend", default=None, help="memmap (default) or zarr (default for URL stores).")
@click.option(
    "--codec",
    default=None,
    help="zarr codec: none, lz4, zstd[:L], gzip[:L], blosc-lz4, blosc-zstd.",
)
@click.option("--shards", default=None, help="zarr: shard shape, multiples of the chunks.")
@click.option("--fill", default=None, help="zeros (default), ones, range, random.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --fill random.")
@click.option(
    "--from", "from_npy", default=None, metavar="FILE.npy", help="Stream data from a .npy file."
)
@cast_on_write_options
@click.option("--overwrite", is_flag=True, help="Replace an existing array (atomically).")
@click.option(
    "--checksum",
    is_flag=True,
    help="Store checksums (zarr: crc32c codec; memmap: crc32c per 1 MiB block).",
)
@memory_option
@workers_option
@quiet_option
@json_option
def create(
    store: str,
    name: str,
    shape: str | None,
    dtype: str | None,
    chunks: str | None,
    backend: str | None,
    codec: str | None,
    shards: str | None,
    fill: str | None,
    seed: int,
    from_npy: str | None,
    overwrite: bool,
    checksum: bool,
    memory: str | None,
    workers: int | None,
    quiet: bool,
    as_json: bool,
    **cast: Any,
) -> None:
    """Create array NAME in STORE (the store is created if missing)."""
    dtype, budget, total = create_inputs(shape, dtype, from_npy, memory)
    s = store_opener()(store, mode="a")
    audits: list[CastResult] = []
    with progress_bar(
        total if fill not in (None, "zeros") or from_npy else 0, f"create {name}", quiet
    ) as adv:
        arr = s.create(
            name, shape, dtype, chunks=chunks, backend=backend, codec=codec, fill=fill,
            seed=seed, from_npy=from_npy, overwrite=overwrite, memory=budget,
            executor=_executor(workers), checksum=checksum, progress=adv, shards=shards,
            audit=audits.append, **cast,
        )  # fmt: skip
    _show(name, arr, as_json, audits[0].to_dict() if audits else None)


def _show(name: str, arr: Array, as_json: bool, audit: dict[str, Any] | None) -> None:
    """The new array (and the audit of a cast on write, printed as ``cast`` does)."""
    if as_json:
        _print_json(arr.info() if audit is None else {**arr.info(), "cast": audit})
    else:
        if audit is not None:
            _print_cast(audit)
        click.echo(
            f"created {name}: shape {arr.shape}, {dtype_to_spec(arr.dtype)} "
            f"({format_size(arr.nbytes)}), backend {arr.backend}, chunks {arr.chunks}"
            + (f" in shards {arr.shards}" if arr.shards else "")
        )
