"""Helpers of the command line (:mod:`arraystore.cli`): shared options, sizes, JSON
output, the progress bar, the executor from --workers/--executor, axis and number lists."""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from arraystore.cli.options import scheduler
from arraystore.core.chunks import normalize_shape
from arraystore.core.dtypes import parse_dtype
from arraystore.core.meta import dumps
from arraystore.engine import get_executor
from arraystore.engine.memory import parse_size
from arraystore.errors import InvalidArgument


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))


def _size(value: str | None) -> int | None:
    if value is None:
        return None
    return parse_size(value)


def _print_json(doc: Any) -> None:
    """``doc`` as JSON on stdout; NaN/inf become "nan", "inf", "-inf"."""
    from arraystore.ops.reduce.stats import json_safe  # lazy: start-up

    click.echo(dumps(json_safe(doc)), nl=False)


@contextlib.contextmanager
def progress_bar(
    total_bytes: int, label: str, quiet: bool
) -> Iterator[Callable[[Any, Any], None] | None]:
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
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        tid = bar.add_task(label, total=total_bytes)

        def advance(_task: Any, nbytes: Any) -> None:
            bar.advance(tid, int(nbytes) if isinstance(nbytes, (int, float)) else 0)

        yield advance


memory_option = click.option(
    "--memory",
    default=None,
    metavar="SIZE",
    help="Memory budget, e.g. 512MiB (default: min(1GiB, RAM/4)).",
)
workers_option = click.option(
    "--workers", type=int, default=None, help="Worker threads (default: cores)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
executor_option = click.option(
    "--executor",
    default=None,
    help="serial, threads (default) or dask (ARRAYSTORE_SCHEDULER=tcp://HOST:PORT).",
)


def _executor(workers: int | None, name: str | None = None) -> Any:
    if workers is not None and workers < 1:
        raise InvalidArgument("--workers must be >= 1")
    name, options = scheduler(name)
    return get_executor(name, workers=workers, **options)


def _parse_axis(text: str | None) -> Any:
    if text is None or text.strip().lower() in ("", "none", "all"):
        return None
    items = [p.strip() for p in text.split(",")]
    if items[-1] == "" and len(items) > 1:
        items.pop()  # '0,' is the tuple (0,), as in Python
    # an empty item (',' reduced over no axis at all, '0,,1') or non-ASCII digits: refused
    if not all(re.fullmatch(r"[+-]?[0-9]+|[A-Za-z_][A-Za-z0-9_.-]*", p) for p in items):
        raise InvalidArgument(
            "--axis must be an integer, a dimension name or a comma-separated list of "
            f"them, got {text!r}"
        )
    parts = [int(p) if re.fullmatch(r"[+-]?[0-9]+", p) else p for p in items]
    return parts[0] if len(parts) == 1 else tuple(parts)


def _parse_floats(text: str, what: str) -> list[float]:
    """Comma-separated numbers; an empty list or an empty item ('0.5,,0.6') is refused."""
    parts = text.split(",")
    if not text.strip() or any(not p.strip() or not p.isascii() for p in parts):
        raise InvalidArgument(f"{what} must be comma-separated numbers, got {text!r}")
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise InvalidArgument(f"{what} must be comma-separated numbers, got {text!r}") from None


def create_inputs(
    shape: str | None, dtype: str | None, from_npy: str | None, memory: str | None
) -> tuple[str | None, int | None, int]:
    """``create``'s checked inputs: the dtype (f8 by default, as numpy's), the memory
    budget and the logical bytes to write (for the progress bar)."""
    if from_npy is None and shape is None:
        raise InvalidArgument("create needs --shape (or --from FILE.npy)")
    if from_npy is None and dtype is None:
        dtype = "f8"  # numpy's default (np.zeros(shape))
    budget = _size(memory)
    if budget is not None and budget <= 0:
        raise InvalidArgument("--memory must be positive")
    total = 0
    if shape is not None and dtype is not None and from_npy is None:
        total = math.prod(normalize_shape(shape)) * parse_dtype(dtype).itemsize
    return dtype, budget, total


def source_bytes(s: Any, name: str, writing: bool) -> int:
    """Bytes of array ``name`` (for a progress bar) before a command that rewrites it
    (cast): a kill inside a two-rename commit may have moved it aside; the writer puts
    it back (``Store.settle``) instead of reporting it missing."""
    if writing and name not in s:
        s.settle(name)
    return int(s[name].nbytes)
