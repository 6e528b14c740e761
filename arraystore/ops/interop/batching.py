"""Batches of rows for training loops: numpy, or torch tensors without a copy.

``Batches(arr, n)`` iterates over ``arr`` in batches of ``n`` rows (axis 0; the last one
may be shorter unless ``drop_last``). It reads one *row block* at a time (a chunk row:
the storage chunks along axis 0 for zarr, the logical row blocks for memmap) while a
background thread reads the next one (read-ahead), so at most ``prefetch + 2`` blocks are
in memory, whatever the array's size. A structured array yields ``{field: ndarray}``
(columnar, like the zarr layout; ``fields=`` selects, and a zarr array then reads only
those fields); a plain array, a field view or ``fields="name"`` yields one ndarray. Every
array yielded is C-contiguous and writable; a batch inside one block is a view of that
block, a batch spanning two blocks a new array.

``shuffle=True`` is a *chunk-local* shuffle in bounded memory: the order of the row
blocks is permuted, and the rows within each block, with ``numpy.random.default_rng``
seeded by ``(seed, epoch)`` (``set_epoch(e)`` for a new order per epoch; the same seed
and epoch give the same batches). Rows never move between blocks, so it is not a
uniform shuffle of the whole array: fine when rows are not ordered by a label over
spans longer than a block (else shuffle the file once).

torch (``to_torch=True`` or ``.to_torch()``; :func:`to_torch` converts a numpy batch):
``torch.from_numpy`` shares the numpy batch's memory (no copy). dtype mapping:

================  =================  =============================================
numpy             torch              note
================  =================  =============================================
bool              torch.bool
u1 / i1           uint8 / int8
i2 / i4 / i8      int16/int32/int64
f2 / f4 / f8      float16/32/64      float64 stays float64 unless torch_dtype says
c8 / c16          complex64/128
bfloat16          torch.bfloat16     ml_dtypes bits viewed as int16, then
                                     ``.view(torch.bfloat16)``: no float32 detour
u2 / u4 / u8      (refused)          torch's uint16/32/64 are not usable for math;
                                     pass ``torch_dtype`` (e.g. torch.int32 for u2,
                                     torch.int64 for u4/u8): converted in numpy,
                                     value-checked (an u8 above 2**63-1 is an error)
U / S strings     (refused)          select numeric ``fields``
================  =================  =============================================

``torch_dtype`` (one dtype, or ``{field: dtype}``) converts each batch once with
``tensor.to(torch_dtype)`` (a copy, by torch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.core.dtypes import is_bfloat16, scalar_str
from arraystore.errors import DTypeError, FieldNotFound, InvalidArgument
from arraystore.ops.io.common import read_ahead, read_fields, require, row_regions

if TYPE_CHECKING:
    from arraystore.storage import ArrayView

#: numpy dtype (scalar_str) -> torch dtype name; see the module table
TORCH_DTYPES = {
    "bool": "bool",
    "u1": "uint8",
    "i1": "int8",
    "i2": "int16",
    "i4": "int32",
    "i8": "int64",
    "f2": "float16",
    "f4": "float32",
    "f8": "float64",
    "c8": "complex64",
    "c16": "complex128",
    "bfloat16": "bfloat16",
}
_NUMPY_FOR_TORCH = {
    "int8": "i1",
    "int16": "i2",
    "int32": "i4",
    "int64": "i8",
    "uint8": "u1",
    "float16": "f2",
    "float32": "f4",
    "float64": "f8",
}


class Batches:
    """An iterable of batches (see the module docstring); each ``iter()`` is one pass."""

    def __init__(
        self,
        arr: ArrayView,
        batch_size: int,
        fields: str | list[str] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        to_torch: bool = False,
        torch_dtype: Any = None,
        drop_last: bool = False,
        prefetch: int = 1,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise InvalidArgument(f"batch size must be an integer, got {batch_size!r}")
        if batch_size < 1:
            raise InvalidArgument(f"batch size must be >= 1, got {batch_size}")
        if not arr.meta.shape:
            raise InvalidArgument("a 0-d array has no rows to batch")
        if prefetch < 0:
            raise InvalidArgument("prefetch must be >= 0")
        self.arr = arr
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.torch = to_torch
        self.torch_dtype = torch_dtype
        self.fields = fields
        self.names, self.single = _select(arr, fields)
        for name in self.names:
            dt = arr.meta.dtype if name is None else arr.meta.dtype[name].base
            if to_torch:
                _check_torch(dt, name, _pick(torch_dtype, name))
        if to_torch:
            require("torch", "to_torch")

    def __len__(self) -> int:
        rows = self.arr.meta.shape[0]
        return rows // self.batch_size if self.drop_last else math.ceil(rows / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle differently in the next pass (the order depends on seed and epoch)."""
        self.epoch = int(epoch)

    def to_torch(self, torch_dtype: Any = None) -> Batches:
        """The same batches as torch tensors (zero-copy where the dtype maps)."""
        out = Batches(
            self.arr,
            self.batch_size,
            self.fields,
            self.shuffle,
            self.seed,
            True,
            torch_dtype if torch_dtype is not None else self.torch_dtype,
            self.drop_last,
            self.prefetch,
        )
        out.epoch = self.epoch
        return out

    def _load(self, item: tuple[int, Any]) -> dict[str | None, np.ndarray]:
        index, region = item
        blocks = read_fields(self.arr.handle, region, self.names)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            perm = rng.permutation(region[0].stop - region[0].start)
            blocks = {k: v[perm] for k, v in blocks.items()}
        return blocks

    def __iter__(self) -> Iterator[Any]:
        regions = row_regions(self.arr.meta)
        order = np.arange(len(regions))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(regions))
        items = [(int(i), regions[int(i)]) for i in order]
        loads = (
            read_ahead(self._load, items, self.prefetch)
            if self.prefetch
            else map(self._load, items)
        )
        for batch in _rebatch(loads, self.batch_size, self.drop_last):
            yield self._emit(batch)

    def _emit(self, batch: dict[str | None, np.ndarray]) -> Any:
        if self.torch:
            out = {k: _tensor(v, k, _pick(self.torch_dtype, k)) for k, v in batch.items()}
        else:
            out = dict(batch)
        if self.single:
            return next(iter(out.values()))
        return out

    def __repr__(self) -> str:
        kind = "torch" if self.torch else "numpy"
        return (
            f"<Batches {self.arr.name} batch_size={self.batch_size} batches={len(self)} "
            f"shuffle={self.shuffle} {kind}>"
        )


