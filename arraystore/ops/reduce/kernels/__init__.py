"""I/O-free reduction kernels as mergeable states (count, sum, mean, var, min, argmin...).

A reduction of an N-d array of logical shape ``shape`` over ``axis`` is computed task by
task: each task reads one region of the array and calls :func:`partial`; the partial
states are folded with :func:`merge` in chunk (C) order and turned into numpy-like
results by :func:`finalize`::

    acc = init(shape, axis, ops, dtype)
    for region in chunk_regions:                       # in C order of the chunk grid
        acc = merge(acc, partial(arr[region], region, shape, axis, ops))
    results = finalize(acc, ddof=1)                   # {"mean": ..., "std": ...}

Semantics follow numpy (``np.sum``/``np.nansum``, ``np.var(ddof=...)``, ``np.argmin``...)
with these documented choices:

* ``sum`` of bool/signed ints is int64 and of unsigned ints uint64, computed *exactly*;
  if an exact sum does not fit it is returned as a Python int (object array for an
  axis reduction) -- never wrapped around, never silently converted to float.
* float16/float32 data is accumulated in float64: ``sum``/``mean``/``var``/``std`` are
  float64 (complex: ``sum``/``mean`` complex128, ``var``/``std`` float64); ``min``/``max``
  keep the input dtype; ``argmin``/``argmax``/counts are int64; ``any``/``all`` bool.
* Float results may differ from numpy (and between chunkings) in the last few ulps,
  since the summation order differs; integer sums, counts, min/max and arg results are
  identical for every chunking. ``var`` uses per-leaf centred sums merged with Chan's
  parallel formula (never sums of squares of raw values) on means kept as two float64
  (a large offset, 1e12 or an int64 timestamp, costs no digits whatever the chunking:
  within ~1e-15 of the exact variance), so it can be *more* accurate than numpy, e.g.
  when numpy's intermediate sum overflows or the data sit on a large offset. Finite data
  never give a NaN variance: a leaf whose sum overflows is centred on its largest value
  (equal values near 1e308: exactly 0), and an ``m2`` that overflows is +inf (kept so
  through merges, :func:`kernels_leaf.saturate`).
* ``skipna=True`` behaves like the ``np.nan*`` functions but never warns: the mean/var
  and min/max of an all-NaN slice are NaN; ``nanargmin``/``nanargmax`` of an all-NaN
  slice raise :class:`InvalidArgument` (numpy raises ValueError too). ``count`` is the
  number of elements considered (non-NaN ones when skipping NaN).
* Mean of zero elements is NaN (no warning); var with ``n - ddof <= 0`` is NaN/inf like
  numpy (NaN when skipping NaN); min/max/argmin/argmax over zero elements raise
  :class:`InvalidArgument`. An ``axis`` tuple is refused for argmin/argmax like numpy.
  Complex data refuses min/max/argmin/argmax.
* ``argmin``/``argmax`` give the flat index into the whole array for ``axis=None`` and
  the index along the axis for an int axis; ties go to the first occurrence (the
  smallest index), NaN wins unless skipping NaN, as in numpy. ``nanargmin`` treats NaN as
  +inf exactly like numpy does (so ``[nan, inf]`` gives 0).

Blocks of a *subarray* field have extra trailing dims after ``len(shape)``; they are
never reduced and are appended to the output shape. Signed zeros compare equal, so
``min`` may return ``0.0`` where numpy returns ``-0.0`` (and vice versa).

Performance (the hot path): a C-contiguous block is viewed as 2-d, ``(R, K)`` when the
reduced axes lead (``axis=None``, per-column stats) or ``(K, R)`` when they trail. For
count/sum/mean/var/std/min/max it then takes :mod:`kernels_fast`: the block is cut into
~1 MiB leaves (``kernels_leaf.LEAF_BYTES``), every pass (sum, min, max, centred M2) runs
on a leaf while it sits in the L2 cache, narrow rows are regrouped so numpy's inner
loops are ~1024 long, and all leaves are merged at once, vectorised. Other ops (and
float blocks holding NaN/inf, 64-bit int sums that may overflow) take the generic tiled
path (one state per ~1 MiB tile); other layouts (strided blocks, interleaved reduced
axes) the N-d leaf path. No BLAS calls (they would start their own threads next to the
executor's). Temporaries: ~2 leaves per thread, reused. A float ``(R, K)`` block first
tries the one-pass numba kernel (:mod:`.numba`, when installed) unless the caller passes
``fused=False``; the stats op does so below ``arraystore._native.jit.NUMBA_MIN_BYTES``,
where importing numba would cost more than it saves.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from arraystore.errors import ArrayStoreError, InvalidArgument
from arraystore.ops.reduce.kernels import leaf as _kl
from arraystore.ops.reduce.kernels import numba as kernels_numba
from arraystore.ops.reduce.kernels.fast import FAST_OPS, cols_state, rows_state
from arraystore.ops.reduce.kernels.leaf import OPS, Spec, leaf_state, make_spec, means
from arraystore.ops.reduce.kernels.merge import State, combine, identity, place
from arraystore.ops.reduce.kernels.tiled import global_index, masked_state, tiled

__all__ = ["OPS", "Geometry", "Partial", "finalize", "fold", "geometry", "init", "merge", "partial"]

Box = tuple[tuple[int, int], ...]
#: Flush pending leaf states of one output box after this many cells.
_PENDING_CELLS = 1 << 18


@dataclass(frozen=True)
class Geometry:
    """One reduction: logical shape, reduced/kept axes, trailing dims, dtype and ops."""

    shape: tuple[int, ...]
    red: tuple[int, ...]
    kept: tuple[int, ...]
    trailing: tuple[int, ...]
    spec: Spec
    flat_arg: bool

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[a] for a in self.kept) + self.trailing

    @property
    def r_total(self) -> int:
        """Elements reduced into each output cell."""
        return math.prod(self.shape[a] for a in self.red)

    @property
    def full_box(self) -> Box:
        return tuple((0, self.shape[a]) for a in self.kept)


@dataclass
class Partial:
    """The state of a reduction over some regions; ``box`` is the kept-axes box it covers.

    ``state`` holds one array per state field over ``box`` (+ trailing dims); ``None``
    means nothing seen yet. Picklable, so it can travel back from dask workers.
    """

    geom: Geometry
    box: Box | None
    state: State | None


def _normalize_axis(axis: object, nd: int) -> tuple[tuple[int, ...], bool, bool]:
    """Returns (reduced axes, axis is None, axis is a single int)."""
    if axis is None:
        return tuple(range(nd)), True, True
    single = not isinstance(axis, (tuple, list))
    items: list[Any] = [axis] if single else list(axis)  # type: ignore[call-overload]
    out = []
    for a in items:
        if isinstance(a, (bool, np.bool_)):
            raise InvalidArgument(f"axis must be None, an int or a tuple of ints, got {axis!r}")
        try:
            i = operator.index(a)
        except TypeError:
            raise InvalidArgument(
                f"axis must be None, an int or a tuple of ints, got {axis!r}"
            ) from None
        if not -nd <= i < nd:
            raise InvalidArgument(f"axis {i} is out of bounds for array of dimension {nd}")
        out.append(i % nd)
    if len(set(out)) != len(out):
        raise InvalidArgument(f"duplicate value in axis {axis!r}")
    return tuple(sorted(out)), False, single


@functools.lru_cache(maxsize=256)
def _geometry(
    shape: tuple[int, ...],
    axis: Any,
    ops: frozenset[str],
    dtype: np.dtype,
    skipna: bool,
    trailing: tuple[int, ...],
    masked: bool = False,
) -> Geometry:
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise InvalidArgument(f"bad shape {shape!r}")
    red, flat, single = _normalize_axis(axis, len(shape))
    if ops & {"argmin", "argmax"} and not single:
        raise InvalidArgument("argmin/argmax need axis=None or a single int axis, not a tuple")
    kept = tuple(a for a in range(len(shape)) if a not in red)
    return Geometry(shape, red, kept, trailing, make_spec(dtype, ops, skipna, masked), flat)


def geometry(
    shape: Iterable[int],
    axis: int | tuple[int, ...] | None,
    ops: Iterable[str],
    dtype: np.typing.DTypeLike,
    skipna: bool = False,
    trailing: Iterable[int] = (),
    masked: bool = False,
) -> Geometry:
    """Validate and describe a reduction (raises :class:`InvalidArgument`); ``masked``:
    its partials come with a ``where=`` mask."""
    if isinstance(ops, str):
        ops = [ops]
    if isinstance(axis, list):
        axis = tuple(axis)
    shape_t = tuple(operator.index(d) for d in shape)
    trailing_t = tuple(operator.index(d) for d in trailing)
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise InvalidArgument(f"bad dtype {dtype!r}: {e}") from None
    return _geometry(shape_t, axis, frozenset(ops), dt, bool(skipna), trailing_t, bool(masked))


def init(
    shape: Iterable[int],
    axis: int | tuple[int, ...] | None,
    ops: Iterable[str],
    dtype: np.typing.DTypeLike,
    skipna: bool = False,
    trailing: Iterable[int] = (),
    masked: bool = False,
) -> Partial:
    """An empty partial (nothing seen): the start of a fold, and the state of 0 chunks."""
    return Partial(geometry(shape, axis, ops, dtype, skipna, trailing, masked), None, None)


def _leaves(lshape: tuple[int, ...], unit: int) -> Iterator[tuple[slice, ...]]:
    """Boxes of about LEAF_BYTES covering a block in C order (trailing dims never split)."""
    nd = len(lshape)
    suffix = [unit] * (nd + 1)
    for a in range(nd - 1, -1, -1):
        suffix[a] = suffix[a + 1] * lshape[a]
    if suffix[0] <= _kl.LEAF_BYTES or nd == 0:
        yield tuple(slice(None) for _ in lshape)
        return
    k = next((a for a in range(nd) if suffix[a + 1] <= _kl.LEAF_BYTES), nd - 1)
    step = max(1, _kl.LEAF_BYTES // suffix[k + 1])
    if step >= 2048:
        step -= step % 1024
    rest = tuple(slice(None) for _ in lshape[k + 1 :])
    for outer in np.ndindex(*lshape[:k]):
        head = tuple(slice(i, i + 1) for i in outer)
        for j in range(0, lshape[k], step):
            yield (*head, slice(j, min(j + step, lshape[k])), *rest)


def _leaf(geom: Geometry, L: np.ndarray, origin: tuple[int, ...]) -> tuple[Box, State]:
    """State of one leaf ``L`` whose logical corner is at global ``origin``."""
    nd = len(geom.shape)
    red, kept, spec = geom.red, geom.kept, geom.spec
    lshape = L.shape[:nd]
    r = math.prod(lshape[a] for a in red)
    out_shape = tuple(lshape[a] for a in kept) + geom.trailing
    K = math.prod(out_shape)
    box = tuple((origin[a], origin[a] + lshape[a]) for a in kept)
    m = len(red)
    if red == tuple(range(m)):
        X, ax = L.reshape(r, K), 0
    elif red == tuple(range(nd - m, nd)) and not geom.trailing:
        X, ax = L.reshape(K, r), 1
    else:
        X, ax = np.moveaxis(L, red, tuple(range(m))).reshape(r, K), 0
    if X.size == 0:
        st = identity(spec, out_shape)
        st["size"][...] = r
        return box, st
    st = leaf_state(X, ax, spec)
    for key in ("amin_i", "amax_i"):
        if key in st:
            st[key] = global_index(geom, st[key], lshape, origin)
    return box, {k: v.reshape(out_shape) for k, v in st.items()}


def _sub(box: Box, universe: Box, ntrail: int) -> tuple[slice, ...]:
    return (
        tuple(slice(s - u, e - u) for (s, e), (u, _) in zip(box, universe, strict=True))
        + (slice(None),) * ntrail
    )


def _shape(box: Box, trailing: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(e - s for s, e in box) + trailing


def partial(
    block: np.ndarray,
    region: tuple[slice, ...],
    shape: Iterable[int],
    axis: int | tuple[int, ...] | None,
    ops: Iterable[str],
    skipna: bool = False,
    *,
    fused: bool = True,
    where: np.ndarray | None = None,
) -> Partial:
    """The reduction state of ``block == arr[region]`` (region: one step-1 slice per dim).

    ``fused=False`` keeps to the numpy kernels (no numba import); every partial of one
    reduction should be computed with the same value (float sums round differently).
    ``where``: numpy's ``where=``, a bool array of the region's shape (broadcast over a
    subarray field's trailing dims); every partial of one reduction gives one or none."""
    block = np.asarray(block)
    shape_t = tuple(operator.index(d) for d in shape)
    nd = len(shape_t)
    if block.ndim < nd:
        raise InvalidArgument(f"block has {block.ndim} dims, the array has {nd}")
    geom = geometry(shape_t, axis, ops, block.dtype, skipna, block.shape[nd:], where is not None)
    region = tuple(region)
    if len(region) != nd:
        raise InvalidArgument(f"region has {len(region)} slices, the array has {nd} dims")
    starts = []
    for a, (sl, n) in enumerate(zip(region, shape_t, strict=True)):
        ok = isinstance(sl, slice) and sl.step in (None, 1)
        start, stop, _ = sl.indices(n) if ok else (0, -1, 1)
        if not ok or stop - start != block.shape[a]:
            raise InvalidArgument(
                f"region {region!r} does not match block shape {block.shape} in {shape_t}"
            )
        starts.append(start)
    if not block.dtype.isnative:
        block = block.astype(block.dtype.newbyteorder("="))
    with np.errstate(all="ignore"):  # NaN/inf follow numpy's values, without warnings
        if where is not None:
            return _masked(geom, block, tuple(starts), where)
        return _block_partial(geom, block, tuple(starts), fused)


def _masked(geom: Geometry, block: np.ndarray, starts: tuple[int, ...], where: Any) -> Partial:
    box, state = masked_state(geom, block, starts, where)
    return Partial(geom, box, state)


def rows_partial(
    read: Any,
    pieces: list[tuple[slice, ...]],
    shape: Iterable[int],
    axis: int | tuple[int, ...] | None,
    ops: Iterable[str],
    dtype: np.dtype,
    skipna: bool = False,
) -> Partial | None:
    """The state of the union of ``pieces`` (consecutive row slices of one region, split
    along axis 0) from ``read(piece)`` blocks folded one after another into one running
    numba state: no per-piece state dicts or merges. None when that path does not apply
    (not float32/64, an op outside the fused set, axis 0 kept, no numba) or a piece holds
    NaN/inf; the caller then takes :func:`partial` piece by piece."""
    shape_t = tuple(operator.index(d) for d in shape)
    geom = geometry(shape_t, axis, ops, dtype, skipna)
    m = len(geom.red)
    if (
        geom.spec.kind != "f"
        or not geom.spec.ops <= FAST_OPS
        or not pieces
        or m == 0
        or geom.red != tuple(range(m))
    ):
        return None
    K = math.prod(shape_t[m:])
    carry = kernels_numba.RowsCarry.create(K, dtype)
    if carry is None:
        return None
    for piece in pieces:
        block = read(piece)
        if not block.flags.c_contiguous or not carry.add(block.reshape(-1, K)):
            return None
    if carry.rows == 0:
        return None
    first, last = pieces[0], pieces[-1]
    starts = [sl.indices(n)[0] for sl, n in zip(first, shape_t, strict=True)]
    stops = [sl.indices(n)[1] for sl, n in zip(first, shape_t, strict=True)]
    stops[0] = last[0].indices(shape_t[0])[1]
    box = tuple((starts[a], stops[a]) for a in geom.kept)
    out_shape = _shape(box, geom.trailing)
    state = carry.state(geom.spec.ops)
    return Partial(geom, box, {k: v.reshape(out_shape) for k, v in state.items()})


def _block_partial(
    geom: Geometry, block: np.ndarray, starts: tuple[int, ...], fused: bool
) -> Partial:
    nd = len(geom.shape)
    spec, trailing = geom.spec, geom.trailing
    lshape = block.shape[:nd]
    block_box = tuple((starts[a], starts[a] + lshape[a]) for a in geom.kept)
    out_shape = _shape(block_box, trailing)
    if block.size == 0:
        return Partial(geom, block_box, identity(spec, out_shape))
    X, ax = _as_2d(geom, block)
    if X is not None:
        st = rows_state(X, spec, fused) if ax == 0 else cols_state(X, spec)
        if st is None:
            st = tiled(geom, X, ax, lshape, starts)
        return Partial(geom, block_box, {k: v.reshape(out_shape) for k, v in st.items()})
    return _leafwise(geom, block, starts, block_box)


def _as_2d(geom: Geometry, block: np.ndarray) -> tuple[np.ndarray | None, int]:
    """A C-contiguous block as ``X (R, K)`` (reduced axes first, ``ax=0``) or ``(K, R)``."""
    if not block.flags.c_contiguous:
        return None, 0
    nd, m = len(geom.shape), len(geom.red)
    r = math.prod(block.shape[a] for a in geom.red)
    if geom.red == tuple(range(m)):
        return block.reshape(r, block.size // r), 0
    if geom.red == tuple(range(nd - m, nd)) and not geom.trailing:
        return block.reshape(block.size // r, r), 1
    return None, 0


def _leafwise(
    geom: Geometry, block: np.ndarray, starts: tuple[int, ...], block_box: Box
) -> Partial:
    """Generic path for any layout: N-d leaves of ~LEAF_BYTES, merged by output box."""
    nd = len(geom.shape)
    spec, trailing = geom.spec, geom.trailing
    lshape = block.shape[:nd]
    unit = block.dtype.itemsize * math.prod(trailing)
    dense: State | None = None
    first: tuple[Box, State] | None = None
    cur: Box | None = None
    pending: list[State] = []

    def flush() -> None:
        nonlocal dense, first
        if not pending:
            return
        st = combine(spec, pending)
        pending.clear()
        assert cur is not None
        if first is None:
            first = (cur, st)
            return
        if dense is None:
            dense = identity(spec, _shape(block_box, trailing))
            place(spec, dense, _sub(first[0], block_box, len(trailing)), first[1])
        place(spec, dense, _sub(cur, block_box, len(trailing)), st)

    for sl in _leaves(lshape, unit):
        origin = tuple(s + (x.start or 0) for s, x in zip(starts, sl, strict=True))
        box, st = _leaf(geom, block[sl], origin)
        if box != cur:
            flush()
            cur = box
        pending.append(st)
        if len(pending) * st["size"].size > _PENDING_CELLS or len(pending) >= 256:
            pending[:] = [combine(spec, pending)]
    flush()
    if dense is not None:
        return Partial(geom, block_box, dense)
    assert first is not None
    return Partial(geom, first[0], first[1])


def merge(a: Partial, b: Partial) -> Partial:
    """Merge two partials; ``b``'s regions come after ``a``'s in chunk order.

    ``a`` is consumed: once it covers the whole output its arrays are updated in place.
    """
    if a.geom != b.geom:
        raise InvalidArgument("cannot merge partial states of different reductions")
    if a.state is None or a.box is None:
        return b
    if b.state is None or b.box is None:
        return a
    with np.errstate(all="ignore"):
        return _merge(a, b)


def _merge(a: Partial, b: Partial) -> Partial:
    assert a.box is not None and b.box is not None and a.state is not None and b.state is not None
    spec, geom = a.geom.spec, a.geom
    if a.box == b.box:
        return Partial(geom, a.box, combine(spec, [a.state, b.state]))
    full, nt = geom.full_box, len(geom.trailing)
    if a.box == full:
        dense = a.state
    else:
        dense = identity(spec, geom.out_shape)
        place(spec, dense, _sub(a.box, full, nt), a.state)
    place(spec, dense, _sub(b.box, full, nt), b.state)
    return Partial(geom, full, dense)


def fold(
    pairs: Iterable[tuple[np.ndarray, tuple[slice, ...]]],
    shape: Iterable[int],
    axis: int | tuple[int, ...] | None,
    ops: Iterable[str],
    dtype: np.typing.DTypeLike,
    skipna: bool = False,
    trailing: Iterable[int] = (),
) -> Partial:
    """Serial helper: merge the partials of ``(block, region)`` pairs given in C order."""
    shape_t = tuple(shape)
    acc = init(shape_t, axis, ops, dtype, skipna, trailing)
    for block, region in pairs:
        acc = merge(acc, partial(block, region, shape_t, axis, ops, skipna))
    return acc


def _scalar(v: np.ndarray) -> np.ndarray | np.generic | int:
    v = np.asarray(v)
    return v[()] if v.ndim == 0 else v


def finalize(
    p: Partial, ops: Iterable[str] | None = None, ddof: float = 0
) -> dict[str, np.ndarray | np.generic | int]:
    """Results with numpy's semantics (see the module docstring), one entry per op."""
    geom, spec = p.geom, p.geom.spec
    want = spec.ops if ops is None else frozenset([ops] if isinstance(ops, str) else ops)
    if not want <= spec.ops:
        raise InvalidArgument(f"op(s) {sorted(want - spec.ops)} were not computed")
    if p.state is None or p.box is None:
        st = identity(spec, geom.out_shape)
    elif p.box == geom.full_box:
        st = p.state
    else:
        st = identity(spec, geom.out_shape)
        with np.errstate(all="ignore"):
            place(spec, st, _sub(p.box, geom.full_box, len(geom.trailing)), p.state)
    rt = geom.r_total
    if st["size"].size and not (st["size"] == rt).all():
        raise ArrayStoreError(
            f"partial states cover {int(st['size'].min())}..{int(st['size'].max())} elements "
            f"of some output cells, expected {rt}: regions are missing or repeated"
        )
    n = st["n"] if spec.skipna or spec.masked else st["size"]
    res: dict[str, np.ndarray | np.generic | int] = {}
    with np.errstate(all="ignore"):
        for op in sorted(want):
            res[op] = _scalar(_result(op, st, spec, n, rt, ddof))
    return res


def _result(op: str, st: State, spec: Spec, n: np.ndarray, rt: int, ddof: float) -> np.ndarray:
    if op == "count":
        return n.copy()
    if op == "nan_count":
        return st["nan"].copy()
    if op == "count_nonzero":
        return st["cnz"].copy()
    if op in ("any", "all"):
        return st[op].copy()
    if op == "sum":
        s = st["sum"]
        if s.dtype == object:
            info = np.iinfo(spec.sum_dtype)
            if all(info.min <= int(v) <= info.max for v in s.ravel()):
                return s.astype(spec.sum_dtype)
        return s.copy()
    if op == "mean":
        if spec.kind in "fc":
            return st["sum"] / n
        return np.where(n == 0, np.nan, means(st["sum"], n))
    if op in ("var", "std"):
        if spec.skipna:
            dof = n - ddof
            var = np.where(dof > 0, st["m2"] / np.where(dof > 0, dof, 1), np.nan)
        else:
            var = st["m2"] / np.maximum(n - ddof, 0)
        return np.sqrt(var) if op == "std" else var
    if op in ("min", "max"):
        if rt == 0:
            name = "minimum" if op == "min" else "maximum"
            raise InvalidArgument(
                f"zero-size array to reduction operation {name} which has no identity"
            )
        v = st[op]
        if spec.masked and spec.kind != "f" and (n == 0).any():
            raise InvalidArgument(
                f"{op} of {spec.dtype} data where where= selects nothing (in some slice): "
                "no identity (numpy raises too); reduce a float field to get NaN there"
            )
        if spec.skipna or spec.masked:
            v = np.where(n == 0, np.nan, v).astype(spec.dtype)
        return v.copy()
    key = "amin" if op == "argmin" else "amax"
    if rt == 0:
        raise InvalidArgument(f"attempt to get {op} of an empty sequence")
    if spec.skipna and (n == 0).any():
        raise InvalidArgument(f"All-NaN slice encountered in nan{op}")
    return st[key + "_i"].copy()
