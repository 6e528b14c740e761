"""A format-2 memmap array's data file: at once a NumPy ``.npy`` file and the single
shard of a Zarr v3 array (``sharding_indexed``, inner codec ``bytes``, index at the end).

File layout (DESIGN.md §3)::

    .npy header        np.load reads it (room is reserved so a grown shape fits)
    data               the C-order records, little-endian
    padding            zeros up to a whole number of inner chunks (= logical row blocks)
    checksum table     optional: backends/memmap/crc.py's table (a checksummed array)
    shard index        per inner chunk (offset u8, nbytes u8) little-endian, then the
                       CRC-32C of those bytes (index codecs ``bytes`` + ``crc32c``)

numpy ignores what follows the data; zarr readers find the index in the last bytes and
read inner chunks by byte range; neither reads the checksum table. The file lives at the
array's chunk key (``c/0/0`` for a 2-d array) beside the array's ``zarr.json``.

dtypes a zarr v3 reader knows without a warning (bool, ints, float16/32/64, complex64/128)
are declared as they are; any other (records, strings, bfloat16, long double) is declared
as ``uint8`` with one more trailing dimension of ``itemsize`` bytes (named ``bytes``): zarr
readers read the raw records (``.view(dtype)`` gives them back), ``np.load`` the dtype.
Everything here is pure arithmetic over the metadata.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from arraystore.backends.memmap import crc

__all__ = ["MISSING", "ShardLayout", "chunk_key", "zarr_doc", "zarr_type"]

#: offset/nbytes of an inner chunk with no bytes (an array with no elements)
MISSING = 2**64 - 1
#: a zarr data type per numpy dtype that every zarr v3 reader knows
_CORE = {
    **{f"<i{n}": f"int{8 * n}" for n in (1, 2, 4, 8)},
    **{f"<u{n}": f"uint{8 * n}" for n in (1, 2, 4, 8)},
    "|i1": "int8",
    "|u1": "uint8",
    "|b1": "bool",
    "<f2": "float16",
    "<f4": "float32",
    "<f8": "float64",
    "<c8": "complex64",
    "<c16": "complex128",
}


def zarr_type(dtype: np.dtype) -> str | None:
    """The zarr v3 data type declaring ``dtype`` as it is, or None (declared as bytes)."""
    if dtype.names is not None or dtype.name == "bfloat16":
        return None
    return _CORE.get(dtype.str)


def chunk_key(ndim: int) -> str:
    """The file of a one-shard array's only chunk: ``c/0/0`` (2-d), ``c`` (0-d)."""
    return "/".join(["c", *["0"] * ndim])


@dataclass(frozen=True)
class ShardLayout:
    """Where everything is in the data file of an array (see the module doc)."""

    shape: tuple[int, ...]
    itemsize: int
    #: rows per inner chunk (the logical chunks' first dimension; 1 for a 0-d array)
    rows: int
    #: the data offset (= the .npy header's length)
    header: int
    checksum: bool

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.itemsize

    @property
    def ninner(self) -> int:
        """Inner chunks of the shard."""
        if not self.shape:
            return 1
        return -(-self.shape[0] // self.rows)

    @property
    def inner_bytes(self) -> int:
        return (self.rows * self.row_bytes) if self.shape else self.itemsize

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.itemsize

    @property
    def padded_end(self) -> int:
        """End of data + padding: where the checksum table (or the index) starts."""
        return self.header + self.ninner * self.inner_bytes

    @property
    def crc_size(self) -> int:
        if not self.checksum:
            return 0
        return crc.HEAD_SIZE + 4 * crc.nblocks(self.data_bytes, crc.BLOCK_SIZE)

    @property
    def index_offset(self) -> int:
        return self.padded_end + self.crc_size

    @property
    def index_size(self) -> int:
        return 16 * self.ninner + 4

    @property
    def file_size(self) -> int:
        return self.index_offset + self.index_size

    def index(self) -> bytes:
        """The encoded shard index (entries + CRC-32C) that ends the file."""
        n, size = self.ninner, self.inner_bytes
        table = np.empty((n, 2), dtype="<u8")
        if size == 0:
            table[:] = MISSING
        else:
            table[:, 0] = self.header + size * np.arange(n, dtype=np.uint64)
            table[:, 1] = size
        body = table.tobytes()
        return body + struct.pack("<I", crc.crc32c(body))


def zarr_doc(
    shape: tuple[int, ...],
    dtype: np.dtype,
    rows: int,
    attributes: dict[str, Any],
    dims: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The ``zarr.json`` of a memmap array: one shard holding every inner chunk."""
    core = zarr_type(dtype)
    extra = () if core is not None else (dtype.itemsize,)
    rest = tuple(max(1, int(s)) for s in shape[1:])
    if shape:
        inner = (rows, *rest, *extra)
        shard = (max(1, -(-shape[0] // rows)) * rows, *rest, *extra)
    else:
        inner = shard = extra
    names = list(dims) if dims else [f"dim_{i}" for i in range(len(shape))]
    names += ["bytes"] if extra else []
    little = {"name": "bytes", "configuration": {"endian": "little"}}
    fill: Any = False if core == "bool" else ([0.0, 0.0] if core and "complex" in core else 0)
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [*shape, *extra],
        "data_type": core or "uint8",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shard)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill,
        "codecs": [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": list(inner),
                    "codecs": [little],
                    "index_codecs": [little, {"name": "crc32c"}],
                    "index_location": "end",
                },
            }
        ],
        "attributes": attributes,
        "dimension_names": names,
        "storage_transformers": [],
    }
