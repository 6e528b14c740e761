"""Chunk-grid maths and index normalisation: pure functions over shapes and slices.

A *region* is a tuple of ``slice(start, stop)`` (step 1, non-negative, in bounds), one per
dimension. Chunk regions tile an array in C order.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from arraystore.errors import InvalidArgument, InvalidIndex, InvalidType

Region = tuple[slice, ...]
DEFAULT_CHUNK_BYTES = 64 * 2**20
_HEX_LIKE = re.compile(r"(?:^|[,(\s])[+-]?0[xX]")  # an entry starting with 0x / 0X


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise InvalidArgument(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        digits = text[1:] if text.startswith("-") else text
        if digits.isascii() and digits.isdecimal():
            return int(text)
    raise InvalidArgument(f"{what} must be an integer, got {value!r}")


def normalize_shape(shape: Any) -> tuple[int, ...]:
    """``1000`` / ``"1000,64"`` / ``(1000, 64)`` -> a tuple of non-negative ints."""
    if isinstance(shape, str):
        if _HEX_LIKE.search(shape):  # '0x10': hex 16, or (0, 10) in the "AxB" form?
            raise InvalidArgument(
                f"bad shape {shape!r}: looks like a hexadecimal number; separate "
                f"dimensions with commas (e.g. {shape.strip().replace('x', ',').replace('X', ',')})"
            )
        if not shape.strip():
            raise InvalidArgument(f"bad shape {shape!r}: empty (a 0-d array is --shape '()')")
        inner = shape.strip().strip("()").replace("x", ",")
        parts = inner.split(",") if inner.strip() else []
        if parts and not parts[-1].strip():
            parts = parts[:-1]  # "(3,)" style trailing comma
        if any(not p.strip() for p in parts):
            raise InvalidArgument(f"bad shape {shape!r}: empty entry")
        shape = parts
    elif not isinstance(shape, Sequence):
        shape = (shape,)
    out = tuple(_as_int(s, "shape entries") for s in shape)
    for s in out:
        if s < 0:
            raise InvalidArgument(f"shape {out} has a negative dimension")
    return out


def auto_chunks(
    shape: Sequence[int], itemsize: int, target_bytes: int = DEFAULT_CHUNK_BYTES
) -> tuple[int, ...]:
    """Row-block chunks of about ``target_bytes``: split axis 0 first, then the next axes.

    Trailing axes stay whole as long as one "row" fits the target; every chunk dimension
    is at least 1 and at most the array dimension (1 for zero-length dimensions).
    """
    if target_bytes < 1:
        raise InvalidArgument("target chunk size must be positive")
    itemsize = max(1, int(itemsize))
    shape = tuple(int(s) for s in shape)
    chunks = [max(1, s) for s in shape]
    budget = max(1, target_bytes // itemsize)  # elements per chunk
    for axis in range(len(shape)):
        inner = math.prod(chunks[axis + 1 :])
        if inner <= budget:
            chunks[axis] = max(1, min(chunks[axis], budget // max(1, inner)))
            break
        chunks[axis] = 1
    return tuple(chunks)


def normalize_chunks(
    chunks: Any, shape: Sequence[int], itemsize: int, target_bytes: int = DEFAULT_CHUNK_BYTES
) -> tuple[int, ...]:
    """Validate user chunks (``None``/``"auto"``, an int for axis 0, or one per axis).

    ``-1`` or ``None`` as an entry means the whole dimension. Entries larger than the
    dimension are clamped to it.
    """
    shape = tuple(shape)
    if chunks is None or (isinstance(chunks, str) and chunks.strip().lower() == "auto"):
        return auto_chunks(shape, itemsize, target_bytes)
    if isinstance(chunks, str):
        text, inner = chunks, chunks.strip().strip("()")
        chunks = [c.strip() for c in inner.split(",")] if inner.strip() else []
        if len(chunks) > 1 and not chunks[-1]:
            chunks = chunks[:-1]  # "(64,)" style trailing comma
        if "" in chunks:
            raise InvalidArgument(f"bad chunks {text!r}: empty item")
    elif not isinstance(chunks, Sequence):
        chunks = [chunks] + [-1] * (len(shape) - 1)
    if len(chunks) != len(shape):
        raise InvalidArgument(
            f"chunks {tuple(chunks)} must have one entry per dimension of {shape}"
        )
    out = []
    for c, s in zip(chunks, shape, strict=True):
        if c is None or (isinstance(c, str) and c in ("-1", "none", "None")):
            out.append(max(1, s))
            continue
        n = _as_int(c, "chunk sizes")
        if n == -1:
            out.append(max(1, s))
        elif n < 1:
            raise InvalidArgument(f"chunk sizes must be >= 1 (or -1 for the whole axis), got {n}")
        else:
            out.append(min(n, max(1, s)))
    return tuple(out)


def normalize_shards(
    shards: Any, shape: Sequence[int], chunks: Sequence[int]
) -> tuple[int, ...] | None:
    """Validate user shards (``None``: not sharded; an int for axis 0, the other axes
    whole; or one entry per axis, ``-1`` for the whole axis). Each entry must be a
    multiple of the chunk; one beyond the axis is cut to the fewest chunks covering it."""
    if shards is None:
        return None
    if not len(shape):
        raise InvalidArgument("a 0-d array has no shards")
    text = shards
    if isinstance(shards, str):
        inner = shards.strip().strip("()")
        shards = [c.strip() for c in inner.split(",")] if inner.strip() else []
        if len(shards) > 1 and not shards[-1]:
            shards = shards[:-1]
        if "" in shards:
            raise InvalidArgument(f"bad shards {text!r}: empty item")
        if len(shards) == 1:  # "ROWS": the other axes whole
            shards = shards + [-1] * (len(shape) - 1)
    elif not isinstance(shards, Sequence):
        shards = [shards] + [-1] * (len(shape) - 1)
    if len(shards) != len(shape):
        raise InvalidArgument(
            f"shards {tuple(shards)} must have one entry per dimension of {tuple(shape)}"
        )
    out = []
    for v, s, c in zip(shards, shape, chunks, strict=True):
        whole = max(c, -(-s // c) * c)  # the axis in whole chunks
        n = -1 if v is None else _as_int(v, "shard sizes")
        if n == -1:
            n = whole
        elif n < 1 or n % c:
            raise InvalidArgument(
                f"shards {text!r} must be multiples of the chunks {tuple(chunks)} "
                "(or -1 for the whole axis)"
            )
        out.append(min(n, whole))
    return tuple(out)


def grid_shape(shape: Sequence[int], chunks: Sequence[int]) -> tuple[int, ...]:
    """Number of chunks along each dimension (0 along a zero-length dimension)."""
    return tuple(-(-s // c) for s, c in zip(shape, chunks, strict=True))


def chunk_region(index: Sequence[int], shape: Sequence[int], chunks: Sequence[int]) -> Region:
    return tuple(
        slice(i * c, min((i + 1) * c, s)) for i, s, c in zip(index, shape, chunks, strict=True)
    )


def _odometer(starts: Sequence[int], stops: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every index in the box [starts, stops) in C order (last axis fastest), lazily: unlike
    ``itertools.product`` nothing is materialised, so a grid of 2**40 chunks costs nothing
    until iterated. No dimension: one ``()``; an empty dimension: nothing."""
    if any(b <= a for a, b in zip(starts, stops, strict=True)):
        return
    idx = list(starts)
    last = len(idx) - 1
    while True:
        yield tuple(idx)
        axis = last
        while axis >= 0:
            idx[axis] += 1
            if idx[axis] < stops[axis]:
                break
            idx[axis] = starts[axis]
            axis -= 1
        if axis < 0:
            return


