"""``arraystore rm``, ``mv``, ``verify`` and ``upgrade``: removing, renaming, checking and
upgrading arrays."""

from __future__ import annotations

import sys

import click

from arraystore.cli.options import storage_option, store_opener, writable_option
from arraystore.cli.util import _print_json, json_option


@click.command()
@click.argument("store")
@storage_option
@click.argument("names", nargs=-1, required=True)
@writable_option
@click.option("-f", "--missing-ok", is_flag=True, help="Names not in STORE are no error.")
def rm(store: str, names: tuple[str, ...], missing_ok: bool) -> None:
    """Remove arrays NAMES from STORE: like POSIX rm, every named array that exists goes
    (each atomically), then the missing names are reported on one line (exit status 1)."""
    s = store_opener()(store, mode="r+")
    s.remove(names, missing_ok=missing_ok, removed=lambda name: click.echo(f"removed {name}"))


@click.command()
@click.argument("store")
@storage_option
@click.argument("old")
@click.argument("new")
@writable_option
@click.option("--overwrite", is_flag=True)
def mv(store: str, old: str, new: str, overwrite: bool) -> None:
    """Rename array OLD to NEW."""
    open_store = store_opener()

    open_store(store, mode="r+").rename(old, new, overwrite=overwrite)
    click.echo(f"renamed {old} -> {new}")


@click.command()
@click.argument("store")
@storage_option
@click.argument("name", required=False)
@click.option("--repair", is_flag=True, help="Remove leftovers of interrupted writes only.")
@json_option
def verify(store: str, name: str | None, repair: bool, as_json: bool) -> None:
    """Check metadata, file sizes, that every chunk decodes, and checksums; exit 1 if corrupt."""
    open_store = store_opener()
    s = open_store(store, mode="r+" if repair else "r")
    report = s.verify(name, repair=repair)
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


@click.command()
@click.argument("store")
@storage_option
@click.argument("names", nargs=-1)
def upgrade(store: str, names: tuple[str, ...]) -> None:
    """Rewrite the format-1 arrays NAMES (default: all) of STORE in format 2, in place:
    metadata into zarr.json, memmap data files made zarr shards (no copy). Each array
    is upgraded atomically; an interrupted upgrade leaves it readable, run it again."""
    open_store = store_opener()
    s = open_store(store, mode="r+")
    for name in names or s.names():
        done = s.upgrade(name)
        click.echo(f"upgraded {name}" if done else f"{name}: already format 2")
    if not names:
        s.mark_format()
