"""The ``arraystore`` command line: parse, call the API, print. No logic lives here.

User errors (any ArrayStoreError, bad options) print one line on stderr and exit 1.
Heavy imports (numpy, zarr, rich) happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from arraystore.cli.options import scheduler_option, storage_option, store_opener
from arraystore.cli.output import (
    _checksum_label,
    _print_cast,
    _print_stats,
    ls_rows,
    print_ls,
    warn_broken,
)
from arraystore.cli.transfer import export_cmd, import_cmd
from arraystore.cli.util import (
    _executor,
    _one_line,
    _parse_axis,
    _parse_floats,
    _print_json,
    _size,
    create_inputs,
    json_option,
    memory_option,
    progress_bar,
    quiet_option,
    remove_arrays,
    source_bytes,
    workers_option,
)
from arraystore.core.dtypes import dtype_to_spec
from arraystore.engine.memory import format_size


class _Group(click.Group):
    """Turns user errors into one line on stderr and exit status 1."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        from arraystore.errors import ArrayStoreError

        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(1)
        except ArrayStoreError as exc:
            click.echo(f"error: {_one_line(str(exc))}", err=True)
            sys.exit(1)
        except OSError as exc:  # disk full, permission denied, read-only file system...
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)
        except Exception as exc:
            from arraystore.cli.options import remote_error

            msg = remote_error(exc)
            if msg is None:
                raise
            click.echo(f"error: {_one_line(msg)}", err=True)
            sys.exit(1)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        return rv


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="arraystore")
def main() -> None:
    """Large N-dimensional arrays on disk, processed chunk by chunk in bounded memory."""


