"""Values written with ``arr[key] = value``, converted exactly as numpy converts them.

numpy's assignment rules are many and subtle: Python ints are range-checked
(``OverflowError`` for 300 into int8) but any int in range is accepted into every integer
and bool dtype, floats are truncated into integers and NaN is refused there
(``ValueError``), arrays are cast unsafely (silently wrapping), tuples are records,
strings are parsed into numbers or truncated to a string field's width, and an index of
integers only takes the scalar path (``a[0] = [5]`` is refused) while any other index
broadcasts into a view. Rather than re-implement them (and drift from numpy), the value is
assigned into a scratch array of the written region's shape and the array's dtype with the
index numpy itself would apply: the block and the exception are numpy's own. Nothing is
written to disk before this succeeds, so a refused value leaves the array untouched.

numpy's exceptions become the arraystore class that also derives from the same built-in
(:class:`CastOverflow` is an ``OverflowError``, :class:`InvalidType` a ``TypeError``, a
shape that does not broadcast :class:`ShapeMismatch`, any other refused value
:class:`CastError`, both ``ValueError``), so ``except OverflowError`` keeps working.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arraystore.core.dtypes import dtype_to_spec
from arraystore.errors import CastError, CastOverflow, InvalidType, ShapeMismatch


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def assigned_block(
    value: Any, dtype: np.dtype, shape: tuple[int, ...], post: tuple[Any, ...], view: bool
) -> np.ndarray:
    """The block of ``shape`` and ``dtype`` that ``block[post] = value`` gives in numpy.

    ``post`` is the index into the region (from :func:`~.chunks.normalize_index`) and
    must cover all of it; ``view=True`` when the user's key had an Ellipsis (numpy then
    broadcasts into a view even when every other entry is an integer).
    """
    index = (*post, Ellipsis) if view else post
    if type(value) is np.ndarray and value.dtype == dtype:
        kept = np.broadcast_to(np.empty((), dtype), shape)[index]  # no memory: 0 strides
        if np.shape(kept) == value.shape:  # nothing to convert or broadcast: no copy
            return value.reshape(shape)
    block = np.empty(shape, dtype)
    what = f"cannot store {_describe(value)} in an array of dtype {dtype_to_spec(dtype)}"
    try:
        block[index] = value
    except OverflowError as exc:
        raise CastOverflow(f"{what}: {exc}") from None
    except TypeError as exc:
        raise InvalidType(f"{what}: {exc}") from None
    except ValueError as exc:
        if "broadcast" in str(exc):
            raise ShapeMismatch(f"{what}: {exc}") from None
        raise CastError(f"{what}: {exc}") from None
    return block
