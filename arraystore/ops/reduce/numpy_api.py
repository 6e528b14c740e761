"""numpy's reduction functions on a stored array (``np.sum(arr)``, ``np.quantile(arr, q)``).

``Array.__array_function__`` sends them here: each runs as the out-of-core reduction
(:func:`.stats.reduce`, :func:`.stats.quantile`) with numpy's signature and returns what
numpy returns on the data loaded in memory -- its result dtype (found by running the
same call on a one-element array of the data's dtype), a numpy scalar or an array,
``keepdims`` honoured. Integer sums are exact and then wrap to numpy's dtype as numpy's
do. Arguments numpy accepts that an out-of-core reduction cannot honour (``out``,
``where``, ``initial``, a ``method`` other than linear...) are refused by name. Any
other numpy function raises :class:`InvalidType`: read a region first (``np.shape``,
``np.ndim`` and ``np.size`` answer from the metadata).
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.errors import InvalidArgument, InvalidType
from arraystore.ops.reduce.stats import quantile, reduce

if TYPE_CHECKING:
    from arraystore.storage import ArrayView

#: numpy function -> (arraystore reduction, skipna); "quantile" goes to the quantile pass
_REDUCTIONS: dict[Callable[..., Any], tuple[str, bool]] = {
    np.sum: ("sum", False),
    np.nansum: ("sum", True),
    np.mean: ("mean", False),
    np.nanmean: ("mean", True),
    np.var: ("var", False),
    np.nanvar: ("var", True),
    np.std: ("std", False),
    np.nanstd: ("std", True),
    np.min: ("min", False),
    np.amin: ("min", False),
    np.nanmin: ("min", True),
    np.max: ("max", False),
    np.amax: ("max", False),
    np.nanmax: ("max", True),
    np.argmin: ("argmin", False),
    np.nanargmin: ("argmin", True),
    np.argmax: ("argmax", False),
    np.nanargmax: ("argmax", True),
    np.any: ("any", False),
    np.all: ("all", False),
    np.count_nonzero: ("count_nonzero", False),
    np.quantile: ("quantile", False),
    np.nanquantile: ("quantile", True),
    np.percentile: ("percentile", False),
    np.nanpercentile: ("percentile", True),
    np.median: ("median", False),
    np.nanmedian: ("median", True),
}
#: arguments honoured (``a`` is the array); ``overwrite_input`` is a hint, ignored
_HONOURED = {"a", "axis", "keepdims", "ddof", "correction", "dtype", "q", "overwrite_input"}
_QUANTILES = ("quantile", "percentile", "median")
#: reductions whose numpy ``where=`` (a bool array or stored Array) runs out of core
_WHERE_OPS = ("sum", "mean", "var", "std", "any", "all")


@functools.cache
def _signature(func: Any) -> inspect.Signature:
    return inspect.signature(func)


def _metadata(view: ArrayView, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``np.shape`` / ``np.ndim`` / ``np.size``: from the metadata, nothing read."""
    call = _signature(func).bind(*args, **kwargs).arguments
    if call.get("a") is not view:
        raise refuse(func, view.name)
    if func is np.shape:
        return view.shape
    if func is np.ndim:
        return len(view.shape)
    axis = call.get("axis")
    return math.prod(view.shape) if axis is None else view.shape[axis]


def refuse(func: Any, name: str) -> InvalidType:
    """The error for a numpy function that would need the whole array in memory."""
    fname = getattr(func, "__name__", repr(func))
    return InvalidType(
        f"np.{fname} is not supported on the stored array {name}: read a region into "
        f"memory first (np.asarray(arr[...]) or arr[a:b]); the reductions np.sum, np.mean, "
        "np.std, np.var, np.min, np.max, np.quantile, np.median (and their nan- variants), "
        "np.argmin, np.argmax, np.any, np.all and np.count_nonzero run out of core"
    )


def _is_default(param: inspect.Parameter, value: Any) -> bool:
    default = param.default
    if value is default:
        return True
    try:
        return bool(value == default) and type(value) is type(default)
    except Exception:  # an array compared with a default: not a default
        return False


def _bind(func: Any, view: ArrayView, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    fname = func.__name__
    try:
        bound = _signature(func).bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"np.{fname}(): {e}") from None
    if bound.arguments.get("a") is not view:
        raise refuse(func, view.name)
    params = _signature(func).parameters
    for pname, value in bound.arguments.items():
        if pname in _HONOURED or _is_default(params[pname], value):
            continue
        if pname == "where" and (value is True or _REDUCTIONS[func][0] in _WHERE_OPS):
            continue
        if pname == "method" and value == "linear":
            continue
        shown = repr(value) if isinstance(value, str | int | float | bool) else "..."
        raise InvalidArgument(
            f"np.{fname}(arr, {pname}={shown}) is not supported on the stored array "
            f"{view.name} (an out-of-core reduction): drop the {pname!r} argument, or "
            "read the data into memory first (np.asarray(arr[...]))"
        )
    return bound