def iter_chunk_indices(shape: Sequence[int], chunks: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every chunk index in C order (a lazy generator). A 0-d array has one index ``()``."""
    grid = grid_shape(shape, chunks)
    return _odometer((0,) * len(grid), grid)


def iter_chunk_regions(shape: Sequence[int], chunks: Sequence[int]) -> Iterator[Region]:
    """Every chunk region in C order. A 0-d array has one region ``()``."""
    for idx in iter_chunk_indices(shape, chunks):
        yield chunk_region(idx, shape, chunks)


def region_shape(region: Region) -> tuple[int, ...]:
    return tuple(s.stop - s.start for s in region)


def check_region(region: Any, shape: Sequence[int]) -> Region:
    """A user's region (one slice per dimension, numpy's slice rules: ``None`` ends,
    negative and past-the-end bounds) as the step-1 box it selects; anything else --
    a step other than 1, a non-slice, a wrong count -- is :class:`InvalidArgument`
    (backends trust regions: unchecked, one past the end read garbage or past EOF)."""
    shape = tuple(shape)
    if not isinstance(region, tuple | list) or not all(isinstance(s, slice) for s in region):
        raise InvalidArgument(f"region must be a tuple of slices, got {region!r}")
    if len(region) != len(shape):
        raise InvalidArgument(
            f"region {tuple(region)!r} must have one slice per dimension of shape {shape}"
        )
    out: list[slice] = []
    for s, n in zip(region, shape, strict=True):
        try:
            start, stop, step = s.indices(n)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"bad region slice {s!r}: {exc}") from None
        if step != 1:
            raise InvalidArgument(
                f"region slices must have step 1, got {s!r} (index the array for strides)"
            )
        out.append(slice(start, max(start, stop)))
    return tuple(out)


def region_size(region: Region) -> int:
    return math.prod(region_shape(region))


def full_region(shape: Sequence[int]) -> Region:
    return tuple(slice(0, s) for s in shape)


def chunks_touching(
    region: Region, shape: Sequence[int], chunks: Sequence[int]
) -> Iterator[tuple[int, ...]]:
    """Indices of the chunks a region intersects (none for an empty region)."""
    starts, stops = [], []
    for r, c in zip(region, chunks, strict=True):
        if r.stop <= r.start:
            return
        starts.append(r.start // c)
        stops.append((r.stop - 1) // c + 1)
    yield from _odometer(starts, stops)


def intersect(a: Region, b: Region) -> Region | None:
    out = []
    for x, y in zip(a, b, strict=True):
        lo, hi = max(x.start, y.start), min(x.stop, y.stop)
        if hi <= lo:
            return None
        out.append(slice(lo, hi))
    return tuple(out)


def relative(inner: Region, outer: Region) -> Region:
    """``inner`` expressed relative to the start of ``outer``."""
    return tuple(
        slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer, strict=True)
    )


def normalize_index(key: Any, shape: Sequence[int]) -> tuple[Region, tuple[Any, ...]]:
    """Split a basic index into the bounding region to read and the index to apply after.

    Supports integers, slices (any step), one Ellipsis and ``None`` (``np.newaxis``: a new
    length-1 axis, as in numpy). Returns ``(region, post)``: read ``region`` (a step-1 box)
    and apply ``post`` to the block to get exactly what ``numpy_array[key]`` returns.
    """
    shape = tuple(shape)
    if not isinstance(key, tuple):
        key = (key,)
    n_ell = sum(1 for k in key if k is Ellipsis)
    n_new = sum(1 for k in key if k is None)
    if n_ell > 1:
        raise InvalidIndex("an index can only have a single ellipsis ('...')")
    used = len(key) - n_ell - n_new  # entries that consume a dimension
    if used > len(shape):
        raise InvalidIndex(
            f"too many indices for array: array is {len(shape)}-dimensional, "
            f"but {used} were indexed"
        )
    if n_ell:
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - used) + key[i + 1 :]
    else:
        key = key + (slice(None),) * (len(shape) - used)
    region: list[slice] = []
    post: list[Any] = []
    axis = 0
    for k in key:
        if k is None:
            post.append(None)
            continue
        r, p = _one_index(k, axis, shape[axis])
        region.append(r)
        post.append(p)
        axis += 1
    return tuple(region), tuple(post)


def _one_index(k: Any, axis: int, n: int) -> tuple[slice, Any]:
    """The region slice of one axis and the index to apply to it after reading."""
    if isinstance(k, slice):
        try:
            start, stop, step = k.indices(n)
        except TypeError as exc:  # slice(1.0, 3): numpy raises TypeError too
            raise InvalidType(f"bad slice {k!r} on axis {axis}: {exc}") from None
        except ValueError as exc:  # step 0
            raise InvalidArgument(f"bad slice {k!r} on axis {axis}: {exc}") from None
        length = len(range(start, stop, step))
        if length == 0:
            return slice(0, 0), slice(None)
        last = start + (length - 1) * step
        if step > 0:
            return slice(start, last + 1), slice(None, None, step)
        return slice(last, start + 1), slice(None, None, step)
    if isinstance(k, bool | np.bool_):
        raise InvalidIndex(
            f"index {k!r} on axis {axis} is not supported: use integers, slices, '...' and None"
        )
    try:
        i = operator.index(k)
    except TypeError:
        raise InvalidIndex(
            f"only integers, slices, '...' and None are supported as indices (got "
            f"{type(k).__name__} on axis {axis}); read a region, then index the numpy result"
        ) from None
    if not -n <= i < n:
        raise InvalidIndex(f"index {i} is out of bounds for axis {axis} with size {n}")
    i %= n
    return slice(i, i + 1), 0


def split_rows(region: Region, row_bytes: int, target: int) -> list[Region]:
    """``region`` cut along axis 0 into consecutive pieces of about ``target`` bytes
    (``row_bytes`` per row of the region; at least one row per piece), in order."""
    if not region:
        return [region]
    a, b = region[0].start, region[0].stop
    step = max(1, target // max(1, row_bytes))
    if b - a <= step:
        return [region]
    return [(slice(i, min(b, i + step)), *region[1:]) for i in range(a, b, step)]