def _select(arr: ArrayView, fields: str | list[str] | None) -> tuple[list[str | None], bool]:
    """(fields to read, whether a batch is one array rather than a dict)."""
    if arr.field is not None:
        if fields not in (None, arr.field, [arr.field]):
            raise InvalidArgument(f"{arr.name}[{arr.field!r}] is a field view; no other fields")
        return [arr.field], True
    if not arr.meta.fields:
        if fields:
            raise InvalidArgument(f"{arr.name} has a plain dtype: no fields to select")
        return [None], True
    if isinstance(fields, str):
        chosen: list[str] = [fields]
    else:
        chosen = list(fields) if fields else list(arr.meta.fields)
    for f in chosen:
        if f not in arr.meta.fields:
            raise FieldNotFound(f"no field {f!r} (fields: {', '.join(arr.meta.fields)})")
    return list(chosen), isinstance(fields, str)


def _rebatch(
    blocks: Iterator[dict[str | None, np.ndarray]], n: int, drop_last: bool
) -> Iterator[dict[str | None, np.ndarray]]:
    pieces: list[dict[str | None, np.ndarray]] = []
    have = 0
    for blk in blocks:
        rows = len(next(iter(blk.values())))
        off = 0
        if have:
            take = min(n - have, rows)
            pieces.append({k: v[:take] for k, v in blk.items()})
            have += take
            off = take
            if have == n:
                yield _concat(pieces)
                pieces, have = [], 0
        while rows - off >= n:
            yield {k: v[off : off + n] for k, v in blk.items()}
            off += n
        if off < rows:
            pieces.append({k: v[off:] for k, v in blk.items()})
            have += rows - off
    if have and not drop_last:
        yield _concat(pieces)


def _concat(pieces: list[dict[str | None, np.ndarray]]) -> dict[str | None, np.ndarray]:
    if len(pieces) == 1:
        return {k: np.ascontiguousarray(v) for k, v in pieces[0].items()}
    return {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}


# ------------------------------------------------------------------ torch
def _pick(torch_dtype: Any, name: str | None) -> Any:
    if isinstance(torch_dtype, Mapping):
        return torch_dtype.get(name)
    return torch_dtype


def _torch_dtype(torch: Any, want: Any) -> Any:
    if want is None or isinstance(want, torch.dtype):
        return want
    if isinstance(want, str) and isinstance(getattr(torch, want, None), torch.dtype):
        return getattr(torch, want)
    raise DTypeError(f"not a torch dtype: {want!r}")


def _check_torch(dt: np.dtype, name: str | None, want: Any) -> None:
    key = scalar_str(dt)
    what = f"field {name!r}" if name else "the array"
    if dt.kind in "SU":
        raise DTypeError(f"{what} holds strings ({key}); torch has none: select numeric fields")
    if key not in TORCH_DTYPES and dt.kind == "u" and want is None:
        wider = "torch.int32" if dt.itemsize == 2 else "torch.int64"
        raise DTypeError(
            f"{what} is {key}, which torch does not support for computation; pass "
            f"torch_dtype={wider} (converted once per batch, value-checked)"
        )


def _tensor(a: np.ndarray, name: str | None, want: Any = None) -> Any:
    torch = require("torch", "to_torch")
    want = _torch_dtype(torch, want)
    dt = a.dtype
    _check_torch(dt, name, want)
    key = scalar_str(dt)
    if is_bfloat16(dt):
        t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    elif key in TORCH_DTYPES:
        t = torch.from_numpy(a)
    else:  # unsigned 16/32/64 with a requested dtype: convert in numpy, checked
        target = _NUMPY_FOR_TORCH.get(str(want).removeprefix("torch."))
        np_target = np.dtype(target) if target else np.dtype("f8")
        if np_target.kind in "iu" and a.size and int(a.max()) > np.iinfo(np_target).max:
            raise DTypeError(
                f"field {name!r}: value {int(a.max())} does not fit {want} (from {key})"
            )
        t = torch.from_numpy(a.astype(np_target))
    if want is not None and t.dtype != want:
        t = t.to(want)
    return t


def to_torch(batch: Any, torch_dtype: Any = None) -> Any:
    """A numpy batch (array or ``{field: array}``) as tensors sharing its memory (see the
    module table; ``torch_dtype`` converts once)."""
    if isinstance(batch, Mapping):
        return {k: _tensor(np.asarray(v), k, _pick(torch_dtype, k)) for k, v in batch.items()}
    return _tensor(np.asarray(batch), None, _pick(torch_dtype, None))
