"""``arraystore stats``: one-pass reductions, exact quantiles, histograms."""

from __future__ import annotations

import os
from typing import Any

import click

from arraystore._native.direct import IO_ENV, io_mode
from arraystore._native.pages import POLICIES, POLICY_ENV
from arraystore.cli.commands.groupby import add_group_options
from arraystore.cli.options import open_target, scheduler_option, storage_option, store_opener
from arraystore.cli.output import (
    _print_stats,
)
from arraystore.cli.util import (
    _executor,
    _parse_axis,
    _parse_floats,
    _print_json,
    _size,
    executor_option,
    json_option,
    memory_option,
    progress_bar,
    quiet_option,
    workers_option,
)
from arraystore.errors import InvalidArgument

#: ``--io``: a plain string, checked by :func:`_set_env` (a one-line error)
io_option = click.option(
    "--io",
    "io",
    default=None,
    metavar="MODE",
    help="direct: read with O_DIRECT around the page cache (less CPU); buffered or auto "
    f"(the default, buffered): through it (default: ${IO_ENV}, else auto).",
)


@click.command()
@click.argument("store")
@storage_option
@click.argument("name", required=False)
@click.option("--field", "fields", multiple=True, help="Field(s) to reduce (default: all numeric).")
@click.option("--expr", "expr", default=None, help="Reduce an expression instead (not stored).")
@click.option("--axis", default=None, help="Axis or axes (e.g. 0 or 0,1); default: all.")
@click.option("--where", "where", default=None, help="Reduce only where this expression holds.")
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
    "--page-policy",
    type=click.Choice(POLICIES),
    default=None,
    help="Drop the pages a scan has read from the page cache: auto (when the scan is over "
    f"half of it), keep or drop (default: ${POLICY_ENV}, else auto).",
)
@io_option
@executor_option
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
    where: str | None,
    quantiles: str | None,
    bins: str | None,
    keep_nan: bool,
    ddof: int,
    page_policy: str | None,
    io: str | None,
    executor: str | None,
    memory: str | None,
    workers: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """count, nan_count, sum, mean, std, min, max per field in one pass; exact quantiles."""
    _set_env(page_policy, io)
    if expr is not None:
        _expr_alone(fields, where, quantiles, bins)
    if expr is None and name is None:  # STORE is the path of one array (.npy, zarr array)
        s, name = open_target(store, None)
    else:
        s = store_opener()(store, mode="r")
    total = s[name].nbytes if expr is None and name is not None else 0
    ax = _parse_axis(axis)
    qs = _parse_floats(quantiles, "--quantiles") if quantiles is not None else None
    nbins, budget, ex = _parse_bins(bins), _size(memory), _executor(workers, executor)
    with progress_bar(total, f"stats {name}", quiet or as_json) as adv:
        doc = s.stats(
            name,
            expr=expr,
            fields=list(fields) or None,
            axis=ax,
            quantiles=qs,
            bins=nbins,
            skipna=not keep_nan,
            ddof=ddof,
            memory=budget,
            executor=ex,
            progress=adv,
            where=where,
        )
    _show(doc, as_json)


def _set_env(page_policy: str | None, io: str | None) -> None:
    """The page policy and the I/O mode, read by each operation (and by local dask
    workers) from the environment; ``--io`` checked now (a one-line error)."""
    if page_policy is not None:
        os.environ[POLICY_ENV] = page_policy
    if io is not None:
        os.environ[IO_ENV] = io_mode(io, "--io")


def _expr_alone(fields: tuple[str, ...], *options: str | None) -> None:
    if fields or any(o is not None for o in options):
        raise InvalidArgument(
            "--expr cannot be combined with --field, --where, --quantiles or --hist"
        )


def _parse_bins(text: str | None) -> int | str | None:
    """``--hist``: a number of bins (at most what a summary holds) or 'auto'."""
    from arraystore.ops.reduce import MAX_SUMMARY_BINS  # lazy: start-up

    if text is None or text == "auto":
        return text
    if text.strip().isascii() and text.strip().isdecimal() and 1 <= int(text) <= MAX_SUMMARY_BINS:
        return int(text)
    raise InvalidArgument(
        f"--hist must be a number of bins in 1..{MAX_SUMMARY_BINS} or 'auto', got {text!r}"
    )


def _show(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(doc)
    else:
        _print_stats(doc)


add_group_options(stats)  # --by --ops --out --to --overwrite (cli.commands.groupby)
