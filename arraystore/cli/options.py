"""Shared CLI options: ``--storage-option KEY=VALUE`` (URL stores) and ``--scheduler ADDRESS``.

Both are stored in the click context (``expose_value=False``) so the commands keep their
signatures: :func:`store_opener` and :func:`scheduler` read them back.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import click

from arraystore import open as open_store
from arraystore import open_array
from arraystore.errors import InvalidArgument
from arraystore.fs.remote import split_url
from arraystore.verbs import undo_new_store

_OPTS = "arraystore.storage_options"
_SCHED = "arraystore.scheduler"
_WRITABLE = "arraystore.writable"


def parse_storage_option(text: str) -> tuple[str, Any]:
    """``key=value``; the value is JSON when it parses (true, 3, {"a": 1}), else a string."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InvalidArgument(f"--storage-option needs KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    if isinstance(parsed, float) and value.strip().lower() in ("nan", "infinity", "-infinity"):
        parsed = value
    return key, parsed


def _keep_options(ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> None:
    if value:
        opts = ctx.meta.setdefault(_OPTS, {})
        for text in value:
            k, v = parse_storage_option(text)
            opts[k] = v


def _keep_scheduler(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[_SCHED] = value


storage_option = click.option(
    "--storage-option",
    "storage_options",
    multiple=True,
    metavar="KEY=VALUE",
    expose_value=False,
    callback=_keep_options,
    help="fsspec option for a URL store (s3://...), e.g. endpoint_url=http://host:9000; "
    "repeatable.",
)

scheduler_option = click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    expose_value=False,
    callback=_keep_scheduler,
    help="dask scheduler, e.g. tcp://host:8786 (implies --executor dask).",
)


def _keep_writable(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_WRITABLE] = True


writable_option = click.option(
    "--writable",
    is_flag=True,
    expose_value=False,
    callback=_keep_writable,
    help="STORE is a zarr group arraystore did not write: add the new array to it "
    "(its own arrays are never written).",
)

out_store_option = click.option(
    "--out-store",
    default=None,
    metavar="STORE2",
    help="Write the new array into this other store (created if missing); STORE is only read.",
)


@contextlib.contextmanager
def out_store_for(path: str | None) -> Iterator[Any]:
    """The store ``--out-store`` names, opened with mode ``"a"`` (None without one); one
    created here is removed again when the command fails before writing an array."""
    if path is None:
        yield None
        return
    fresh = split_url(path) is None and not os.path.exists(path)
    dst = store_opener()(path, "a")
    with undo_new_store(dst, fresh):
        yield dst


def option_group(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Several click options as one decorator; ``--help`` lists them in the order given."""

    def apply(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


#: how a file is cast into ``--dtype`` on write (``create --from FILE``, ``import``);
#: the command takes them as ``**cast`` and hands them to ``Store.create``/``import_file``
cast_on_write_options = option_group(
    click.option(
        "--casting",
        default=None,
        help="How the file is cast into --dtype: value (default), clip, safe, same_kind, unsafe.",
    ),
    click.option("--rtol", type=float, default=None, help="Relative tolerance of 'value'."),
    click.option(
        "--nan-to", "nan_to", type=float, default=None, help="clip: NaN becomes this value."
    ),
)


def storage_options() -> dict[str, Any] | None:
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get(_OPTS)


def store_opener() -> Callable[..., Any]:
    """``arraystore.open`` with this command's ``--storage-option`` values."""
    opts = storage_options()
    ctx = click.get_current_context(silent=True)
    writable = ctx is not None and ctx.meta.get(_WRITABLE, False)

    def opener(path: str, mode: str = "r+") -> Any:
        # without --writable a zarr group arraystore did not write opens read-only (mode
        # None); "a" keeps creating a store in an empty folder
        keep = mode == "r" or writable or not os.path.isdir(path)
        if not keep and (mode == "r+" or os.listdir(path)):
            return open_store(path, mode=None, storage_options=opts)
        return open_store(path, mode=mode, storage_options=opts)

    return opener


def open_target(
    path: str, name: str | None, mode: str = "r", npy_out: bool = False
) -> tuple[Any, str]:
    """The store and array name of ``STORE NAME``, or of a bare array path (NAME
    omitted): a ``.npy`` file or a zarr array folder (``data.zarr/temperature``).
    ``npy_out``: a bare .npy opens writable (a cast into a new .npy beside it)."""
    if name is not None:
        return store_opener()(path, mode), name
    ctx = click.get_current_context(silent=True)
    writable = mode != "r" and ctx is not None and ctx.meta.get(_WRITABLE, False)
    bare_npy = npy_out and mode != "r" and os.path.isfile(path)
    arr = open_array(path, mode="r+" if writable or bare_npy else None)
    return arr.store, arr.name


def scheduler(executor: str | None) -> tuple[str | None, dict[str, Any]]:
    """The executor name and its options once ``--scheduler`` is taken into account."""
    ctx = click.get_current_context(silent=True)
    address = None if ctx is None else ctx.meta.get(_SCHED)
    if address is None:
        return executor, {}
    if executor not in (None, "dask"):
        raise InvalidArgument(f"--scheduler needs the dask executor, not --executor {executor}")
    return "dask", {"address": address}


#: packages whose exceptions are remote storage failures (network, credentials, service)
_REMOTE_ERROR_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "google", "adlfs")


def remote_error(exc: BaseException) -> str | None:
    """A one-line message for an object-store client error, None for anything else."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        root = type(cur).__module__.split(".")[0]
        if root in _REMOTE_ERROR_MODULES:
            return f"remote storage: {type(cur).__name__}: {cur}"
        cur = cur.__cause__ or cur.__context__
    return None
