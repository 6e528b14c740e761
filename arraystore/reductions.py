"""The reductions of :class:`arraystore.Array` (``stats``, ``sum`` ... ``histogram``).

A mixin of the façade, kept apart from ``array.py`` as xarray keeps its aggregation
methods in ``core/_aggregations.py``: thin, typed, documented methods over
:mod:`arraystore.ops.reduce.stats`, which reads the array once per call, chunk by chunk,
in bounded memory. Single reductions follow numpy (``skipna=False``); :meth:`stats`
summarises data (``skipna=True``). On a structured array they give ``{field: result}``
(its numeric fields, or those ``fields`` lists) unless ``fields`` is one name; a plain
array or a field view gives the result itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from arraystore.engine import Executor
from arraystore.ops.reduce.numpy_api import array_function
from arraystore.ops.reduce.stats import STATS, StatsResult, hist, quantile, reduce
from arraystore.storage import ArrayView


class Reductions:
    """Reduction methods of :class:`arraystore.Array` (which mixes this in)."""

    @property
    def _view(self) -> ArrayView:
        return cast(ArrayView, self)  # (only ever mixed into Array, an ArrayView)

    def __array_function__(
        self,
        func: Callable[..., Any],
        types: Iterable[type],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """numpy's reductions (``np.sum(arr)``, ``np.mean(arr, axis=0)``,
        ``np.quantile(arr, q)``...) run out of core, returning what numpy returns on the
        data in memory; any other numpy function raises :class:`InvalidType` (read a
        region first: ``np.asarray(arr[...])``). See :mod:`arraystore.ops.reduce.numpy_api`.
        """
        return array_function(self._view, func, args, kwargs)

    def _unwrap(self, values: dict[str, Any], fields: Any) -> Any:
        """``{field: value}`` for a structured array, else the one value."""
        view = self._view
        if view.meta.fields and view.field is None and not isinstance(fields, str):
            return values
        return next(iter(values.values()))

    def stats(
        self,
        fields: str | Sequence[str] | None = None,
        axis: int | Sequence[int] | None = None,
        skipna: bool = True,
        ddof: int = 0,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        ops: Iterable[str] | None = None,
        where: Any = None,
        io: str | None = None,
    ) -> StatsResult:
        """count, nan_count, sum, mean, std, min, max per field in one pass (a StatsResult).

        ``skipna=True`` by default here (a data summary); the single reductions below
        follow numpy (``skipna=False``).

        Parameters
        ----------
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        axis : int or tuple of int, optional
            Axes to reduce (default: all).
        skipna : bool, default True
            Skip NaN, like the ``np.nan*`` functions (without their warnings).
        ddof : int, default 0
            Delta degrees of freedom of ``std`` / ``var``.
        memory : int or str, optional
            Memory budget, in bytes or as ``"512MiB"`` (default: from the machine).
        executor : str or Executor, optional
            The executor, by name or instance (default ``"threads"``).
        workers : int, optional
            Workers of an executor given by name.
        ops : iterable of str, optional
            The reductions to compute (default the seven above; also ``var``,
            ``argmin``, ``argmax``, ``any``, ``all``, ``count_nonzero``).
        where : str, Array or numpy bool array, optional
            Only the elements where this holds (numpy's ``where=``): an expression over
            the fields (a plain array: its name), e.g. ``"price > 0"``, or a bool array
            of the array's shape (records: one per row), read block by block.
        io : {"auto", "direct", "buffered"}, optional
            ``direct``: read with ``O_DIRECT`` around the page cache (about half the
            CPU time); ``auto`` (buffered, measured faster on our disks) or
            ``buffered``; default ``$ARRAYSTORE_IO``, else ``auto``.

        Returns
        -------
        StatsResult
            ``result[field][op]``; ``to_dict()`` / ``to_json()``.
        """
        return reduce(
            self._view, ops or STATS, axis=axis, fields=fields, skipna=skipna, ddof=ddof,
            memory=memory, executor=executor, workers=workers, where=where, io=io,
        )  # fmt: skip

    def _one(
        self,
        op: str,
        axis: int | Sequence[int] | None,
        fields: str | Sequence[str] | None,
        skipna: bool,
        memory: int | str | None,
        executor: str | Executor | None,
        workers: int | None,
        progress: Callable[[Any, Any], None] | None,
        where: Any = None,
        ddof: int = 0,
    ) -> Any:
        res = reduce(
            self._view, (op,), axis=axis, fields=fields, skipna=skipna, ddof=ddof, memory=memory,
            executor=executor, workers=workers, progress=progress, where=where,
        )  # fmt: skip
        return self._unwrap({name: d[op] for name, d in res.fields.items()}, fields)

    def sum(
        self,
        axis: int | Sequence[int] | None = None,
        fields: str | Sequence[str] | None = None,
        skipna: bool = False,
        *,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        where: Any = None,
    ) -> Any:
        """Sum, as ``np.sum`` (``np.nansum`` with ``skipna``); integer sums are exact.

        Parameters
        ----------
        axis : int or tuple of int, optional
            Axes to reduce (default: all).
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        skipna : bool, default False
            Skip NaN.
        where, memory, executor, workers, progress : optional
            numpy's ``where=``, memory budget, executor, its workers as in :meth:`stats`;
            ``progress(task, nbytes)`` after each block read.

        Returns
        -------
        scalar, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        return self._one("sum", axis, fields, skipna, memory, executor, workers, progress, where)

    def mean(
        self,
        axis: int | Sequence[int] | None = None,
        fields: str | Sequence[str] | None = None,
        skipna: bool = False,
        *,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        where: Any = None,
    ) -> Any:
        """Mean, as ``np.mean`` (``np.nanmean`` with ``skipna``), in float64 or complex128.

        Parameters
        ----------
        axis : int or tuple of int, optional
            Axes to reduce (default: all).
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        skipna : bool, default False
            Skip NaN.
        where, memory, executor, workers, progress : optional
            numpy's ``where=``, memory budget, executor, its workers as in :meth:`stats`;
            ``progress(task, nbytes)`` after each block read.

        Returns
        -------
        scalar, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        return self._one("mean", axis, fields, skipna, memory, executor, workers, progress, where)

    def var(
        self,
        axis: int | Sequence[int] | None = None,
        fields: str | Sequence[str] | None = None,
        skipna: bool = False,
        ddof: int = 0,
        *,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        where: Any = None,
    ) -> Any:
        """Variance, as ``np.var`` (``np.nanvar`` with ``skipna``), in float64.

        Parameters
        ----------
        axis : int or tuple of int, optional
            Axes to reduce (default: all).
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        skipna : bool, default False
            Skip NaN.
        ddof : int, default 0
            Delta degrees of freedom: the divisor is ``n - ddof``.
        where, memory, executor, workers, progress : optional
            numpy's ``where=``, memory budget, executor, its workers as in :meth:`stats`;
            ``progress(task, nbytes)`` after each block read.

        Returns
        -------
        scalar, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        return self._one(
            "var", axis, fields, skipna, memory, executor, workers, progress, where, ddof
        )

    def std(
        self,
        axis: int | Sequence[int] | None = None,
        fields: str | Sequence[str] | None = None,
        skipna: bool = False,
        ddof: int = 0,
        *,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        where: Any = None,
    ) -> Any:
        """Standard deviation, as ``np.std`` (``np.nanstd`` with ``skipna``), in float64.

        Parameters
        ----------
        axis : int or tuple of int, optional
            Axes to reduce (default: all).
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        skipna : bool, default False
            Skip NaN.
        ddof : int, default 0
            Delta degrees of freedom: the divisor is ``n - ddof``.
        where, memory, executor, workers, progress : optional
            numpy's ``where=``, memory budget, executor, its workers as in :meth:`stats`;
            ``progress(task, nbytes)`` after each block read.

        Returns
        -------
        scalar, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        return self._one(
            "std", axis, fields, skipna, memory, executor, workers, progress, where, ddof
        )

    def min(
        self,
        axis: int | Sequence[int] | None = None,
        fields: str | Sequence[str] | None = None,
        skipna: bool = False,
        *,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        where: Any = None,
    ) -> Any:
        """Minimum, as ``np.min`` (``np.nanmin`` with ``skipna``), in the data's dtype.

        Parameters
        ----------
        axis : int or tuple of int, optional
            Axes to reduce (default: all).
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        skipna : bool, default False
            Skip NaN.
        where, memory, executor, workers, progress : optional
            numpy's ``where=`` (selecting nothing: NaN, or for non-float data an error),
            memory, executor, workers as in :meth:`stats`; ``progress(task, nbytes)``.

        Returns
        -------
        scalar, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        return self._one("min", axis, fields, skipna, memory, executor, workers, progress, where)

    def max(
        self,
        axis: int | Sequence[int] | None = None,
        fields: str | Sequence[str] | None = None,
        skipna: bool = False,
        *,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        where: Any = None,
    ) -> Any:
        """Maximum, as ``np.max`` (``np.nanmax`` with ``skipna``), in the data's dtype.

        Parameters
        ----------
        axis : int or tuple of int, optional
            Axes to reduce (default: all).
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        skipna : bool, default False
            Skip NaN.
        where, memory, executor, workers, progress : optional
            numpy's ``where=`` (selecting nothing: NaN, or for non-float data an error),
            memory, executor, workers as in :meth:`stats`; ``progress(task, nbytes)``.

        Returns
        -------
        scalar, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        return self._one("max", axis, fields, skipna, memory, executor, workers, progress, where)

    def argmin(
        self,
        axis: int | Sequence[int] | None = None,
        fields: str | Sequence[str] | None = None,
        skipna: bool = False,
        *,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
    ) -> Any:
        """Index of the minimum, as ``np.argmin`` (``np.nanargmin`` with ``skipna``).

        Parameters
        ----------
        axis : int, optional
            The axis (default: the flat index into the whole array); no tuple.
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        skipna : bool, default False
            Skip NaN.
        memory, executor, workers, progress : optional
            Memory budget, executor and its workers as in :meth:`stats`;
            ``progress(task, nbytes)`` after each block read.

        Returns
        -------
        int, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        return self._one("argmin", axis, fields, skipna, memory, executor, workers, progress)

    def argmax(
        self,
        axis: int | Sequence[int] | None = None,
        fields: str | Sequence[str] | None = None,
        skipna: bool = False,
        *,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
    ) -> Any:
        """Index of the maximum, as ``np.argmax`` (``np.nanargmax`` with ``skipna``).

        Parameters
        ----------
        axis : int, optional
            The axis (default: the flat index into the whole array); no tuple.
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        skipna : bool, default False
            Skip NaN.
        memory, executor, workers, progress : optional
            Memory budget, executor and its workers as in :meth:`stats`;
            ``progress(task, nbytes)`` after each block read.

        Returns
        -------
        int, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        return self._one("argmax", axis, fields, skipna, memory, executor, workers, progress)

    def any(
        self,
        axis: int | Sequence[int] | None = None,
        fields: str | Sequence[str] | None = None,
        *,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        where: Any = None,
    ) -> Any:
        """Whether any element is true (nonzero), as ``np.any``.

        Parameters
        ----------
        axis : int or tuple of int, optional
            Axes to reduce (default: all).
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        where, memory, executor, workers, progress : optional
            numpy's ``where=``, memory budget, executor, its workers as in :meth:`stats`;
            ``progress(task, nbytes)`` after each block read.

        Returns
        -------
        bool, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        return self._one("any", axis, fields, False, memory, executor, workers, progress, where)

    def all(
        self,
        axis: int | Sequence[int] | None = None,
        fields: str | Sequence[str] | None = None,
        *,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        where: Any = None,
    ) -> Any:
        """Whether all elements are true (nonzero), as ``np.all``.

        Parameters
        ----------
        axis : int or tuple of int, optional
            Axes to reduce (default: all).
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        where, memory, executor, workers, progress : optional
            numpy's ``where=``, memory budget, executor, its workers as in :meth:`stats`;
            ``progress(task, nbytes)`` after each block read.

        Returns
        -------
        bool, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        return self._one("all", axis, fields, False, memory, executor, workers, progress, where)

    def count_nonzero(
        self,
        axis: int | Sequence[int] | None = None,
        fields: str | Sequence[str] | None = None,
        *,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        where: Any = None,
    ) -> Any:
        """Number of nonzero elements, as ``np.count_nonzero``.

        Parameters
        ----------
        axis : int or tuple of int, optional
            Axes to reduce (default: all).
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        where, memory, executor, workers, progress : optional
            numpy's ``where=``, memory budget, executor, its workers as in :meth:`stats`;
            ``progress(task, nbytes)`` after each block read.

        Returns
        -------
        int, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        return self._one(
            "count_nonzero", axis, fields, False, memory, executor, workers, progress, where
        )

    def quantile(
        self,
        q: float | Sequence[float],
        fields: str | Sequence[str] | None = None,
        skipna: bool = False,
        axis: int | Sequence[int] | None = None,
        memory: int | str | None = None,
        where: Any = None,
        io: str | None = None,
    ) -> Any:
        """Exact quantiles, equal to ``np.quantile(data, q, axis=axis, method="linear")``.

        Parameters
        ----------
        q : float or sequence of float
            Quantiles in [0, 1].
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        skipna : bool, default False
            Skip NaN (``np.nanquantile``).
        axis : int or tuple of int, optional
            Axes to reduce (default: all), as numpy, bit for bit, in bounded memory
            (one read per group of positions: :mod:`arraystore.ops.reduce.axis_quantiles`).
        memory : int or str, optional
            Memory budget, in bytes or as ``"512MiB"`` (default: from the machine).
        where : str, Array or numpy bool array, optional
            Only the elements where this holds (see :meth:`stats`); none in a slice: NaN.
        io : {"auto", "direct", "buffered"}, optional
            As in :meth:`stats` (along an ``axis``: buffered).

        Returns
        -------
        scalar, numpy.ndarray or dict
            As numpy: ``q``'s shape followed by the kept axes;
            ``{field: result}`` for the fields of a structured array.
        """
        res = quantile(self._view, q, fields, skipna, memory, axis, where, io=io)
        return self._unwrap(res, fields)

    def median(
        self,
        fields: str | Sequence[str] | None = None,
        skipna: bool = False,
        memory: int | str | None = None,
        axis: int | Sequence[int] | None = None,
        where: Any = None,
        io: str | None = None,
    ) -> Any:
        """The exact median, ``quantile(0.5)`` (``np.median`` / ``np.nanmedian``).

        Parameters
        ----------
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        skipna : bool, default False
            Skip NaN (``np.nanmedian``).
        memory : int or str, optional
            Memory budget, in bytes or as ``"512MiB"`` (default: from the machine).
        axis, where, io : optional
            As in :meth:`quantile`.

        Returns
        -------
        scalar, numpy.ndarray or dict
            ``{field: result}`` for the fields of a structured array.
        """
        res = quantile(self._view, 0.5, fields, skipna, memory, axis, where, median=True, io=io)
        return self._unwrap(res, fields)

    def histogram(
        self,
        bins: int | Sequence[float] | str = 10,
        range: tuple[float, float] | None = None,
        fields: str | Sequence[str] | None = None,
        memory: int | str | None = None,
        where: Any = None,
        io: str | None = None,
    ) -> Any:
        """``(counts, edges)`` like ``np.histogram`` (NaN skipped).

        Parameters
        ----------
        bins : int, sequence of float or str, default 10
            Number of bins, the bin edges, or one of numpy's bin estimators (``"auto"``...).
        range : (float, float), optional
            Lower and upper range of the bins (default: the data's min and max).
        fields : str or list of str, optional
            Fields of a structured array (default: its numeric fields).
        memory : int or str, optional
            Memory budget, in bytes or as ``"512MiB"`` (default: from the machine).
        where : str, Array or numpy bool array, optional
            Count only the elements where this is true (see :meth:`stats`).
        io : {"auto", "direct", "buffered"}, optional
            As in :meth:`stats`.

        Returns
        -------
        tuple of numpy.ndarray, or dict
            ``(counts, edges)``; ``{field: (counts, edges)}`` for the fields of a
            structured array.
        """
        res = hist(self._view, bins, range, fields, memory, where, io)
        return self._unwrap(res, fields)


__all__ = ["Reductions"]
