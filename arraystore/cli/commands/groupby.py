"""``arraystore stats --by``: grouped reductions, printed, written as an array or a file.

Parsing and printing only: the work is ``Array.groupby(...).stats(...)``.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

import click

from arraystore._native.direct import IO_ENV, io_mode
from arraystore._native.pages import POLICY_ENV
from arraystore.cli.options import store_opener
from arraystore.cli.output import console, print_table
from arraystore.cli.util import _executor, _parse_floats, _print_json, _size
from arraystore.errors import InvalidArgument

#: groups printed as a table (all of them go to --json, --out and --to)
MAX_PRINTED = 50
_FIELD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_NAMED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)(.+)$")


def parse_by(items: tuple[str, ...]) -> dict[str, str]:
    """``--by`` values: a field, an expression, or ``NAME=EXPR`` (names the key column)."""
    out: dict[str, str] = {}
    for item in items:
        m = _NAMED.match(item)
        name, key = (m.group(1), m.group(2).strip()) if m else (item.strip(), item.strip())
        if name in out:
            raise InvalidArgument(f"--by {name!r} is given twice")
        out[name] = key
    return out


def _split(items: tuple[str, ...]) -> list[str] | None:
    names = [p.strip() for item in items for p in item.split(",") if p.strip()]
    return names or None


def grouped_stats(
    store: str,
    name: str,
    by: tuple[str, ...],
    fields: tuple[str, ...],
    ops: str | None,
    quantiles: str | None,
    ddof: int,
    out: str | None,
    to: str | None,
    opts: dict[str, Any],
) -> None:
    """Run ``stats --by`` and show or write its result (``opts``: executor, memory,
    workers, quiet, as_json, overwrite, where)."""
    if out is not None and to is not None:
        raise InvalidArgument("--out and --to cannot be combined")
    s = store_opener()(store, mode="a" if out is not None else "r")
    arr = s[name]
    keys = parse_by(by)
    bad = [k for k in keys if out is not None and not _FIELD.match(k)]
    if bad:
        raise InvalidArgument(
            f"--out: key {bad[0]!r} is not a field name; name it: --by 'NAME={bad[0]}'"
        )
    op_list = _split((ops,)) if ops else None
    qs = _parse_floats(quantiles, "--quantiles") if quantiles is not None else None
    gb = arr.groupby(
        keys,
        memory=_size(opts["memory"]),
        executor=_executor(opts["workers"], opts["executor"]),
    )
    args = (_split(fields), op_list)
    kw: dict[str, Any] = {"ddof": ddof, "q": qs, "where": opts.get("where")}
    if out is not None or to is not None:
        done = gb.stats(*args, **kw, out=out, to=to, overwrite=opts["overwrite"])
        if not opts["quiet"]:
            what = out if out is not None else f"{to} ({done.format})"
            console().print(f"wrote {what}: {done.groups} groups", style="dim")
        return
    res = gb.stats(*args, **kw)
    if opts["as_json"]:
        _print_json(res.to_dict())
        return
    _print_groups(res)


def _cell(v: Any) -> str:
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _print_groups(res: Any) -> None:
    from rich.markup import escape  # lazy: start-up

    cols = res.columns()
    n = min(len(res), MAX_PRINTED)
    rows = [[escape(_cell(v[i].tolist())) for _, v in cols] for i in range(n)]
    con = console()
    title = f"{res.array} by {', '.join(res.key_names)}: {len(res)} groups"
    print_table(con, [escape(c) for c, _ in cols], rows, set(range(len(cols))), title=title)
    if len(res) > n:
        con.print(f"... {len(res) - n} more groups (--json, --out or --to for all)", style="dim")
    con.print(f"{res.seconds:.2f} s", style="dim")


_OPTIONS = (
    click.option(
        "--by",
        "by",
        multiple=True,
        help="Group by a field, an expression or NAME=EXPR (repeat for a composite key); "
        "NaN values are skipped and rows with a NaN key dropped.",
    ),
    click.option("--ops", default=None, help="With --by: ops, e.g. count,sum,mean,std,min,max."),
    click.option(
        "--out",
        default=None,
        help="With --by: write the groups as a new array NAME (streamed: any number of groups).",
    ),
    click.option("--to", "to", default=None, help="With --by: write the groups to .parquet/.csv."),
    click.option("--overwrite", is_flag=True, help="With --out: replace an existing array."),
)


def add_group_options(cmd: click.Command) -> None:
    """Add ``--by --ops --out --to --overwrite`` to the ``stats`` command (before its
    ``--executor``): with ``--by`` it runs :func:`grouped_stats` instead of its body."""
    fn = cmd.callback
    assert fn is not None

    @functools.wraps(fn)
    def command(**kw: Any) -> None:
        by, ops, out, to = kw.pop("by"), kw.pop("ops"), kw.pop("out"), kw.pop("to")
        overwrite = kw.pop("overwrite")
        if not (by or ops or out or to):
            fn(**kw)
            return
        if not by:
            raise InvalidArgument("--ops, --out and --to need --by")
        if kw["name"] is None or any(kw.get(k) is not None for k in ("expr", "axis", "bins")):
            raise InvalidArgument("--by needs an array NAME and no --expr, --axis or --hist")
        if kw.get("page_policy") is not None:
            os.environ[POLICY_ENV] = kw["page_policy"]
        if kw.get("io") is not None:  # (checked: a one-line error)
            os.environ[IO_ENV] = io_mode(kw["io"], "--io")
        opts = {k: kw[k] for k in ("executor", "memory", "workers", "quiet", "as_json")}
        quantiles, ddof = kw["quantiles"], kw["ddof"]
        fields = kw["fields"]
        opts["overwrite"] = overwrite
        opts["where"] = kw.get("where")  # (a --where of the stats command, if it has one)
        grouped_stats(kw["store"], kw["name"], by, fields, ops, quantiles, ddof, out, to, opts)

    def _holder() -> None: ...

    for option in reversed(_OPTIONS):
        option(_holder)
    new = list(getattr(_holder, "__click_params__", []))[::-1]
    at = next((i for i, p in enumerate(cmd.params) if p.name == "executor"), len(cmd.params))
    cmd.params[at:at] = new
    cmd.callback = command
