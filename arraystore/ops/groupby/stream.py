"""Grouped results written partition by partition: bounded memory for any group count.

The engine hands over a grouped result as parts in key order (one part per spilled
key-range partition, or one part when the groups fit in memory). :func:`collect` keeps
them for an in-memory :class:`~arraystore.ops.groupby.GroupedResult` while they take at
most half the budget, and refuses more with a ``MemoryBudgetError`` that names ``--out``
/ ``--to``; :func:`write_parts` passes each part, as one structured block of rows (key
fields first, sorted by key), to a sink as it is produced and drops it:

* :class:`StoreSink` (``--out NAME``, ``out=``) appends the rows to a staging file in the
  store's temp area, then builds the new array from it in one
  :class:`~arraystore.storage.NewArray` transaction (its shape is only known at the end);
  a failure leaves no array and no staging file.
* :class:`~arraystore.ops.groupby.export.FileSink` (``--to file.parquet|.csv``) writes a
  row group / the lines per part into a temp file renamed in place at the end.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from arraystore.engine.memory import format_size
from arraystore.errors import InvalidArgument, MemoryBudgetError
from arraystore.ops.create import new_meta
from arraystore.storage.transaction import NewArray

if TYPE_CHECKING:
    from arraystore.storage import StoreRoot

#: the parts an in-memory result may hold (1/RESULT_SHARE of the budget)
RESULT_SHARE = 2
#: bytes copied per block from the staging file into the new array
COPY_BYTES = 8 << 20

Columns = tuple[np.ndarray, np.ndarray, dict[str, dict[str, np.ndarray]]]


def part_bytes(part: Columns) -> int:
    keys, size, out = part
    return keys.nbytes + size.nbytes + sum(v.nbytes for d in out.values() for v in d.values())


def collect(parts: Iterable[Columns], budget: int) -> list[Columns]:
    """The parts, refused (``MemoryBudgetError``) past 1/:data:`RESULT_SHARE` of the
    budget: such a result is written with ``--out``/``--to`` instead."""
    kept: list[Columns] = []
    total = groups = 0
    for part in parts:
        kept.append(part)
        total += part_bytes(part)
        groups += len(part[1])
        if total * RESULT_SHARE > budget:
            raise MemoryBudgetError(
                f"the grouped result passed {format_size(total)} ({groups} groups so far), "
                f"over 1/{RESULT_SHARE} of the memory budget {format_size(budget)}: write it "
                "with --out NAME or --to FILE (stats(..., out=NAME / to=FILE)), which "
                "stream it, or raise --memory"
            )
    return kept


class Sink(Protocol):
    """Where :func:`write_parts` puts the rows (in key order)."""

    target: str

    def write(self, rows: np.ndarray) -> None: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class GroupsWritten:
    """What ``stats(..., out=)`` / ``to=`` (``stats --by --out/--to``) wrote."""

    target: str
    groups: int
    seconds: float = 0.0
    spilled_partitions: int = 0
    format: str = "array"


def each(tables: Iterable[Any], make: Callable[[Any], np.ndarray]) -> Iterator[np.ndarray]:
    """``make(table)`` of each table, holding one table or its rows at a time."""
    for t in tables:
        rows = make(t)
        del t
        yield rows
        del rows


def write_parts(sink: Sink, parts: Iterable[np.ndarray]) -> int:
    """Write each part's rows to ``sink`` as it comes, then commit; returns the rows.
    ``sink.close()`` runs on success and failure (a failed sink leaves nothing)."""
    n = 0
    try:
        for rows in parts:
            sink.write(rows)
            n += len(rows)
            del rows
        sink.commit()
    finally:
        sink.close()
    return n


def fixed_dtype(rows: np.ndarray, first: np.dtype | None) -> np.ndarray:
    """``rows`` as the dtype of the first part (a later part may differ in a detail,
    e.g. a wider fixed string); columns of Python ints (int sums past int64) stay."""
    if first is None or rows.dtype == first or rows.dtype.hasobject or first.hasobject:
        return rows
    return rows.astype(first)


def refuse_objects(rows: np.ndarray) -> None:
    """Columns of Python ints (exact int sums past int64) cannot be stored."""
    for name in rows.dtype.names or ():
        if rows.dtype[name].hasobject:
            raise InvalidArgument(
                f"column {name!r} holds exact integer sums beyond int64: it cannot be "
                "stored; write it with --to FILE or print it with --json"
            )


class StoreSink:
    """The rows as a new structured array ``name`` of ``store`` (see the module doc)."""

    def __init__(self, store: StoreRoot, name: str, overwrite: bool = False) -> None:
        store.check_writable()
        store.refuse_existing(name, overwrite)
        self.store, self.target, self.overwrite = store, name, overwrite
        self.dtype: np.dtype | None = None
        self.rows = 0
        self.dir: Path | None = None
        self._fh: Any = None

    def write(self, rows: np.ndarray) -> None:
        refuse_objects(rows)
        rows = fixed_dtype(rows, self.dtype)
        if self._fh is None:
            self.dtype = rows.dtype
            self.dir = self.store.layout.temp_path(self.target)
            self.dir.mkdir()
            self._fh = open(self.dir / "rows", "wb")  # noqa: SIM115 (closed in close())
        self._fh.write(np.ascontiguousarray(rows).data)
        self.rows += len(rows)

    def commit(self) -> None:
        if self._fh is not None:
            self._fh.close()
        dtype = self.dtype if self.dtype is not None else np.dtype([("size", np.int64)])
        store, name = self.store, self.target
        meta = new_meta((self.rows,), dtype, backend=store.default_backend(None))
        c0 = meta.chunks[0] if meta.chunks else 1
        step = max(1, COPY_BYTES // max(1, dtype.itemsize) // max(1, c0)) * max(1, c0)
        with store.lock(name):
            store.clean_stale(name)
            store.refuse_existing(name, self.overwrite)
            with NewArray.begin(store.layout, name, meta) as new:
                if self.dir is None:
                    return
                with open(self.dir / "rows", "rb") as fh:
                    for a in range(0, self.rows, step):
                        b = min(a + step, self.rows)
                        block = np.fromfile(fh, dtype, b - a)
                        new.handle.write((slice(a, b),), block)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
