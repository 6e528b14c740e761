"""Advanced selections as pure plans: numpy's ``arr[...]``, zarr's ``oindex`` and ``vindex``.

A key holding integer arrays or boolean masks is normalised into a :class:`Selection`:

* *orthogonal axes*, each selected on its own by a slice or a 1-d array of indices
  (an integer of ``oindex`` is a length-1 selection whose axis is dropped);
* a *point group*: the axes indexed together by coordinate arrays broadcast to one
  shape (numpy's advanced indices, ``vindex``), flattened into ``P`` points.

Data is gathered into a *gather block* ``G`` of shape ``(P, *orth_lengths)`` (no ``P``
without a point group), and :meth:`Selection.finish` turns it into numpy's result: a
reshape (dropping integer axes, splitting ``P`` into the broadcast shape, adding the
``None`` axes) and, when numpy's advanced indices are adjacent and not first, a move of
the broadcast dimensions to where numpy puts them. :meth:`Selection.unfinish` is the
inverse used by writes.

:func:`pieces` cuts a selection by the chunk grid: one :class:`Piece` per touched chunk,
each the bounding box (within that chunk) of what is selected there, with the index into
the box and the matching index into ``G``. Requested indices are sorted (stably) and
grouped by chunk, so each chunk is read once whatever the order or repetition of the
indices; among repeated indices the later one is assigned later (numpy's "last wins").
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np

from arraystore.core.chunks import Region
from arraystore.errors import InvalidArgument, InvalidIndex, InvalidType

__all__ = [
    "Piece",
    "Selection",
    "basic_selection",
    "coordinate_selection",
    "enclosing_chunk",
    "is_advanced",
    "numpy_selection",
    "orthogonal_selection",
    "pieces",
]

#: an orthogonal axis: a normalised slice (start, stop or None, step) or 1-d intp indices
Orth = slice | np.ndarray


@dataclass(frozen=True)
class Selection:
    """A normalised advanced selection of an array of ``shape``.

    ``orth[axis]`` is the slice or index array of an orthogonal axis and ``None`` for an
    axis of the point group; ``coords`` holds the point group's indices, one row per
    axis of ``point_axes``, one column per point.
    """

    shape: tuple[int, ...]
    orth: tuple[Orth | None, ...]
    point_axes: tuple[int, ...]
    coords: np.ndarray
    #: the gather block's shape: (P,) if there is a point group, then every orth axis
    gshape: tuple[int, ...]
    #: ``G.reshape(mid_shape)`` and then ``np.moveaxis(..., *move)`` give the result
    mid_shape: tuple[int, ...]
    move: tuple[tuple[int, ...], tuple[int, ...]] | None
    out_shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Elements selected (the result's size)."""
        return math.prod(self.out_shape)

    @property
    def index_bytes(self) -> int:
        """Bytes the index arrays of this selection hold."""
        arrays = [o for o in self.orth if isinstance(o, np.ndarray)]
        return int(self.coords.nbytes) + sum(int(a.nbytes) for a in arrays)

    def finish(self, gathered: np.ndarray) -> np.ndarray:
        """The result (numpy's layout) from the gather block (a view where possible)."""
        out = gathered.reshape(self.mid_shape)
        return np.moveaxis(out, *self.move) if self.move else out

    def unfinish(self, value: np.ndarray) -> np.ndarray:
        """A value of the result's shape in the gather block's layout (for writes)."""
        if self.move:
            value = np.moveaxis(value, self.move[1], self.move[0])
        return value.reshape(self.gshape)


@dataclass(frozen=True)
class Piece:
    """What one chunk contributes: ``G[dst] = read(region)[src]`` (or, writing,
    ``block[src] = V[dst]``); ``region`` is a step-1 box inside one chunk."""

    region: Region
    src: tuple[Any, ...]
    dst: tuple[Any, ...]


# ------------------------------------------------------------------ parsing the key
def _is_array_like(k: Any) -> bool:
    if isinstance(k, np.ndarray):
        return k.ndim > 0 or k.dtype == bool
    return isinstance(k, list | tuple | range)


