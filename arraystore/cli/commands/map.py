"""``arraystore map``: expressions and row filters into a new array."""

from __future__ import annotations

import os

import click

from arraystore.cli.options import (
    open_target,
    out_store_for,
    out_store_option,
    scheduler_option,
    storage_option,
    store_opener,
    writable_option,
)
from arraystore.cli.util import (
    _executor,
    _size,
    executor_option,
    memory_option,
    progress_bar,
    quiet_option,
    workers_option,
)
from arraystore.core.dtypes import dtype_to_spec
from arraystore.errors import InvalidArgument


@click.command(name="map")
@click.argument("store")
@storage_option
@click.argument("name", required=False)
@writable_option
@click.option("--expr", "expr", default=None, help="Expression, e.g. 'sqrt(price) * qty'.")
@click.option("--where", "cond", default=None, help="Keep rows where this is true.")
@click.option("--out", required=True, help="Name of the new array.")
@out_store_option
@click.option("--dtype", default=None, help="Output dtype (default: inferred).")
@click.option("--backend", default=None, help="memmap or zarr (default: the input's).")
@click.option("--codec", default=None, help="zarr codec of the output.")
@click.option("--shards", default=None, help="zarr: shard shape of the output (not --where).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out array.")
@click.option("--resume", is_flag=True, help="Finish an interrupted map.")
@click.option("--checksum", is_flag=True, help="Store checksums in the output.")
@executor_option
@scheduler_option
@memory_option
@workers_option
@quiet_option
def map_cmd(
    store: str,
    name: str | None,
    expr: str | None,
    cond: str | None,
    out: str,
    out_store: str | None,
    dtype: str | None,
    backend: str | None,
    codec: str | None,
    shards: str | None,
    overwrite: bool,
    resume: bool,
    checksum: bool,
    executor: str | None,
    memory: str | None,
    workers: int | None,
    quiet: bool,
) -> None:
    """Evaluate --expr chunk by chunk into a new array (bare names: fields of NAME or
    arrays of STORE); --where selects rows. Never Python eval: a safe expression language."""
    if expr is None and cond is None:
        raise InvalidArgument("map needs --expr and/or --where")
    mode = "r+" if out_store is None else "r"
    if name is None and _one_array(store):  # STORE is the path of one array
        s, name = open_target(store, None, mode=mode)  # (bare: writable with --writable)
    else:
        s = store_opener()(store, mode=mode)
    total = s[name].nbytes if name else 0
    with out_store_for(out_store) as dst, progress_bar(total, f"map {name or store}", quiet) as adv:
        arr = s.map(
            expr,
            name,
            out=out,
            where=cond,
            dtype=dtype,
            backend=backend,
            codec=codec,
            memory=_size(memory),
            executor=_executor(workers, executor),
            progress=adv,
            overwrite=overwrite,
            resume=resume,
            checksum=checksum,
            shards=shards,
            out_store=dst,
        )

    click.echo(f"wrote {out}: shape {arr.shape}, {dtype_to_spec(arr.dtype)}")


def _one_array(path: str) -> bool:
    """``path`` names one array (a .npy file, a folder with zarr array metadata)."""
    if os.path.isfile(path):
        return True
    try:
        with open(os.path.join(path, "zarr.json"), "rb") as f:
            return b'"array"' in f.read(1 << 20)
    except OSError:
        return os.path.isfile(os.path.join(path, ".zarray"))
