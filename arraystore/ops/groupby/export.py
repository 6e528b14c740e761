"""Writing a :class:`~arraystore.ops.groupby.GroupedResult` to Parquet or CSV."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from arraystore.errors import InvalidArgument, MissingDependency
from arraystore.ops.groupby.result import GroupedResult

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def _cell(v: object) -> object:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def write_result(res: GroupedResult, path: str | os.PathLike[str]) -> str:
    """Write one row per group (the columns of ``res.to_array()``) to ``path``; the
    format from its suffix (``.parquet``/``.pq`` or ``.csv``). Returns the format."""
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise InvalidArgument(f"cannot tell the format of {p.name}: use .parquet or .csv")
    cols = res.columns()
    wide = [n for n, v in cols if v.ndim > 1]
    if wide:
        raise InvalidArgument(
            f"column {wide[0]!r} holds several values per group; write it with --out "
            "(a stored array) instead"
        )
    if fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise MissingDependency(
                "pyarrow is needed for Parquet output: pip install 'arraystore[arrow]'"
            ) from exc

        arrays = []
        for _, v in cols:
            data: np.ndarray = v.astype(np.float64) if v.dtype == object else v
            if data.dtype.kind == "S":
                data = np.array([b.decode("utf-8", "replace") for b in data.tolist()])
            arrays.append(pa.array(data))
        pq.write_table(pa.table(arrays, names=[n for n, _ in cols]), p)
        return fmt
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([n for n, _ in cols])
        for row in zip(*(v.tolist() for _, v in cols), strict=True):
            w.writerow([_cell(x) for x in row])
    return fmt
