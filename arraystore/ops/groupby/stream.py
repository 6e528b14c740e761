"""Grouped results written partition by partition: bounded memory for any group count.

The engine hands over a grouped result as parts in key order (one part per spilled
key-range partition, or one part when the groups fit in memory). :func:`collect` keeps
them for an in-memory :class:`~arraystore.ops.groupby.GroupedResult` while they take at
most half the budget, and refuses more with a ``MemoryBudgetError`` that names ``--out``
/ ``--to``; :func:`write_parts` passes each part, as one structured block of rows (key
fields first, sorted by key), to a sink as it is produced and drops it:

* :class:`StoreSink` (``--out NAME``, ``out=``) writes them region by region into one
  :class:`~arraystore.storage.NewArray` transaction, whose shape (the number of groups)
  the spiller counts first from the partitions' key files
  (:meth:`~arraystore.ops.groupby.spill.Spiller.count`); a failure leaves no array.
* :class:`~arraystore.ops.groupby.export.FileSink` (``--to file.parquet|.csv``) writes a
  row group / the lines per part into a temp file renamed in place at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
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

    def open(self, total: int) -> None: ...

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
    """The rows as a new structured array ``name`` of ``store``, written region by
    region into one :class:`~arraystore.storage.NewArray` (its shape, the number of
    groups, given to :meth:`open` first) under the name's writer lock; committed at the
    end, aborted (nothing left) on a failure."""

    def __init__(self, store: StoreRoot, name: str, overwrite: bool = False) -> None:
        store.check_writable()
        store.refuse_existing(name, overwrite)
        self.store, self.target, self.overwrite = store, name, overwrite
        self.rows = 0
        self.total = 0
        self._stack = ExitStack()
        self._new: NewArray | None = None

    def open(self, total: int) -> None:
        self.total = total

    def write(self, rows: np.ndarray) -> None:
        refuse_objects(rows)
        if self._new is None:
            self._begin(rows.dtype)
        assert self._new is not None
        rows = fixed_dtype(rows, self._new.meta.dtype)
        end = self.rows + len(rows)
        if end > self.total:
            raise RuntimeError(f"more groups than counted ({end} > {self.total})")
        self._new.handle.write((slice(self.rows, end),), np.ascontiguousarray(rows))
        self.rows = end

    def _begin(self, dtype: np.dtype) -> None:
        store, name = self.store, self.target
        meta = new_meta((self.total,), dtype, backend=store.default_backend(None))
        self._stack.enter_context(store.lock(name))
        store.clean_stale(name)
        store.refuse_existing(name, self.overwrite)
        self._new = NewArray.begin(store.layout, name, meta)

    def commit(self) -> None:
        if self._new is None:  # (no part at all: an empty array)
            self._begin(np.dtype([("size", np.int64)]))
        assert self._new is not None
        if self.rows != self.total:
            raise RuntimeError(f"fewer groups than counted ({self.rows} < {self.total})")
        self._new.commit()

    def close(self) -> None:
        try:
            if self._new is not None and self._new.state == "open":
                self._new.abort()
        finally:
            self._stack.close()
