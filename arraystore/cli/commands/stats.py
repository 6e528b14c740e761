"""``arraystore stats``: one-pass reductions, exact quantiles, histograms."""

from __future__ import annotations

from typing import Any

import click

from arraystore.cli.options import scheduler_option, storage_option, store_opener
from arraystore.cli.output import (
    _print_stats,
)
from arraystore.cli.util import (
    _executor,
    _parse_axis,
    _parse_floats,
    _print_json,
    _size,
    json_option,
    memory_option,
    progress_bar,
    quiet_option,
    workers_option,
)


@click.command()
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
