"""``arraystore cast``: audited, atomic dtype casts."""

from __future__ import annotations

from typing import Any

import click

from arraystore.cli.options import (
    open_target,
    option_group,
    out_store_for,
    out_store_option,
    scheduler_option,
    storage_option,
    writable_option,
)
from arraystore.cli.output import (
    _print_cast,
)
from arraystore.cli.util import (
    _executor,
    _print_json,
    _size,
    executor_option,
    json_option,
    memory_option,
    progress_bar,
    quiet_option,
    source_bytes,
    workers_option,
)
from arraystore.errors import InvalidArgument

#: how a cast treats the values it audits (``--casting`` and what each policy needs)
audit_options = option_group(
    click.option(
        "--casting",
        default="value",
        show_default=True,
        help="value, clip, safe, same_kind or unsafe.",
    ),
    click.option(
        "--rtol",
        type=float,
        default=0.0,
        show_default=True,
        help="Relative tolerance of 'value' for float targets.",
    ),
    click.option(
        "--nan-to", "nan_to", type=float, default=None, help="clip: NaN becomes this value."
    ),
    click.option("--errors", default="raise", show_default=True, help="Strings: raise or coerce."),
    click.option(
        "--fill", "fill", type=float, default=None, help="coerce: sentinel for int targets."
    ),
)


@click.command(name="cast")
@click.argument("store")
@storage_option
@click.argument("name", required=False)
@writable_option
@click.option("--to", "to", default=None, help="f4 | 'price:f4,qty:auto' | auto.")
@click.option(
    "--auto", "auto", is_flag=True, help="Same as --to auto: smallest lossless dtype per field."
)
@click.option("--out", default=None, help="Write to a new array instead of replacing NAME.")
@out_store_option
@click.option("--shards", default=None, help="zarr: output shard shape (default: the source's).")
@audit_options
@click.option("--allow-half", is_flag=True, help="auto may pick float16/bfloat16.")
@click.option("--allow-float-to-int", is_flag=True, help="auto may turn integral floats into ints.")
@click.option("--dry-run", is_flag=True, help="Print the plan, checks and savings; write nothing.")
@click.option("--resume", is_flag=True, help="Finish an interrupted cast.")
@click.option(
    "--checksum/--no-checksum",
    default=None,
    help="Store checksums in the output (default: as the source).",
)
@executor_option
@scheduler_option
@memory_option
@workers_option
@quiet_option
@json_option
def cast_cmd(
    store: str,
    name: str | None,
    to: str | None,
    auto: bool,
    out: str | None,
    out_store: str | None,
    shards: str | None,
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
    to = _target(to, auto, resume)
    ro = dry_run or out_store is not None  # (the source is only read)
    s, name = open_target(store, name, mode="r" if ro else "r+", npy_out=not ro)
    bar = progress_bar(source_bytes(s, name, not dry_run), f"cast {name}", quiet or as_json)
    with out_store_for(None if dry_run else out_store) as dst, bar as adv:
        res = s.cast(
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
            shards=shards,
            out_store=dst,
        )
    _show(res.to_dict(), as_json)


def _target(to: str | None, auto: bool, resume: bool) -> str | None:
    """The target spec of ``--to``/``--auto`` (None: ``--resume`` finds it in the journal)."""
    if auto:
        if to not in (None, "auto"):
            raise InvalidArgument("give either --to or --auto")
        return "auto"
    if to is None and not resume:
        raise InvalidArgument("cast needs --to SPEC (or --auto)")
    return to


def _show(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(doc)
    else:
        _print_cast(doc)
