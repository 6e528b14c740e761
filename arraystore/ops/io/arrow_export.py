"""Export a stored array as a Parquet / Arrow IPC / CSV table (see :mod:`.io_arrow`).

One record batch per row block (a Parquet row group per chunk row), read with
read-ahead; ``<col>__valid`` masks turn back into nulls, and the names and Arrow types
recorded at import are restored. The schema metadata key ``arraystore`` records the
logical dtype and shape for an exact re-import.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.core.dtypes import dtype_to_json, fields_of, is_bfloat16, scalar_str
from arraystore.errors import InvalidArgument
from arraystore.ops.io.arrow_convert import MASK_SUFFIX, META_KEY
from arraystore.ops.io.common import read_ahead, read_fields, require, row_regions

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    pa = require("pyarrow", "CSV/Parquet/Arrow files")
    pc = require("pyarrow.compute", "CSV/Parquet/Arrow files")

if TYPE_CHECKING:
    from arraystore.storage import ArrayView


# ------------------------------------------------------------------ export
@dataclass
class _Out:
    field: str | None  # None: a plain array
    column: str
    dtype: np.dtype
    dims: tuple[int, ...]
    mask: str | None
    restore: pa.DataType | None
    nan_null: bool


def _out_columns(arr: ArrayView, nan_as_null: bool | None, masks: bool) -> list[_Out]:
    meta = arr.meta
    info = meta.attrs.get("import") if isinstance(meta.attrs.get("import"), dict) else None
    by_field: dict[str, dict[str, Any]] = {}
    schema = None
    if info:
        for c in info.get("columns", []) or []:
            if isinstance(c, dict) and "field" in c:
                by_field[str(c["field"])] = c
        with contextlib.suppress(Exception):
            schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(info["arrow_schema"])))
    tail = meta.shape[1:]
    if arr.field is not None or meta.dtype.names is None:
        dims = tuple(arr.shape[1:])
        label = arr.field or arr.name
        return [_Out(arr.field, label, arr.dtype, dims, None, None, bool(nan_as_null))]
    fields = fields_of(meta.dtype)
    names = {f.name for f in fields}
    out = []
    mask_fields = set()
    if masks:
        for f in fields:
            owner = f.name[: -len(MASK_SUFFIX)]
            if f.name.endswith(MASK_SUFFIX) and owner in names and f.dtype.kind == "b":
                mask_fields.add(f.name)
    for f in fields:
        if f.name in mask_fields:
            continue
        rec = by_field.get(f.name, {})
        column = str(rec.get("column", f.name))
        restore = None
        if schema is not None and rec.get("dtype") == scalar_str(f.dtype):
            with contextlib.suppress(Exception):
                restore = schema.field(column).type
        nn = bool(rec.get("nulls")) if nan_as_null is None else nan_as_null
        mask = f"{f.name}{MASK_SUFFIX}" if f"{f.name}{MASK_SUFFIX}" in mask_fields else None
        out.append(_Out(f.name, column, f.dtype, tail + f.subshape, mask, restore, nn))
    return out


def to_arrow(values: np.ndarray, valid: np.ndarray | None, o: _Out) -> pa.Array:
    """(n, *dims) numpy values of one field -> an Arrow column (nulls where not valid)."""
    n = len(values)
    dt = o.dtype
    if is_bfloat16(dt):
        values = values.astype(np.float32)
    if o.nan_null and values.dtype.kind == "f" and not o.dims:
        isnan = np.isnan(values)
        if isnan.any():
            valid = ~isnan if valid is None else valid & ~isnan
    flat = values.reshape(-1)
    if dt.kind == "c":
        flat = flat.view(np.dtype(f"<f{dt.itemsize // 2}"))
    if dt.kind == "U":
        leaf = pa.array(flat, type=pa.string())
    elif dt.kind == "S":
        leaf = pa.array(flat, type=pa.binary())
    elif not o.dims and dt.kind != "c":
        leaf = pa.array(flat, mask=None if valid is None else ~valid)
        return _restore(leaf, o)
    else:
        leaf = pa.array(flat)
    sizes = list(o.dims) + ([2] if dt.kind == "c" else [])
    if not sizes:
        if valid is not None:
            leaf = pc.if_else(pa.array(valid), leaf, pa.nulls(n, leaf.type))
        return _restore(leaf, o)
    for k in reversed(sizes[1:]):
        leaf = pa.FixedSizeListArray.from_arrays(leaf, k)
    mask = None if valid is None else pa.array(~valid)
    return _restore(pa.FixedSizeListArray.from_arrays(leaf, sizes[0], mask=mask), o)


def _restore(col: pa.Array, o: _Out) -> pa.Array:
    if o.restore is None or col.type == o.restore:
        return col
    try:
        return col.cast(o.restore)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return col


def _csv_columns(o: _Out, col: pa.Array) -> list[tuple[str, pa.Array]]:
    """CSV has no lists: a subarray field becomes one column per element (``vec_0``...)."""
    if not pa.types.is_fixed_size_list(col.type):
        return [(o.column, col)]
    if o.dtype.kind == "c":
        raise InvalidArgument(f"field {o.column!r} is complex: CSV has no complex numbers")
    size = math.prod(o.dims)
    leaf = col
    while pa.types.is_fixed_size_list(leaf.type):
        k = leaf.type.list_size
        leaf = leaf.values.slice(leaf.offset * k, len(leaf) * k)
    idx = np.arange(len(col))[:, None] * size + np.arange(size)[None, :]
    valid = None if col.null_count == 0 else col.is_valid()
    out = []
    for j, pos in enumerate(np.ndindex(*o.dims)):
        part = leaf.take(pa.array(idx[:, j]))
        if valid is not None:
            part = pc.if_else(valid, part, pa.nulls(len(part), part.type))
        out.append((f"{o.column}_{'_'.join(map(str, pos))}", part))
    return out


def export_table(
    arr: ArrayView,
    tmp: Path,
    fmt: str,
    *,
    progress: Callable[[Any, Any], None] | None = None,
    compression: str = "snappy",
    delimiter: str = ",",
    nan_as_null: bool | None = None,
    masks: bool = True,
    stream: str | None = None,
) -> None:
    """Write ``arr`` as a Parquet / Arrow IPC / CSV file at ``tmp`` (see the module doc)."""
    if not arr.meta.shape:
        raise InvalidArgument("a 0-d array has no rows to export as a table")
    outs = _out_columns(arr, nan_as_null, masks)
    names = list(dict.fromkeys([o.field for o in outs] + [o.mask for o in outs if o.mask]))
    regions = row_regions(arr.meta)
    plain = arr.field is not None or arr.meta.dtype.names is None
    meta_doc = {
        "version": 1,
        "name": arr.name,
        "dtype": dtype_to_json(arr.dtype if plain else arr.meta.dtype),
        "tail": list(arr.shape[1:] if plain else arr.meta.shape[1:]),
        "columns": {o.column: ("" if plain else o.field) for o in outs},
        "masks": {o.column: o.mask for o in outs if o.mask},
    }

    def read(region: Any) -> dict[str | None, np.ndarray]:
        if arr.field is not None:
            return {arr.field: arr.handle.read(region, arr.field)}
        return read_fields(arr.handle, region, names)

    writer: Any = None
    try:
        for region, block in zip(regions, read_ahead(read, regions), strict=True):
            columns: list[tuple[str, pa.Array]] = []
            for o in outs:
                valid = block[o.mask] if o.mask else None
                col = to_arrow(block[o.field], valid, o)
                columns.extend(_csv_columns(o, col) if fmt == "csv" else [(o.column, col)])
            batch = pa.RecordBatch.from_arrays([c for _, c in columns], [n for n, _ in columns])
            if writer is None:
                writer = _writer(tmp, fmt, batch.schema, meta_doc, compression, delimiter, stream)
            if fmt == "parquet":
                writer.write_batch(batch, row_group_size=batch.num_rows)
            else:
                writer.write_batch(batch)
            if progress is not None:
                progress(None, region_bytes(arr, region))
        if writer is None:  # no rows: still write a valid, empty file with the schema
            empty = {o.field: np.empty((0, *o.dims), o.dtype) for o in outs}
            columns = []
            for o in outs:
                col = to_arrow(empty[o.field], None, o)
                columns.extend(_csv_columns(o, col) if fmt == "csv" else [(o.column, col)])
            schema = pa.schema([(n, c.type) for n, c in columns])
            writer = _writer(tmp, fmt, schema, meta_doc, compression, delimiter, stream)
    finally:
        if writer is not None:
            writer.close()


def region_bytes(arr: ArrayView, region: Any) -> int:
    return math.prod(s.stop - s.start for s in region) * arr.dtype.itemsize


def _writer(
    tmp: Path,
    fmt: str,
    schema: pa.Schema,
    doc: dict[str, Any],
    compression: str,
    delimiter: str,
    stream: str | None,
) -> Any:
    if fmt == "csv":
        import pyarrow.csv as pcsv

        sink: Any = str(tmp)
        if stream is not None:
            sink = pa.CompressedOutputStream(str(tmp), stream)
        opts = pcsv.WriteOptions(delimiter=delimiter)
        return _Closing(pcsv.CSVWriter(sink, schema, write_options=opts), sink)
    schema = schema.with_metadata({META_KEY: json.dumps(doc).encode()})
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(str(tmp), schema, compression=compression)
    return pa.ipc.new_file(str(tmp), schema)


class _Closing:
    """A CSV writer that also closes its (compressed) output stream."""

    def __init__(self, writer: Any, sink: Any) -> None:
        self.writer, self.sink = writer, sink

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch)

    def close(self) -> None:
        self.writer.close()
        if not isinstance(self.sink, str):
            self.sink.close()
