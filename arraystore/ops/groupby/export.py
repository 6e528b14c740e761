"""Writing grouped results to Parquet or CSV: a whole
:class:`~arraystore.ops.groupby.GroupedResult`, or part by part (:class:`FileSink`, a
sink of :func:`arraystore.ops.groupby.stream.write_parts`)."""

from __future__ import annotations

import csv
import importlib.util
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from arraystore.errors import InvalidArgument, MissingDependency
from arraystore.ops.groupby.result import GroupedResult
from arraystore.ops.groupby.stream import fixed_dtype, write_parts

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def _cell(v: object) -> object:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def file_format(path: str | os.PathLike[str]) -> str:
    """``parquet`` or ``csv`` from the suffix of ``path`` (else InvalidArgument)."""
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise InvalidArgument(f"cannot tell the format of {p.name}: use .parquet or .csv")
    return fmt


class FileSink:
    """One row per group written to ``path`` part by part, into a temp file beside it
    that replaces ``path`` at :meth:`commit` (a failure leaves no file)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.format = file_format(self.path)
        self.target = str(self.path)
        # pyarrow is imported at the first write, after the groups are reduced: importing
        # it early costs more peak memory while the tables spill (measured: 92 MiB at
        # 50 million rows)
        if self.format == "parquet" and importlib.util.find_spec("pyarrow") is None:
            raise MissingDependency(
                "pyarrow is needed for Parquet output: pip install 'arraystore[arrow]'"
            )
        self.tmp = self.path.with_name(
            f".{self.path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        self.dtype: np.dtype | None = None
        self._writer: Any = None
        self._fh: Any = None

    def _columns(self, rows: np.ndarray) -> list[tuple[str, np.ndarray]]:
        names = list(rows.dtype.names or ())
        wide = [n for n in names if rows.dtype[n].shape]
        if wide:
            raise InvalidArgument(
                f"column {wide[0]!r} holds several values per group; write it with --out "
                "(a stored array) instead"
            )
        return [(n, rows[n]) for n in names]

    def open(self, total: int) -> None:
        """(the number of groups: not needed here)"""

    def write(self, rows: np.ndarray) -> None:
        rows = fixed_dtype(rows, self.dtype)
        if self.dtype is None:
            self.dtype = rows.dtype
        cols = self._columns(rows)
        if self.format == "parquet":
            self._write_parquet(cols)
            return
        if self._fh is None:
            self._fh = open(self.tmp, "w", newline="")  # noqa: SIM115 (closed in close())
            csv.writer(self._fh).writerow([n for n, _ in cols])
        w = csv.writer(self._fh)
        for row in zip(*(v.tolist() for _, v in cols), strict=True):
            w.writerow([_cell(x) for x in row])

    def _write_parquet(self, cols: list[tuple[str, np.ndarray]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # numbers go in zero-copy from contiguous numpy columns (pa.array and pa.table
        # would import pandas: some 45 MiB more peak RSS) and arrow allocates from the
        # system allocator (its default pool keeps what it frees)
        pool = pa.system_memory_pool()
        arrays = []
        for _, v in cols:
            if v.dtype == object:  # exact Python-int sums: as float64
                v = v.astype(np.float64)
            if v.dtype.kind in "iuf":
                v = np.ascontiguousarray(v)
                kind = pa.from_numpy_dtype(v.dtype)
                arrays.append(pa.Array.from_buffers(kind, len(v), [None, pa.py_buffer(v)]))
                continue
            if v.dtype.kind == "S":
                v = np.array([b.decode("utf-8", "replace") for b in v.tolist()])
            arrays.append(pa.array(v, memory_pool=pool))
        table = pa.Table.from_arrays(arrays, names=[n for n, _ in cols])
        if self._writer is None:
            text = [n for n, v in cols if v.dtype.kind in "SU"]  # (numbers: mostly unique)
            self._writer = pq.ParquetWriter(
                self.tmp, table.schema, memory_pool=pool, use_dictionary=text or False
            )
        self._writer.write_table(table)

    def commit(self) -> None:
        if self.dtype is None:  # (every run gives at least one part, maybe empty)
            raise InvalidArgument("no groups to write")
        self._finish()
        os.replace(self.tmp, self.path)

    def _finish(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self) -> None:
        self._finish()
        self.tmp.unlink(missing_ok=True)


def write_result(res: GroupedResult, path: str | os.PathLike[str]) -> str:
    """Write one row per group (the columns of ``res.to_array()``) to ``path``; the
    format from its suffix (``.parquet``/``.pq`` or ``.csv``). Returns the format."""
    sink = FileSink(path)
    sink.open(len(res))
    write_parts(sink, [res.to_array()])
    return sink.format