def is_advanced(key: Any) -> bool:
    """True when ``key`` holds an integer array, a list or a boolean mask (numpy's
    advanced indexing); False for a basic key of integers, slices, ``...`` and None."""
    if not isinstance(key, tuple):
        return _is_array_like(key)
    return any(_is_array_like(k) for k in key)


def _index_array(k: Any, what: str) -> np.ndarray:
    """``k`` (list, tuple, range, array) as a bool or intp array; anything else refused."""
    if isinstance(k, list | tuple) and len(k) == 0:
        return np.zeros(0, np.intp)  # numpy: an empty list indexes nothing
    try:
        arr = np.asarray(k)
    except ValueError:
        arr = np.asarray(k, dtype=object)  # ragged: refused just below
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "iu":
        raise InvalidIndex(
            f"arrays used as indices must be of integer (or boolean) type, got {what} "
            f"of dtype {arr.dtype}"
        )
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.intp).max:
        raise InvalidIndex(f"index {int(arr.max())} is out of bounds")
    return arr.astype(np.intp, copy=False)


def _wrap(arr: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Indices in ``[-n, n)`` made non-negative; others refused like numpy."""
    if arr.size:
        bad = (arr < -n) | (arr >= n)
        if bad.any():
            value = int(arr[bad].flat[0])
            raise InvalidIndex(f"index {value} is out of bounds for axis {axis} with size {n}")
    return np.where(arr < 0, arr + n, arr).astype(np.intp, copy=False)


def _integer(k: Any, n: int, axis: int) -> int | None:
    """``k`` as an in-bounds non-negative int, or None if it is not an integer."""
    if isinstance(k, bool | np.bool_):
        raise InvalidIndex(
            f"index {k!r} on axis {axis} is not supported: use integers, slices, arrays, "
            "'...' and None"
        )
    try:
        i = operator.index(k)
    except TypeError:
        return None
    if not -n <= i < n:
        raise InvalidIndex(f"index {i} is out of bounds for axis {axis} with size {n}")
    return i % n


def _slice(k: slice, n: int, axis: int) -> slice:
    try:
        start, stop, step = k.indices(n)
    except TypeError as exc:  # as numpy and arr[...] with a basic key
        raise InvalidType(f"bad slice {k!r} on axis {axis}: {exc}") from None
    except ValueError as exc:  # step 0
        raise InvalidArgument(f"bad slice {k!r} on axis {axis}: {exc}") from None
    length = len(range(start, stop, step))
    return slice(start, start + length * step if start + length * step >= 0 else None, step)


def _slice_len(s: slice) -> int:
    return len(range(s.start, -1 if s.stop is None else s.stop, s.step))


def _entries(key: Any, shape: tuple[int, ...], allow_new: bool) -> list[tuple[int, Any]]:
    """The key's entries with their positions, ``...`` expanded, arrays converted."""
    key = key if isinstance(key, tuple) else (key,)
    items = [_index_array(k, type(k).__name__) if _is_array_like(k) else k for k in key]
    for axis, k in enumerate(items):
        if isinstance(k, np.ndarray) and k.ndim == 0:
            if k.dtype == bool:
                raise InvalidIndex(f"a 0-d boolean index (entry {axis}) is not supported")
            items[axis] = operator.index(k)  # numpy: a 0-d integer array is an integer
    if sum(1 for k in items if k is Ellipsis) > 1:
        raise InvalidIndex("an index can only have a single ellipsis ('...')")
    if not allow_new and any(k is None for k in items):
        raise InvalidIndex("None (np.newaxis) is not supported here: index with arr[...]")
    used = sum(
        k.ndim if isinstance(k, np.ndarray) and k.dtype == bool else 1
        for k in items
        if k is not None and k is not Ellipsis
    )
    if used > len(shape):
        raise InvalidIndex(
            f"too many indices for array: array is {len(shape)}-dimensional, "
            f"but {used} were indexed"
        )
    # (position in the key, entry): an Ellipsis's slices share its position, so one that
    # stands for no axis still separates advanced indices (numpy's placement rule)
    pairs = list(enumerate(items))
    if any(k is Ellipsis for k in items):
        i = next(j for j, k in enumerate(items) if k is Ellipsis)
        return pairs[:i] + [(i, slice(None))] * (len(shape) - used) + pairs[i + 1 :]
    return pairs + [(len(items), slice(None))] * (len(shape) - used)


def _mask_axes(mask: np.ndarray, shape: tuple[int, ...], axis: int) -> list[np.ndarray]:
    dims = shape[axis : axis + mask.ndim]
    for j, (m, n) in enumerate(zip(mask.shape, dims, strict=True)):
        if m != n:
            raise InvalidIndex(
                f"boolean index did not match indexed array along axis {axis + j}; size of "
                f"axis is {n} but size of corresponding boolean axis is {m}"
            )
    return [np.asarray(a, np.intp) for a in np.nonzero(mask)]


def _gshape(orth: Sequence[Orth | None], points: int | None) -> tuple[int, ...]:
    lengths = [
        len(o) if isinstance(o, np.ndarray) else _slice_len(o) for o in orth if o is not None
    ]
    return ((points,) if points is not None else ()) + tuple(lengths)


def numpy_selection(key: Any, shape: Sequence[int]) -> Selection | None:
    """numpy's advanced indexing of an array of ``shape`` (None for a basic key).

    Integer arrays (and integers, once any array is present) broadcast together into
    the point group; a k-d boolean mask is its ``nonzero()``; slices and ``None`` are
    basic. The broadcast dimensions replace the advanced indices where they stand when
    those are adjacent in the key, else they come first (numpy's rule).
    """
    shape = tuple(shape)
    if not is_advanced(key):
        return None
    items = _entries(key, shape, allow_new=True)
    orth: list[Orth | None] = [None] * len(shape)
    basic: list[int] = []  # lengths of the basic result dims, in key order
    first_basic_before: int | None = None  # basic dims before the first advanced entry
    adv_pos: list[int] = []
    adv: list[tuple[int, np.ndarray]] = []  # (axis, indices)
    axis = 0
    for pos, k in items:
        if k is None:
            basic.append(1)
            continue
        if isinstance(k, slice):
            orth[axis] = s = _slice(k, shape[axis], axis)
            basic.append(_slice_len(s))
            axis += 1
            continue
        if first_basic_before is None:
            first_basic_before = len(basic)
        adv_pos.append(pos)
        if isinstance(k, np.ndarray) and k.dtype == bool:
            for j, a in enumerate(_mask_axes(k, shape, axis)):
                adv.append((axis + j, a))
            axis += k.ndim
            continue
        if isinstance(k, np.ndarray):
            adv.append((axis, _wrap(k, shape[axis], axis)))
        else:
            i = _integer(k, shape[axis], axis)
            if i is None:
                raise InvalidIndex(
                    f"only integers, slices, '...', None, integer arrays and boolean masks "
                    f"are valid indices (got {type(k).__name__} on axis {axis})"
                )
            adv.append((axis, np.array(i, np.intp)))
        axis += 1
    try:
        bshape = np.broadcast_shapes(*(a.shape for _, a in adv))
    except ValueError:
        shapes = " ".join(str(a.shape) for _, a in adv)
        raise InvalidIndex(
            f"shape mismatch: indexing arrays could not be broadcast together with shapes {shapes}"
        ) from None
    points = math.prod(bshape)
    coords = np.empty((len(adv), points), np.intp)
    for row, (_, a) in enumerate(adv):
        coords[row] = np.broadcast_to(a, bshape).reshape(-1)
    adjacent = sorted(set(adv_pos)) == list(range(adv_pos[0], adv_pos[-1] + 1))
    nb, at = len(bshape), (first_basic_before or 0) if adjacent else 0
    mid = tuple(bshape) + tuple(basic)
    move = (tuple(range(nb)), tuple(range(at, at + nb))) if at and nb else None
    out = mid[nb : nb + at] + mid[:nb] + mid[nb + at :] if move else mid
    return Selection(
        shape, tuple(orth), tuple(a for a, _ in adv), coords, _gshape(orth, points), mid, move, out
    )


def basic_selection(key: Any, shape: Sequence[int]) -> Selection:
    """A basic key (integers, slices of any step, ``...``, None) as a selection: for
    writes through strided slices, which no single region can take."""
    shape = tuple(shape)
    orth: list[Orth | None] = []
    mid: list[int] = []
    axis = 0
    for _, k in _entries(key, shape, allow_new=True):
        if k is None:
            mid.append(1)
            continue
        if isinstance(k, slice):
            orth.append(_slice(k, shape[axis], axis))
            mid.append(_slice_len(orth[-1]))  # type: ignore[arg-type]
        else:
            i = _integer(k, shape[axis], axis)
            if i is None:
                raise InvalidIndex(f"only integers, slices, '...' and None (axis {axis})")
            orth.append(slice(i, i + 1, 1))
        axis += 1
    empty = np.zeros((0, 0), np.intp)
    return Selection(
        shape, tuple(orth), (), empty, _gshape(orth, None), tuple(mid), None, tuple(mid)
    )


def orthogonal_selection(key: Any, shape: Sequence[int]) -> Selection | None:
    """zarr's ``oindex``: each axis on its own by an integer (dropped), a slice, a 1-d
    integer array or a 1-d boolean mask (None for a key without arrays: it is basic)."""
    shape = tuple(shape)
    for axis, k in enumerate(key if isinstance(key, tuple) else (key,)):
        ndim = np.ndim(_index_array(k, type(k).__name__)) if _is_array_like(k) else 0
        if ndim > 1:
            raise InvalidIndex(
                f"orthogonal selection takes 1-d index arrays, got a {ndim}-d one (entry {axis})"
            )
    items = [k for _, k in _entries(key, shape, allow_new=False)]
    if not any(isinstance(k, np.ndarray) for k in items):
        return None
    orth: list[Orth | None] = []
    keep: list[int] = []
    for axis, (k, n) in enumerate(zip(items, shape, strict=True)):
        if isinstance(k, slice):
            orth.append(_slice(k, n, axis))
            keep.append(_slice_len(orth[-1]))  # type: ignore[arg-type]
        elif isinstance(k, np.ndarray):
            a = _mask_axes(k, shape, axis)[0] if k.dtype == bool else _wrap(k, n, axis)
            orth.append(a)
            keep.append(len(a))
        else:
            i = _integer(k, n, axis)
            if i is None:
                raise InvalidIndex(
                    f"orthogonal selection takes integers, slices, 1-d integer arrays and "
                    f"boolean masks (got {type(k).__name__} on axis {axis})"
                )
            orth.append(slice(i, i + 1, 1))
    empty = np.zeros((0, 0), np.intp)
    mid = tuple(keep)
    return Selection(shape, tuple(orth), (), empty, _gshape(orth, None), mid, None, mid)


def coordinate_selection(key: Any, shape: Sequence[int]) -> Selection | None:
    """zarr's ``vindex``: one integer array (or integer) per axis, broadcast together,
    or one boolean mask of the array's shape (None when every entry is an integer)."""
    shape = tuple(shape)
    items = list(key) if isinstance(key, tuple) else [key]
    if len(items) == 1 and isinstance(items[0], np.ndarray | list) and shape:
        mask = _index_array(items[0], "a mask") if _is_array_like(items[0]) else None
        if mask is not None and mask.dtype == bool:
            if mask.ndim != len(shape):
                raise InvalidIndex(
                    f"a boolean mask selection needs a {len(shape)}-d mask, got {mask.ndim}-d"
                )
            return numpy_selection(mask, shape)
    for axis, k in enumerate(items):
        if isinstance(k, slice) or k is Ellipsis or k is None:
            raise InvalidIndex(
                f"vindex takes one integer array per axis or one boolean mask (got "
                f"{'...' if k is Ellipsis else repr(k)} on axis {axis}); use arr[...] or "
                "arr.oindex[...] for slices"
            )
        if _is_array_like(k) and _index_array(k, type(k).__name__).dtype == bool:
            raise InvalidIndex(f"vindex takes a boolean mask only alone (axis {axis})")
    if len(items) != len(shape):
        raise InvalidIndex(
            f"vindex needs one index per dimension: array is {len(shape)}-dimensional, "
            f"but {len(items)} were given"
        )
    return numpy_selection(tuple(items), shape)


# --------------------------------------------------------------- cutting by chunks
#: one orthogonal axis inside one chunk: (lo, hi, src, dst)
_AxisPiece = tuple[int, int, Any, Any]


def _array_pieces(idx: np.ndarray, n: int, c: int, whole: bool) -> list[_AxisPiece]:
    if len(idx) == 0:
        return []
    if whole:
        return [(0, n, idx, slice(0, len(idx)))]
    order = np.argsort(idx, kind="stable")
    ordered = idx[order]
    ids = ordered // c
    cuts = np.flatnonzero(np.diff(ids)) + 1
    out = []
    for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(idx)], strict=True):
        lo, hi = int(ordered[a]), int(ordered[b - 1]) + 1
        out.append((lo, hi, ordered[a:b] - lo, order[a:b]))
    return out