@main.command()
@click.argument("store")
@storage_option
@click.argument("name")
@click.option("--shape", default=None, help="Comma-separated shape, e.g. 1000000,64.")
@click.option(
    "--dtype",
    default=None,
    help="f8, i4, ... or structured 'id:i8,price:f8,vec:3f4' (default f8, as numpy's).",
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
@click.option("--fill", default=None, help="zeros (default), ones, range, random.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --fill random.")
@click.option(
    "--from", "from_npy", default=None, metavar="FILE.npy", help="Stream data from a .npy file."
)
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
    fill: str | None,
    seed: int,
    from_npy: str | None,
    overwrite: bool,
    checksum: bool,
    memory: str | None,
    workers: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Create array NAME in STORE (the store is created if missing)."""
    open_store = store_opener()
    dtype, budget, total = create_inputs(shape, dtype, from_npy, memory)
    s = open_store(store, mode="a")
    with progress_bar(
        total if fill not in (None, "zeros") or from_npy else 0, f"create {name}", quiet
    ) as adv:
        arr = s.create(
            name,
            shape,
            dtype,
            chunks=chunks,
            backend=backend,
            codec=codec,
            fill=fill,
            seed=seed,
            from_npy=from_npy,
            overwrite=overwrite,
            memory=budget,
            executor=_executor(workers),
            checksum=checksum,
            progress=adv,
        )
    if as_json:
        _print_json(arr.info())
    else:
        click.echo(
            f"created {name}: shape {arr.shape}, {dtype_to_spec(arr.dtype)} "
            f"({format_size(arr.nbytes)}), backend {arr.backend}, chunks {arr.chunks}"
        )


@main.command(name="ls")
@click.argument("store")
@storage_option
@json_option
def ls_cmd(store: str, as_json: bool) -> None:
    """List the arrays of STORE (reads metadata only); a broken array is flagged."""
    open_store = store_opener()
    rows = ls_rows(open_store(store, mode="r"))
    if as_json:
        _print_json(rows)
    else:
        print_ls(rows, store)
    warn_broken(rows)


@main.command()
@click.argument("store")
@storage_option
@click.argument("name")
@json_option
def info(store: str, name: str, as_json: bool) -> None:
    """Shape, dtype and fields, chunks, codec, logical vs stored bytes of array NAME."""
    open_store = store_opener()
    from arraystore.engine.memory import format_size

    doc = open_store(store, mode="r").info(name)
    if as_json:
        _print_json(doc)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(show_header=False, box=None, title=f"{store} / {name}", title_justify="left")
    t.add_row("backend", doc["backend"])
    t.add_row("shape", str(tuple(doc["shape"])))
    t.add_row("dtype", doc["dtype"])
    t.add_row("chunks", str(tuple(doc["chunks"])))
    t.add_row("codec", doc["codec"])
    t.add_row("checksum", _checksum_label(doc))
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
    Console().print(t)


@main.command()
@click.argument("store")
@storage_option
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--missing-ok", is_flag=True, help="Names not in STORE are no error.")
def rm(store: str, names: tuple[str, ...], missing_ok: bool) -> None:
    """Remove arrays NAMES from STORE: like POSIX rm, every named array that exists goes
    (each atomically), then each missing name is reported (exit status 1)."""
    open_store = store_opener()

    s = open_store(store, mode="r+")
    missing = remove_arrays(s, names, lambda name: click.echo(f"removed {name}"))
    if missing and not missing_ok:
        for line in missing:
            click.echo(f"error: {line}", err=True)
        sys.exit(1)


@main.command()
@click.argument("store")
@storage_option
@click.argument("old")
@click.argument("new")
@click.option("--overwrite", is_flag=True)
def mv(store: str, old: str, new: str, overwrite: bool) -> None:
    """Rename array OLD to NEW."""
    open_store = store_opener()

    open_store(store, mode="r+").rename(old, new, overwrite=overwrite)
    click.echo(f"renamed {old} -> {new}")


@main.command()
@click.argument("store")
@storage_option
@click.argument("name", required=False)
@click.option("--field", "fields", multiple=True, help="Field(s) to reduce (default: all numeric).")
@click.option("--expr", "expr", default=None, help="Reduce an expression instead (not stored).")
@click.option("--axis", default=None, help="Axis or axes (e.g. 0 or 0,1); default: all.")
@click.option("--quantiles", default=None, help="Exact quantiles, e.g. 0.01,0.5,0.99.")
@click.option("--hist", "bins", default=None, help="Histogram with N bins (or 'auto').")
@click.option("--keep-nan", is_flag=True, help="Propagate NaN like numpy instead of skipping it.")
@click.option(
    "--ddof",
    type=click.IntRange(0, 2**31),
    default=0,
    show_default=True,
    help="Delta degrees of freedom of std.",
)
@click.option(
    "--executor",
    default=None,
    help="serial, threads (default) or dask (ARRAYSTORE_SCHEDULER=tcp://HOST:PORT).",
)
@scheduler_option
@memory_option
@workers_option
@quiet_option
@json_option
def stats(
    store: str,
    name: str | None,
    fields: tuple[str, ...],
    expr: str | None,
    axis: str | None,
    quantiles: str | None,
    bins: str | None,
    keep_nan: bool,
    ddof: int,
    executor: str | None,
    memory: str | None,
    workers: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """count, nan_count, sum, mean, std, min, max per field in one pass; exact quantiles."""
    open_store = store_opener()
    from arraystore.errors import InvalidArgument
    from arraystore.ops.reduce.stats import STATS, hist, quantile, reduce

    if expr is not None:
        if quantiles is not None or bins is not None or fields:
            raise InvalidArgument("--expr cannot be combined with --field, --quantiles or --hist")
        from arraystore.ops.map.blocks import reduce_expr

        res_expr = reduce_expr(
            open_store(store, mode="r"),
            expr,
            name,
            STATS,
            axis=_parse_axis(axis),
            skipna=not keep_nan,
            ddof=ddof,
            memory=_size(memory),
            executor=_executor(workers, executor),
        )
        if as_json:
            _print_json(res_expr.to_dict())
        else:
            _print_stats(res_expr.to_dict())
        return
    if name is None:
        raise InvalidArgument("stats needs an array NAME (or --expr)")
    arr = open_store(store, mode="r")[name]
    ax = _parse_axis(axis)
    qs = _parse_floats(quantiles, "--quantiles") if quantiles is not None else None
    nbins: Any = None
    if bins is not None:
        if bins == "auto":
            nbins = "auto"
        elif bins.strip().isascii() and bins.strip().isdecimal() and 1 <= int(bins) <= 100_000:
            nbins = int(bins)
        else:
            raise InvalidArgument(
                f"--hist must be a number of bins in 1..100000 or 'auto', got {bins!r}"
            )
    budget = _size(memory) if memory is not None else None
    ex = _executor(workers, executor)
    with progress_bar(arr.nbytes, f"stats {name}", quiet or as_json) as adv:
        res = reduce(
            arr,
            STATS,
            axis=ax,
            fields=list(fields) or None,
            skipna=not keep_nan,
            ddof=ddof,
            memory=budget,
            executor=ex,
            progress=adv,
        )
    doc = res.to_dict()
    if qs is not None:
        qres = quantile(
            arr, qs, fields=list(fields) or None, skipna=not keep_nan, memory=budget, axis=ax
        )
        for fname, values in qres.items():
            doc["fields"][fname]["quantiles"] = dict(
                zip(map(str, qs), values.tolist(), strict=True)
            )
    if nbins is not None:
        for fname, (counts, edges) in hist(
            arr, bins=nbins, fields=list(fields) or None, memory=budget
        ).items():
            doc["fields"][fname]["histogram"] = {"counts": counts.tolist(), "edges": edges.tolist()}
    if as_json:
        _print_json(doc)
        return
    _print_stats(doc)


@main.command(name="cast")
@click.argument("store")
@storage_option
@click.argument("name")
@click.option("--to", "to", default=None, help="f4 | 'price:f4,qty:auto' | auto.")
@click.option(
    "--auto", "auto", is_flag=True, help="Same as --to auto: smallest lossless dtype per field."
)
@click.option("--out", default=None, help="Write to a new array instead of replacing NAME.")
@click.option(
    "--casting", default="value", show_default=True, help="value, clip, safe, same_kind or unsafe."
)
@click.option(
    "--rtol",
    type=float,
    default=0.0,
    show_default=True,
    help="Relative tolerance of 'value' for float targets.",
)
@click.option("--nan-to", "nan_to", type=float, default=None, help="clip: NaN becomes this value.")
@click.option("--errors", default="raise", show_default=True, help="Strings: raise or coerce.")
@click.option("--fill", "fill", type=float, default=None, help="coerce: sentinel for int targets.")
@click.option("--allow-half", is_flag=True, help="auto may pick float16/bfloat16.")
@click.option("--allow-float-to-int", is_flag=True, help="auto may turn integral floats into ints.")
@click.option("--dry-run", is_flag=True, help="Print the plan, checks and savings; write nothing.")
@click.option("--resume", is_flag=True, help="Finish an interrupted cast.")
@click.option(
    "--checksum/--no-checksum",
    default=None,
    help="Store checksums in the output (default: as the source).",
)
@click.option(
    "--executor",
    default=None,
    help="serial, threads (default) or dask (ARRAYSTORE_SCHEDULER=tcp://HOST:PORT).",
)
@scheduler_option
@memory_option
@workers_option
@quiet_option
@json_option
def cast_cmd(
    store: str,
    name: str,
    to: str | None,
    auto: bool,
    out: str | None,
    casting: str,
    rtol: float,
    nan_to: float | None,
    errors: str,
    fill: float | None,
    allow_half: bool,
    allow_float_to_int: bool,
    dry_run: bool,
    resume: bool,
    checksum: bool | None,
    executor: str | None,
    memory: str | None,
    workers: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Cast NAME chunk by chunk with a value audit (atomic; the source stays intact until done)."""
    open_store = store_opener()
    from arraystore.errors import InvalidArgument
    from arraystore.ops.cast import cast

    if auto:
        if to not in (None, "auto"):
            raise InvalidArgument("give either --to or --auto")
        to = "auto"
    if to is None and not resume:
        raise InvalidArgument("cast needs --to SPEC (or --auto)")
    s = open_store(store, mode="r" if dry_run else "r+")
    nbytes = source_bytes(s, name, not dry_run)
    with progress_bar(nbytes, f"cast {name}", quiet or as_json) as adv:
        res = cast(
            s,
            name,
            to,
            out=out,
            casting=casting,
            rtol=rtol,
            nan_to=nan_to,
            errors=errors,
            fill=fill,
            allow_half=allow_half,
            allow_float_to_int=allow_float_to_int,
            dry_run=dry_run,
            resume=resume,
            memory=_size(memory),
            executor=_executor(workers, executor),
            progress=adv,
            checksum=checksum,
        )
    doc = res.to_dict()
    if as_json:
        _print_json(doc)
        return
    _print_cast(doc)


@main.command()
@click.argument("store")
@storage_option
@click.argument("name", required=False)
@click.option("--repair", is_flag=True, help="Remove leftovers of interrupted writes only.")
@json_option
def verify(store: str, name: str | None, repair: bool, as_json: bool) -> None:
    """Check metadata, file sizes, that every chunk decodes, and checksums; exit 1 if corrupt."""
    open_store = store_opener()
    from arraystore.ops.verify import verify as run_verify

    s = open_store(store, mode="r+" if repair else "r")
    report = run_verify(s, name, repair=repair)
    if as_json:
        _print_json(report.to_dict())
    else:
        for f in report.findings:
            tag = {"corrupt": "CORRUPT", "leftover": "leftover", "warning": "warning"}.get(
                f.kind, "note"
            )
            fixed = " (removed)" if f.repaired else ""
            click.echo(f"{tag}: {f.name}: {f.message}{fixed}")
        click.echo(
            f"checked {len(report.checked)} array(s): "
            + ("corruption found" if report.corrupt else "ok")
        )
    if report.corrupt:
        sys.exit(1)


@main.command(name="map")
@click.argument("store")
@storage_option
@click.argument("name", required=False)
@click.option("--expr", "expr", default=None, help="Expression, e.g. 'sqrt(price) * qty'.")
@click.option("--where", "cond", default=None, help="Keep rows where this is true.")
@click.option("--out", required=True, help="Name of the new array.")
@click.option("--dtype", default=None, help="Output dtype (default: inferred).")
@click.option("--backend", default=None, help="memmap or zarr (default: the input's).")
@click.option("--codec", default=None, help="zarr codec of the output.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out array.")
@click.option("--resume", is_flag=True, help="Finish an interrupted map.")
@click.option("--checksum", is_flag=True, help="Store checksums in the output.")
@click.option(
    "--executor",
    default=None,
    help="serial, threads (default) or dask (ARRAYSTORE_SCHEDULER=tcp://HOST:PORT).",
)
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
    dtype: str | None,
    backend: str | None,
    codec: str | None,
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
    open_store = store_opener()
    from arraystore.errors import InvalidArgument
    from arraystore.ops.map.blocks import map_expr, where

    if expr is None and cond is None:
        raise InvalidArgument("map needs --expr and/or --where")
    s = open_store(store, mode="r+")
    total = s[name].nbytes if name else 0
    kw: dict[str, Any] = dict(
        dtype=dtype,
        backend=backend,
        codec=codec,
        memory=_size(memory),
        executor=_executor(workers, executor),
        overwrite=overwrite,
        resume=resume,
        checksum=checksum,
    )
    with progress_bar(total, f"map {name or store}", quiet) as adv:
        if cond is not None:
            arr = where(s, name, cond, out, expr=expr, progress=adv, **kw)
        else:
            assert expr is not None
            arr = map_expr(s, expr, name, out=out, progress=adv, **kw)
    from arraystore.core.dtypes import dtype_to_spec

    click.echo(f"wrote {out}: shape {arr.shape}, {dtype_to_spec(arr.dtype)}")


main.add_command(import_cmd)
main.add_command(export_cmd)