def _probe(func: Any, view: ArrayView, call: dict[str, Any]) -> Any:
    """numpy's own result for a tiny array of the data's dtype (its type, dtype, and the
    errors numpy raises for the arguments, such as a bad axis)."""
    ddof = call.get("ddof", 0)
    correction = call.get("correction", np._NoValue)
    ddof = ddof if correction is np._NoValue else correction
    side = int(ddof) + 1 if isinstance(ddof, int | float) and 0 <= ddof < 8 else 1
    ndim = len(view.shape)
    if side**ndim > 4096 or (ndim == 0 and side > 1):
        side = 1
    tiny = np.ones((side,) * ndim, dtype=view.dtype)
    with np.errstate(all="ignore"):
        if side > 1 or not ddof:  # no warning to expect (catch_warnings is not thread-safe)
            return func(tiny, **call)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degrees of freedom <= 0
            return func(tiny, **call)


def _norm_axis(axis: Any, ndim: int) -> Any:
    if axis is None:
        return None
    if isinstance(axis, tuple | list):
        return tuple(int(a) % ndim for a in axis)
    return int(axis) % ndim


def _wrap(v: Any, dtype: np.dtype) -> Any:
    """An exact (Python-int) integer result as numpy's fixed-width one, wrapping as numpy's
    integer sums do."""
    if dtype.kind not in "iu":
        return v
    bits = 8 * dtype.itemsize

    def one(x: Any) -> int:
        x = int(x) % (1 << bits)
        return x - (1 << bits) if dtype.kind == "i" and x >= 1 << (bits - 1) else x

    if isinstance(v, np.ndarray) and v.dtype == object:
        return np.array([one(x) for x in v.flat], dtype=dtype).reshape(v.shape)
    if isinstance(v, int) and not isinstance(v, bool):
        return one(v)
    return v


def _as_numpy(value: Any, like: Any) -> Any:
    """``value`` with the type and dtype of numpy's result ``like``."""
    if not isinstance(like, np.ndarray | np.generic):
        return type(like)(value)
    dtype = like.dtype
    value = _wrap(value, dtype)
    with np.errstate(all="ignore"):
        out = np.asarray(value).astype(dtype, copy=False)
    if isinstance(like, np.generic):
        return type(like)(out[()])  # (uint64, not the equal ulonglong numpy may give)
    return out


def _keepdims(value: Any, axis: Any, ndim: int, lead: int) -> Any:
    axes = range(ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    return np.expand_dims(value, tuple(lead + a for a in axes))


def _dtype_ok(view: ArrayView, op: str, dtype: Any, fname: str) -> None:
    if dtype is None:
        return
    if op not in ("sum", "mean", "var", "std") or not np.can_cast(view.dtype, dtype, "safe"):
        raise InvalidArgument(
            f"np.{fname}(arr, dtype={np.dtype(dtype)}) is not supported on the stored array "
            f"{view.name}: drop the 'dtype' argument, or give one {view.dtype} casts to "
            "safely (sum, mean, var and std only)"
        )


def _stored_axes_only(view: ArrayView, axis: Any, fname: str) -> None:
    """The reductions keep a field's subarray axes: numpy's over them are refused."""
    nd = view.meta.ndim
    if len(view.shape) == nd:
        return
    axes = (
        range(len(view.shape)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    )
    if any(a >= nd for a in axes):
        raise InvalidArgument(
            f"np.{fname} over the subarray axes of field {view.field!r} (shape "
            f"{view.shape[nd:]}) is not supported out of core: give axis within the first "
            f"{nd}, or read the data into memory first (np.asarray(arr[...]))"
        )


def array_function(
    view: ArrayView, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``func(*args, **kwargs)`` (a numpy reduction of ``view``) computed out of core."""
    if func in (np.shape, np.ndim, np.size):
        return _metadata(view, func, args, kwargs)
    if func not in _REDUCTIONS:
        raise refuse(func, view.name)
    op, skipna = _REDUCTIONS[func]
    fname = func.__name__
    if view.dtype.names is not None:
        raise InvalidType(
            f"np.{fname} of the structured array {view.name}: reduce one field, "
            f"np.{fname}(arr[{view.dtype.names[0]!r}])"
        )
    call = dict(_bind(func, view, args, kwargs).arguments)
    del call["a"]
    where = call.pop("where", True)
    if isinstance(where, np.ndarray) and where.shape != view.shape:
        where = np.broadcast_to(where, view.shape)  # (numpy's rule; a read-only view)
    like = _probe(func, view, call)  # numpy's checks of the arguments, and its result type
    ndim = len(view.shape)
    axis = _norm_axis(call.get("axis"), ndim)
    keep = call.get("keepdims", False) is True
    lead = 0
    if op in _QUANTILES:
        q: Any = 0.5 if op == "median" else call["q"]
        if op == "percentile":
            q = np.true_divide(q, 100)
        lead = np.ndim(q)
        med = op == "median"
        value = next(iter(quantile(view, q, skipna=skipna, axis=axis, median=med).values()))
    else:
        _dtype_ok(view, op, call.get("dtype"), fname)
        _stored_axes_only(view, axis, fname)
        ddof = call.get("ddof", 0)
        correction = call.get("correction", np._NoValue)
        if correction is not np._NoValue:
            ddof = correction
        if isinstance(ddof, float) and ddof.is_integer():
            ddof = int(ddof)
        mask = None if where is True else where
        res = reduce(view, (op,), axis=axis, skipna=skipna, ddof=ddof, where=mask)
        value = next(iter(res.fields.values()))[op]
    if keep:
        value = _keepdims(value, axis, ndim, lead)
    return _as_numpy(value, like)


__all__ = ["array_function", "refuse"]