def _slice_pieces(s: slice, n: int, c: int, whole: bool) -> list[_AxisPiece]:
    length = _slice_len(s)
    if length == 0:
        return []
    if whole:
        return [(0, n, s, slice(0, length))]
    if s.step < 0:  # the same elements in increasing order, written back to front
        last = s.start + (length - 1) * s.step
        out = []
        for lo, hi, src, dst in _slice_pieces(slice(last, s.start + 1, -s.step), n, c, False):
            a, b = length - dst.start, length - dst.stop  # dst.stop > dst.start
            out.append((lo, hi, src, slice(a - 1, b - 1 if b > 0 else None, -1)))
        return out
    start, step = s.start, s.step
    last = start + (length - 1) * step
    chunk = np.arange(start // c, last // c + 1)
    k0 = np.maximum(0, -(-(chunk * c - start) // step))
    k1 = np.minimum(length, -(-(np.minimum((chunk + 1) * c, n) - start) // step))
    out = []
    for a, b in zip(k0[k1 > k0].tolist(), k1[k1 > k0].tolist(), strict=True):
        lo, hi = start + a * step, start + (b - 1) * step + 1
        out.append((lo, hi, slice(0, hi - lo, step), slice(a, b)))
    return out


def _point_pieces(
    sel: Selection, chunks: Sequence[int], whole: Sequence[bool]
) -> list[tuple[list[int], list[int], list[np.ndarray], np.ndarray]]:
    """The point group cut by chunk: (lows, highs, offsets per axis, point positions)."""
    coords = sel.coords
    if coords.shape[1] == 0:
        return []
    ids = [coords[r] // chunks[a] for r, a in enumerate(sel.point_axes) if not whole[a]]
    count = coords.shape[1]
    order = np.lexsort(ids[::-1]) if ids else np.arange(count)  # stable, C order of chunks
    changed = np.zeros(max(0, count - 1), bool)
    for row in ids:
        changed |= np.diff(row[order]) != 0
    cuts = (np.flatnonzero(changed) + 1).tolist()
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True):
        members = order[a:b]
        here = coords[:, members]
        lows, highs, offsets = [], [], []
        for r, axis in enumerate(sel.point_axes):
            if whole[axis]:
                lo, hi = 0, sel.shape[axis]
            else:
                lo, hi = int(here[r].min()), int(here[r].max()) + 1
            lows.append(lo)
            highs.append(hi)
            offsets.append(here[r] - lo)
        out.append((lows, highs, offsets, members))
    return out


def _mesh(parts: list[Any], point: np.ndarray | None) -> tuple[Any, ...]:
    """Index arrays (points first, then one orth part per axis) as an open mesh."""
    lead = 1 if point is not None else 0
    m = lead + len(parts)
    out = []
    if point is not None:
        out.append(point.reshape((-1,) + (1,) * (m - 1)))
    for i, p in enumerate(parts):
        if isinstance(p, slice):  # normalised: start set, stop None only going down to 0
            p = np.arange(p.start, -1 if p.stop is None else p.stop, p.step or 1)
        shape = [1] * m
        shape[lead + i] = -1
        out.append(np.asarray(p).reshape(shape))
    return tuple(out)


def _leading_piece(region: list[slice], combo: Any, group: Any) -> Piece:
    """A piece of points on the leading axes and slices after them: numpy's indexing
    of the box with (offsets..., slices...) is already in G's layout."""
    src: tuple[Any, ...] = tuple(p[2] for p in combo)
    dst: tuple[Any, ...] = tuple(p[3] for p in combo)
    if group:
        lows, highs, offsets, members = group
        for r, (lo, hi) in enumerate(zip(lows, highs, strict=True)):
            region[r] = slice(lo, hi)
        src, dst = (*offsets, *src), (members, *dst)
    return Piece(tuple(region), src, dst)


def pieces(
    sel: Selection, chunks: Sequence[int], whole: Sequence[bool] | None = None
) -> Iterator[Piece]:
    """The selection cut by the chunk grid ``chunks``: one piece per touched chunk.

    ``whole[axis]`` marks axes read whole whatever the selection (e.g. a field's
    subarray dimensions, which the backends read and write only whole).
    """
    whole = tuple(whole) if whole is not None else (False,) * len(sel.shape)
    per_axis: list[list[_AxisPiece]] = []
    orth_axes = [a for a, o in enumerate(sel.orth) if o is not None]
    for axis in orth_axes:
        o, n, c = sel.orth[axis], sel.shape[axis], chunks[axis]
        if isinstance(o, np.ndarray):
            per_axis.append(_array_pieces(o, n, c, whole[axis]))
        else:
            per_axis.append(_slice_pieces(o, n, c, whole[axis]))  # type: ignore[arg-type]
    groups: list[Any] = _point_pieces(sel, chunks, whole) if sel.point_axes else [None]
    sliced = not any(isinstance(o, np.ndarray) for o in sel.orth)
    # points on the leading axes, slices after: numpy's own indexing gives G's layout
    leading = sliced and sel.point_axes == tuple(range(len(sel.point_axes)))
    for group in groups:
        for combo in product(*per_axis):
            region: list[slice] = [slice(0, 0)] * len(sel.shape)
            for axis, (lo, hi, _, _) in zip(orth_axes, combo, strict=True):
                region[axis] = slice(lo, hi)
            if leading:
                yield _leading_piece(region, combo, group)
                continue
            src: list[Any] = [None] * len(sel.shape)  # an open mesh of index arrays
            orth_src = _mesh([p[2] for p in combo], group[2][0] if group else None)
            lead = 1 if group else 0
            for i, axis in enumerate(orth_axes):
                src[axis] = orth_src[lead + i]
            if group:
                lows, highs, offsets, _ = group
                for r, axis in enumerate(sel.point_axes):
                    region[axis] = slice(lows[r], highs[r])
                    src[axis] = offsets[r].reshape(orth_src[0].shape)
            yield Piece(
                tuple(region), tuple(src), _mesh([p[3] for p in combo], group[3] if group else None)
            )


def enclosing_chunk(region: Region, shape: Sequence[int], chunks: Sequence[int]) -> Region:
    """The whole chunk holding a piece's ``region`` (axes the region spans whole stay
    so): a write of a whole chunk replaces it instead of reading it back first."""
    out = []
    for r, n, c in zip(region, shape, chunks, strict=True):
        if r.start == 0 and r.stop == n:
            out.append(r)
            continue
        lo = r.start // c * c
        out.append(slice(lo, min(lo + c, n)))
    return tuple(out)
