"""Grouped reductions of :class:`arraystore.Array`: ``groupby``, ``unique``,
``value_counts``, ``nunique``.

A mixin of the façade (like :mod:`arraystore.reductions`): thin, typed methods over
:func:`arraystore.ops.groupby.groupby_reduce`, which reads the array once per call,
in fixed row blocks, in bounded memory. Semantics follow pandas ``groupby`` with
``sort=True``: NaN values are skipped, rows whose key is NaN are dropped unless
``dropna=False`` (then NaN is one group, sorted last).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, cast, overload

import numpy as np

from arraystore.engine import Executor
from arraystore.errors import InvalidArgument
from arraystore.ops.groupby import GroupedResult, GroupsWritten, groupby_reduce
from arraystore.ops.groupby.export import FileSink
from arraystore.ops.groupby.keys import factorize
from arraystore.ops.groupby.stream import Sink, StoreSink
from arraystore.storage import ArrayView


class GroupBy:
    """``arr.groupby(key)``: per-group reductions, computed when a method is called.

    Every method reads the array once. ``.stats(...)`` gives a
    :class:`~arraystore.ops.groupby.GroupedResult` of several ops; the single ops
    (``.sum()``, ``.mean()``, ...) give a structured numpy array, one row per group
    sorted by key: the key fields, then one column per value field (like pandas'
    ``df.groupby(key).sum()``).
    """

    def __init__(
        self,
        arr: ArrayView,
        key: Any,
        dropna: bool = True,
        reduce_inner: bool = False,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        io: str | None = None,
    ) -> None:
        self._arr = arr
        self._key = key
        self._opts: dict[str, Any] = {
            "dropna": dropna,
            "reduce_inner": reduce_inner,
            "memory": memory,
            "executor": executor,
            "workers": workers,
            "io": io,
        }

    def __repr__(self) -> str:
        return f"GroupBy({self._arr.name}, by={self._key!r})"

    @overload
    def stats(
        self,
        fields: str | Sequence[str] | None = None,
        ops: Iterable[str] | None = None,
        where: str | None = None,
        ddof: int = 0,
        q: float | Sequence[float] | None = None,
        *,
        out: None = None,
        to: None = None,
        overwrite: bool = False,
    ) -> GroupedResult: ...

    @overload
    def stats(
        self,
        fields: str | Sequence[str] | None = None,
        ops: Iterable[str] | None = None,
        where: str | None = None,
        ddof: int = 0,
        q: float | Sequence[float] | None = None,
        *,
        out: str | None = None,
        to: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
    ) -> GroupsWritten: ...

    def stats(
        self,
        fields: str | Sequence[str] | None = None,
        ops: Iterable[str] | None = None,
        where: str | None = None,
        ddof: int = 0,
        q: float | Sequence[float] | None = None,
        *,
        out: str | None = None,
        to: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
    ) -> GroupedResult | GroupsWritten:
        """Several reductions per group in one pass.

        Parameters
        ----------
        fields : str or list of str, optional
            Value fields (default: the numeric fields that are not keys).
        ops : iterable of str, optional
            Of ``size count sum mean var std min max first last quantile``
            (default: count, sum, mean, std, min, max).
        where : str, optional
            Only rows where this expression over the fields holds (``"qty > 0"``).
        ddof : int, default 0
            Delta degrees of freedom of ``std``/``var``.
        q : float or list of float, optional
            Exact quantiles per group (linear interpolation, like pandas).
        out : str, optional
            Write the result as a new structured array ``out`` of this array's store
            (one row per group, key fields first, sorted by key) and return a
            :class:`~arraystore.ops.groupby.GroupsWritten`. The result streams out
            partition by partition, so any number of groups fits the memory budget
            (an in-memory result over half the budget is refused).
        to : str or path, optional
            The same to a ``.parquet`` or ``.csv`` file.
        overwrite : bool, default False
            With ``out``: replace an existing array (``to`` replaces a file).
        """
        if out is not None and to is not None:
            raise InvalidArgument("give only one of out= and to=")
        sink: Sink | None = None
        if out is not None:
            sink = StoreSink(self._arr.store, out, overwrite)
        elif to is not None:
            sink = FileSink(to)
        return groupby_reduce(
            self._arr, self._key, fields, ops, ddof=ddof, q=q, where=where, sink=sink, **self._opts
        )

    def _one(self, op: str, fields: Any, ddof: int = 0, q: Any = None) -> np.ndarray:
        res = self.stats(fields, (op,), ddof=ddof, q=q)
        key_cols = [(n, res.keys[n]) for n in res.key_names]
        vals = [(name, d[op]) for name, d in res.fields.items()]
        if op == "quantile" and np.ndim(q) == 0:
            vals = [(n, v[..., 0]) for n, v in vals]
        cols = key_cols + vals
        out = np.empty(len(res), np.dtype([(n, v.dtype, v.shape[1:]) for n, v in cols]))
        for n, v in cols:
            out[n] = v
        return out

    def sum(self, fields: str | Sequence[str] | None = None) -> np.ndarray:
        """Sum per group (ints exact; NaN skipped)."""
        return self._one("sum", fields)

    def mean(self, fields: str | Sequence[str] | None = None) -> np.ndarray:
        """Mean per group (float64; NaN skipped)."""
        return self._one("mean", fields)

    def var(self, fields: str | Sequence[str] | None = None, ddof: int = 1) -> np.ndarray:
        """Variance per group (``ddof=1`` like pandas)."""
        return self._one("var", fields, ddof=ddof)

    def std(self, fields: str | Sequence[str] | None = None, ddof: int = 1) -> np.ndarray:
        """Standard deviation per group (``ddof=1`` like pandas)."""
        return self._one("std", fields, ddof=ddof)

    def min(self, fields: str | Sequence[str] | None = None) -> np.ndarray:
        """Minimum per group (input dtype; NaN for a float group of NaN only)."""
        return self._one("min", fields)

    def max(self, fields: str | Sequence[str] | None = None) -> np.ndarray:
        """Maximum per group."""
        return self._one("max", fields)

    def count(self, fields: str | Sequence[str] | None = None) -> np.ndarray:
        """Non-NaN values per group."""
        return self._one("count", fields)

    def first(self, fields: str | Sequence[str] | None = None) -> np.ndarray:
        """First non-NaN value per group (in row order)."""
        return self._one("first", fields)

    def last(self, fields: str | Sequence[str] | None = None) -> np.ndarray:
        """Last non-NaN value per group."""
        return self._one("last", fields)

    def quantile(
        self, q: float | Sequence[float] = 0.5, fields: str | Sequence[str] | None = None
    ) -> np.ndarray:
        """Exact quantile(s) per group, linear interpolation (pandas' default); a list
        of ``q`` gives each column a last axis of ``len(q)``."""
        return self._one("quantile", fields, q=q)

    def size(self) -> np.ndarray:
        """Rows per group: the key fields and ``size``."""
        res = self.stats(ops=("size",))
        out = np.empty(len(res), np.dtype([*res.keys.dtype.descr, ("size", np.int64)]))
        for n in res.key_names:
            out[n] = res.keys[n]
        out["size"] = res.size
        return out

    def nunique(self, field: str) -> np.ndarray:
        """Distinct non-NaN values of ``field`` per group: the key fields and ``field``."""
        keys = self._key if isinstance(self._key, list | tuple) else [self._key]
        inner = GroupBy(self._arr, [*keys, field], **self._opts).size()
        kn = list(inner.dtype.names or ())[:-2]
        vals = inner[field]
        ok = ~np.isnan(vals) if vals.dtype.kind == "f" else np.ones(len(inner), bool)
        outer = self.size()
        ucols, code = factorize([inner[n] for n in kn])
        counts = np.bincount(code[ok], minlength=len(ucols[0]))
        out = np.empty(len(outer), np.dtype([*outer.dtype.descr[:-1], (field, np.int64)]))
        for n in outer.dtype.names[:-1]:  # type: ignore[index]
            out[n] = outer[n]
        out[field] = _align(outer, ucols, kn, counts)
        return out


def _align(outer: np.ndarray, ucols: list[np.ndarray], kn: list[str], counts: Any) -> Any:
    """``counts`` (per key row of ``ucols``) at the key rows of ``outer`` (0 if absent)."""
    both, code = factorize([np.concatenate([outer[n], u]) for n, u in zip(kn, ucols, strict=True)])
    at = np.zeros(len(both[0]), np.int64)
    at[code[len(outer) :]] = counts
    return at[code[: len(outer)]]


class Grouping:
    """Grouping methods of :class:`arraystore.Array` (which mixes this in)."""

    @property
    def _gview(self) -> ArrayView:
        return cast(ArrayView, self)

    def groupby(
        self,
        key: Any,
        dropna: bool = True,
        reduce_inner: bool = False,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        io: str | None = None,
    ) -> GroupBy:
        """Group the rows (axis 0) by ``key``; reduce with the returned :class:`GroupBy`.

        Parameters
        ----------
        key : str, Array, dict or list of them
            A field name; an expression over the fields (``"floor(t / 3600)"``,
            ``"price > 100"``); another stored array (or field view) with one key per
            row; a dict ``{name: key}`` naming the keys; or a list of keys (composite).
            Keys may be bool, int, uint, float or fixed strings (S/U).
        dropna : bool, default True
            Drop rows whose key is NaN (pandas' default); False: NaN is a group, last.
        reduce_inner : bool, default False
            A plain N-d array: also reduce its trailing axes per group (default: keep
            them, results of shape ``(groups, *shape[1:])``).
        memory : int or str, optional
            Memory budget (default: from the machine).
        executor : str or Executor, optional
            The executor, by name or instance (default ``"threads"``).
        workers : int, optional
            Worker count of a named executor.
        io : {"auto", "direct", "buffered"}, optional
            Read around the page cache (``"direct"``), as in :meth:`stats`.
        """
        return GroupBy(self._gview, key, dropna, reduce_inner, memory, executor, workers, io)

    def value_counts(self, field: str | None = None, dropna: bool = True) -> np.ndarray:
        """Rows per distinct value of ``field``: ``(field, count)`` sorted by count,
        descending, ties by value (a plain array: its values).

        Parameters
        ----------
        field : str, optional
            The field (a plain 1-d array or a field view: None, its values).
        dropna : bool, default True
            Leave NaN out (else NaN is one more value, sorted last).
        """
        counts = self.groupby(self._key_of(field), dropna=dropna).size()
        order = np.lexsort((np.arange(len(counts)), -counts["size"]))
        out = counts[order]
        return out.astype(np.dtype([(out.dtype.names[0], out.dtype[0]), ("count", np.int64)]))  # type: ignore[index]

    def unique(self, field: str | None = None, dropna: bool = True) -> np.ndarray:
        """Sorted distinct values of ``field`` (NaN dropped unless ``dropna=False``).

        Parameters
        ----------
        field : str, optional
            The field (a plain 1-d array or a field view: None, its values).
        dropna : bool, default True
            Leave NaN out (else NaN is one more value, sorted last).
        """
        sizes = self.groupby(self._key_of(field), dropna=dropna).size()
        return np.ascontiguousarray(sizes[sizes.dtype.names[0]])  # type: ignore[index]

    def nunique(self, field: str | None = None, dropna: bool = True) -> int:
        """Number of distinct values of ``field`` (NaN not counted unless ``dropna=False``).

        Parameters
        ----------
        field : str, optional
            The field (a plain 1-d array or a field view: None, its values).
        dropna : bool, default True
            Leave NaN out (else NaN is one more value, sorted last).
        """
        return len(self.unique(field, dropna))

    def _key_of(self, field: str | None) -> Any:
        view = self._gview
        if field is None:
            if view.meta.fields and view.field is None:
                raise InvalidArgument(f"{view.name} is structured: name a field")
            return {view.field or view.name: view}
        return field
