"""One document summing up an array: the one-pass stats, exact quantiles, histograms.

What ``arraystore stats`` prints: :func:`~arraystore.ops.reduce.stats.reduce` with
:data:`~arraystore.ops.reduce.stats.STATS`, then per field the quantiles and a histogram,
merged into the ``StatsResult.to_dict()`` document. The command line only parses its
options and prints the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from arraystore.errors import InvalidArgument
from arraystore.ops.reduce.stats import STATS, hist, quantile, reduce

#: most histogram bins a summary holds (every count is printed, and written as JSON)
MAX_SUMMARY_BINS = 100_000


def _check_bins(bins: int | str | None) -> None:
    if bins is None or bins == "auto":
        return
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= MAX_SUMMARY_BINS:
        raise InvalidArgument(
            f"bins must be a number of bins in 1..{MAX_SUMMARY_BINS} or 'auto', got {bins!r}"
        )


def summarize(
    arr: Any,
    fields: Sequence[str] | None = None,
    axis: Any = None,
    quantiles: Sequence[float] | None = None,
    bins: int | str | None = None,
    skipna: bool = True,
    ddof: int = 0,
    memory: int | str | None = None,
    executor: Any = None,
    progress: Callable[[Any, Any], None] | None = None,
    where: Any = None,
) -> dict[str, Any]:
    """The stats of ``arr`` per field, with its quantiles and histogram, as one document.

    Parameters
    ----------
    arr
        The array (an ``arraystore.Array``, as :func:`.stats.reduce` takes).
    fields
        Numeric fields to summarise; None: all of them.
    axis
        Axis or axes of the stats and quantiles (histograms: of the whole array).
    quantiles
        Exact quantiles to add (numpy's ``method="linear"``), numbers in [0, 1]; each
        field's ``"quantiles"`` maps ``str(q)`` to its value.
    bins
        Histogram bins to add (each field's ``"histogram"``: ``counts`` and ``edges``):
        a number in 1..:data:`MAX_SUMMARY_BINS` or ``"auto"``; None: no histogram.
    skipna
        Skip NaN (a summary's default) instead of propagating it like numpy.
    ddof
        Delta degrees of freedom of ``std``.
    memory
        Memory budget in bytes (or ``"512MiB"``); None: the default budget.
    executor
        Executor (or its name) of the stats pass; quantiles and histograms run here.
    progress
        Called by the executor as each task of the stats pass ends (as in ``reduce``).
    where
        Only the elements where this holds (an expression or a bool array, as in
        ``reduce``), for the stats, quantiles and histograms alike.

    Returns
    -------
    dict
        ``StatsResult.to_dict()`` of the stats pass, quantiles and histograms merged in.
    """
    _check_bins(bins)
    res = reduce(
        arr,
        STATS,
        axis=axis,
        fields=fields,
        skipna=skipna,
        ddof=ddof,
        memory=memory,
        executor=executor,
        progress=progress,
        where=where,
    )
    doc = res.to_dict()
    if quantiles is not None:
        qres = quantile(
            arr, quantiles, fields=fields, skipna=skipna, memory=memory, axis=axis, where=where
        )
        for fname, values in qres.items():
            doc["fields"][fname]["quantiles"] = dict(
                zip(map(str, quantiles), values.tolist(), strict=True)
            )
    if bins is not None:
        hres = hist(arr, bins=bins, fields=fields, memory=memory, where=where)
        for fname, (counts, edges) in hres.items():
            doc["fields"][fname]["histogram"] = {"counts": counts.tolist(), "edges": edges.tolist()}
    return doc
