"""Checks of ``Store.create``'s plain arguments, before anything touches the store.

They live here (not in store.py, already at its size limit) so that each wrong type is
an :class:`InvalidArgument` naming the argument -- not a ``TypeError`` from ``Path()``
or ``dict()`` or numpy's ``ValueError`` for ragged lists several calls deeper.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from arraystore.errors import InvalidArgument


def check_create_args(seed: Any, attrs: Any, from_npy: Any) -> None:
    """``seed`` a non-negative int, ``attrs`` a JSON-able dict (no NaN), ``from_npy`` a path."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidArgument(f"seed must be a non-negative integer, got {seed!r}")
    if attrs is not None and not isinstance(attrs, dict):
        raise InvalidArgument(f"attrs must be a dict, got {type(attrs).__name__}")
    try:
        json.dumps(attrs or {}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"attrs must be JSON-serialisable (no NaN): {exc}") from None
    if from_npy is not None and not isinstance(from_npy, str | os.PathLike):
        raise InvalidArgument(f"from_npy must be a path, got {from_npy!r}")


def as_data(data: Any) -> np.ndarray:
    """``np.asarray(data)``; ragged nested lists and object arrays are refused."""
    try:
        arr = np.asarray(data)
    except ValueError as exc:  # ragged nested lists
        raise InvalidArgument(f"data is not an array: {exc}") from None
    if arr.dtype.hasobject:
        raise InvalidArgument("object arrays cannot be stored; convert to a numeric dtype")
    return arr
