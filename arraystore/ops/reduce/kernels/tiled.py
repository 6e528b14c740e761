"""The generic tiled path of :mod:`arraystore.ops.reduce.kernels` on a 2-d block, and
the ``where=`` (masked) partial built on it.

:func:`tiled` reduces a 2-d view ``X`` of a block (``(R, K)`` with ``ax=0`` or
``(K, R)`` with ``ax=1``) in tiles of about ``LEAF_BYTES``, strip by strip of output
cells, merging the tiles' states as it goes; ``exclude`` (``X``'s shape) leaves
elements out (see :func:`.leaf.leaf_state`). :func:`masked_state` moves a block's
reduced axes first and takes that path with the mask's complement.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.errors import InvalidArgument
from arraystore.ops.reduce.kernels import leaf as _kl
from arraystore.ops.reduce.kernels.leaf import leaf_state
from arraystore.ops.reduce.kernels.merge import State, combine, identity

if TYPE_CHECKING:
    from arraystore.ops.reduce.kernels import Box, Geometry


def global_index(
    geom: Geometry, idx: np.ndarray, lshape: tuple[int, ...], origin: tuple[int, ...]
) -> np.ndarray:
    if not geom.flat_arg:
        return idx + origin[geom.red[0]]
    if not lshape:
        return np.zeros_like(idx)
    local = np.unravel_index(idx, lshape)
    glob = tuple(loc + o for loc, o in zip(local, origin, strict=True))
    return np.asarray(np.ravel_multi_index(glob, geom.shape), dtype=np.int64)


def tiled(
    geom: Geometry,
    X: np.ndarray,
    ax: int,
    lshape: tuple[int, ...],
    starts: tuple[int, ...],
    exclude: np.ndarray | None = None,
) -> State:
    """Generic path on a 2-d block: ~LEAF_BYTES tiles, strip by strip of output cells."""
    spec, item = geom.spec, X.dtype.itemsize
    R, K = X.shape[ax], X.shape[1 - ax]
    leaf = _kl.LEAF_BYTES
    C = X.shape[1]  # the contiguous dimension: whole if a tile still gets >= 16 lines
    c_take = C if C * item * 16 <= leaf else max(1, leaf // (16 * item))
    o_take = max(1, leaf // (c_take * item))
    w, g = (c_take, o_take) if ax == 0 else (o_take, c_take)  # output cells, reduced extent
    out: State = {}
    for j in range(0, K, w):
        pending: list[State] = []
        for i in range(0, R, g):
            cut = (
                (slice(i, i + g), slice(j, j + w))
                if ax == 0
                else (slice(j, j + w), slice(i, i + g))
            )
            st = leaf_state(X[cut], ax, spec, None if exclude is None else exclude[cut])
            for key in ("amin_i", "amax_i"):
                if key in st:
                    st[key] = global_index(geom, st[key] + i, lshape, starts)
            pending.append(st)
            if len(pending) >= 32:
                pending[:] = [combine(spec, pending)]
        st = combine(spec, pending)
        for key, v in st.items():
            if key not in out:
                out[key] = np.empty(K, v.dtype)
            elif v.dtype == object and out[key].dtype != object:
                out[key] = out[key].astype(object)
            out[key][j : j + w] = v
    return out


def masked_state(
    geom: Geometry, block: np.ndarray, starts: tuple[int, ...], where: Any
) -> tuple[Box, State]:
    """``(box, state)`` of ``block`` without the elements where ``where`` is False."""
    nd, m = len(geom.shape), len(geom.red)
    lshape = block.shape[:nd]
    where = np.asarray(where)
    if where.dtype != bool or where.shape != lshape:
        raise InvalidArgument(f"where must be a bool array of shape {lshape}, got {where.shape}")
    exclude = np.broadcast_to(~where[(...,) + (None,) * len(geom.trailing)], block.shape)
    box = tuple((starts[a], starts[a] + lshape[a]) for a in geom.kept)
    out_shape = tuple(e - s for s, e in box) + geom.trailing
    if block.size == 0:
        return box, identity(geom.spec, out_shape)
    r = math.prod(lshape[a] for a in geom.red)
    front = tuple(range(m))
    X = np.moveaxis(block, geom.red, front).reshape(r, -1)
    E = np.moveaxis(exclude, geom.red, front).reshape(r, -1)
    st = tiled(geom, X, 0, lshape, starts, E)
    return box, {k: v.reshape(out_shape) for k, v in st.items()}


__all__ = ["global_index", "masked_state", "tiled"]
