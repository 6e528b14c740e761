"""``where=`` of the reductions: a mask evaluated region by region next to the data.

A mask is an expression in the safe expression language (:mod:`arraystore.core.expr`)
over the array's fields -- or, for a plain array, over the array itself, named by its
name as in ``map --where`` --, a stored boolean array of the same shape (or, for an
array of records, one boolean per row: its length along axis 0), or a numpy bool array
of such a shape. :meth:`Mask.block` gives the mask of one region (the data's block's
region): the whole mask is never in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.backends.base import Handle
from arraystore.core.chunks import Region, region_shape
from arraystore.core.expr import Expr, compile_expr
from arraystore.errors import InvalidArgument, ShapeMismatch

if TYPE_CHECKING:
    from arraystore.storage import ArrayView


@dataclass(frozen=True, eq=False)
class Mask:
    """A ``where=`` mask of an array of shape ``shape``, read or evaluated per region."""

    shape: tuple[int, ...]
    handle: Handle | None  # the mask array's (stored mask), or the data's (expression)
    expr: Expr | None = None
    #: storage field of each name of ``expr`` (None: the plain array itself)
    fields: tuple[str | None, ...] = ()
    data: np.ndarray | None = None  # an in-memory mask
    rows: bool = False  # one boolean per row (axis 0), broadcast over the other axes

    def nbytes(self, region: Region) -> int:
        """Memory of :meth:`block` of ``region``: the mask, and for an expression the
        fields it reads and about one float64 temporary per name."""
        n = math.prod(region_shape(region))
        if self.expr is None:
            return n
        assert self.handle is not None
        dt = self.handle.meta.dtype
        read = sum((dt[f] if f is not None else dt).itemsize for f in self.fields)
        return n * (1 + read + 8 * len(self.fields))

    def block(self, region: Region) -> np.ndarray:
        """The mask of ``region`` (bool, the region's shape)."""
        shape = region_shape(region)
        if self.expr is not None:
            assert self.handle is not None
            env = {
                n: self.handle.read(region, f)
                for n, f in zip(self.expr.names, self.fields, strict=True)
            }
            m = np.asarray(self.expr(env))
            if m.dtype != bool:
                raise InvalidArgument(
                    f"where expression {self.expr.text!r} must give booleans, got {m.dtype}"
                )
            try:
                return np.broadcast_to(m, shape)
            except ValueError:
                raise ShapeMismatch(
                    f"where expression {self.expr.text!r} gives shape {m.shape}, "
                    f"not one boolean per element {shape}"
                ) from None
        sub = region[:1] if self.rows else region
        if self.data is not None:
            m = self.data[sub]
        else:
            assert self.handle is not None
            m = self.handle.read(sub)
        if self.rows:
            m = np.broadcast_to(m.reshape(m.shape + (1,) * (len(shape) - 1)), shape)
        return m


def _check_shape(arr: ArrayView, mshape: tuple[int, ...], what: str) -> bool:
    """Whether the mask has one value per row (records) -- else per element."""
    shape = tuple(arr.meta.shape)
    if mshape == shape:
        return False
    if arr.meta.fields and len(mshape) == 1 and shape and mshape[0] == shape[0]:
        return True
    rows = f" or ({shape[0]},) (one per record)" if arr.meta.fields and shape else ""
    raise ShapeMismatch(f"where {what} has shape {mshape}; {arr.name} needs {shape}{rows}")


def resolve_mask(arr: ArrayView, where: Any) -> Mask | None:
    """``where=`` of a reduction of ``arr``: None, an expression, a bool array (stored
    or in memory); checked here, before anything is read (one-line errors)."""
    if where is None:
        return None
    shape = tuple(arr.meta.shape)
    if isinstance(where, str):
        return _expr_mask(arr, where)
    if isinstance(where, np.ndarray):
        if where.dtype != bool:
            raise InvalidArgument(f"where must be a boolean array, got dtype {where.dtype}")
        return Mask(shape, None, data=where, rows=_check_shape(arr, where.shape, "array"))
    handle = getattr(where, "handle", None)
    if not isinstance(handle, Handle):
        raise InvalidArgument(
            f"where must be an expression, a boolean Array or None, got {type(where).__name__}"
        )
    if handle.meta.dtype != bool or getattr(where, "field", None) is not None:
        raise InvalidArgument(
            f"where array {where.name} must be boolean, got dtype {handle.meta.dtype}"
        )
    rows = _check_shape(arr, tuple(handle.meta.shape), f"array {where.name}")
    return Mask(shape, handle, rows=rows)


def _expr_mask(arr: ArrayView, text: str) -> Mask:
    fields = list(arr.meta.fields or ())
    names = fields or [arr.name]
    x = compile_expr(text, names, "fields" if fields else "names")
    if not x.names:
        raise InvalidArgument(f"where expression {x.text!r} uses no fields of {arr.name}")
    mask = Mask(
        tuple(arr.meta.shape),
        arr.handle,
        expr=x,
        fields=tuple(n if fields else None for n in x.names),
    )
    shape = tuple(arr.meta.shape)
    if all(shape):  # evaluate on one element: a wrong type fails before any pass
        mask.block(tuple(slice(0, 1) for _ in shape))
    return mask


__all__ = ["Mask", "resolve_mask"]
