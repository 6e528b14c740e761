"""The ``arraystore`` command line: parse, call the API, print. No logic lives here.

User errors (any ArrayStoreError, bad options) print one line on stderr and exit 1.
Heavy imports (numpy, zarr, rich) happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click


class _Group(click.Group):
    """Turns user errors into one line on stderr and exit status 1."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        from .core.errors import ArrayStoreError

        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(1)
        except ArrayStoreError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        return rv


def _size(value: str | None) -> int | None:
    if value is None:
        return None
    from .engine.memory import parse_size

    return parse_size(value)


def _print_json(doc: Any) -> None:
    from .core.meta import dumps

    click.echo(dumps(_json_safe(doc)), nl=False)


def _json_safe(obj: Any) -> Any:
    """NaN/inf become the strings "nan", "inf", "-inf" (JSON has no such numbers)."""
    import math

    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _json_safe(obj.tolist())
    return obj


@contextlib.contextmanager
def progress_bar(total_bytes: int, label: str, quiet: bool) -> Iterator[Callable[[Any, Any], None] | None]:
    """A rich progress bar with bytes/s and ETA on a terminal; nothing otherwise."""
    if quiet or not sys.stdout.isatty() or total_bytes <= 0:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(binary_units=True),
        TransferSpeedColumn(), TimeRemainingColumn(), transient=True,
    ) as bar:
        tid = bar.add_task(label, total=total_bytes)

        def advance(_task: Any, nbytes: Any) -> None:
            bar.advance(tid, int(nbytes) if isinstance(nbytes, (int, float)) else 0)

        yield advance


memory_option = click.option(
    "--memory", default=None, metavar="SIZE", help="Memory budget, e.g. 512MiB (default: min(1GiB, RAM/4))."
)
workers_option = click.option("--workers", type=int, default=None, help="Worker threads (default: cores).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")


def _executor(workers: int | None, name: str | None = None) -> Any:
    from .engine import get_executor

    if workers is not None and workers < 1:
        from .core.errors import InvalidArgument

        raise InvalidArgument("--workers must be >= 1")
    return get_executor(name, workers=workers)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="arraystore")
def main() -> None:
    """Large N-dimensional arrays on disk, processed chunk by chunk in bounded memory."""


@main.command()
@click.argument("store")
@click.argument("name")
@click.option("--shape", default=None, help="Comma-separated shape, e.g. 1000000,64.")
@click.option("--dtype", default=None, help="f8, i4, ... or structured 'id:i8,price:f8,vec:3f4'.")
@click.option("--chunks", default=None, help="Chunk shape, e.g. 65536,64 (default: ~64 MiB row blocks).")
@click.option("--backend", default="memmap", show_default=True, help="memmap or zarr.")
@click.option("--codec", default=None, help="zarr codec: none, lz4, zstd[:L], gzip[:L], blosc-lz4, blosc-zstd.")
@click.option("--fill", default=None, help="zeros (default), ones, range, random.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --fill random.")
@click.option("--from", "from_npy", default=None, metavar="FILE.npy", help="Stream data from a .npy file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing array (atomically).")
@click.option("--checksum", is_flag=True, help="Store chunk checksums (zarr: crc32c codec).")
@memory_option
@workers_option
@quiet_option
@json_option
def create(store: str, name: str, shape: str | None, dtype: str | None, chunks: str | None,
           backend: str, codec: str | None, fill: str | None, seed: int, from_npy: str | None,
           overwrite: bool, checksum: bool, memory: str | None, workers: int | None,
           quiet: bool, as_json: bool) -> None:
    """Create array NAME in STORE (the store is created if missing)."""
    import math

    from . import open as open_store
    from .core.chunks import normalize_shape
    from .core.dtypes import parse_dtype
    from .core.errors import InvalidArgument

    if from_npy is None and (shape is None or dtype is None):
        raise InvalidArgument("create needs --shape and --dtype (or --from FILE.npy)")
    budget = _size(memory)
    if budget is not None and budget <= 0:
        raise InvalidArgument("--memory must be positive")
    total = 0
    if shape is not None and dtype is not None:
        total = math.prod(normalize_shape(shape)) * parse_dtype(dtype).itemsize
    s = open_store(store, mode="a")
    with progress_bar(total if fill not in (None, "zeros") or from_npy else 0, f"create {name}", quiet) as adv:
        arr = s.create(name, shape, dtype, chunks=chunks, backend=backend, codec=codec, fill=fill,
                       seed=seed, from_npy=from_npy, overwrite=overwrite, memory=budget,
                       executor=_executor(workers), checksum=checksum, progress=adv)
    if as_json:
        _print_json(arr.info())
    else:
        from .core.dtypes import dtype_to_spec
        from .engine.memory import format_size

        click.echo(f"created {name}: shape {arr.shape}, {dtype_to_spec(arr.dtype)} "
                   f"({format_size(arr.nbytes)}), backend {arr.backend}, chunks {arr.chunks}")


@main.command(name="ls")
@click.argument("store")
@json_option
def ls_cmd(store: str, as_json: bool) -> None:
    """List the arrays of STORE (reads metadata only)."""
    from . import open as open_store
    from .engine.memory import format_size

    s = open_store(store, mode="r")
    rows = []
    for name in s.names():
        arr = s[name]
        from .core.dtypes import dtype_to_spec

        rows.append({"name": name, "shape": list(arr.shape), "dtype": dtype_to_spec(arr.dtype),
                     "backend": arr.backend, "codec": arr.codec, "nbytes": arr.nbytes})
    if as_json:
        _print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "shape", "dtype", "backend", "codec", "size", box=None)
    for r in rows:
        table.add_row(r["name"], "×".join(map(str, r["shape"])) or "()", r["dtype"], r["backend"],
                      r["codec"], format_size(r["nbytes"]))
    if not rows:
        click.echo(f"{store}: no arrays")
        return
    Console().print(table)


@main.command()
@click.argument("store")
@click.argument("name")
@json_option
def info(store: str, name: str, as_json: bool) -> None:
    """Shape, dtype and fields, chunks, codec, logical vs stored bytes of array NAME."""
    from . import open as open_store
    from .engine.memory import format_size

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
    t.add_row("codec", doc["codec"] + (" + crc32c" if doc["checksum"] else ""))
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
@click.argument("names", nargs=-1, required=True)
def rm(store: str, names: tuple[str, ...]) -> None:
    """Remove arrays NAMES from STORE."""
    from . import open as open_store

    s = open_store(store, mode="r+")
    for name in names:
        s.delete(name)
        click.echo(f"removed {name}")


@main.command()
@click.argument("store")
@click.argument("old")
@click.argument("new")
@click.option("--overwrite", is_flag=True)
def mv(store: str, old: str, new: str, overwrite: bool) -> None:
    """Rename array OLD to NEW."""
    from . import open as open_store

    open_store(store, mode="r+").rename(old, new, overwrite=overwrite)
    click.echo(f"renamed {old} -> {new}")


if __name__ == "__main__":  # pragma: no cover
    main()
