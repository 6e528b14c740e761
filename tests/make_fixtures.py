"""Regenerate the format-2 golden store ``tests/fixtures/golden2.store``.

    .venv/bin/python tests/make_fixtures.py [--out PATH]

The stores are committed: ``tests/storage/test_fixtures.py`` (format 1,
``golden.store``, written by the version before format 2 with this script's ``ARRAYS``
and frozen since) and ``tests/storage/test_fixtures2.py`` (format 2) open them read-only
and check every value against numpy, so a later change of the on-disk format cannot
silently break stores written by earlier versions. Only regenerate for a deliberate
format change, and keep the old stores. Every array uses
``fill="range"``: element ``i`` (C order) holds ``i``; in structured arrays every field
holds the record's index, repeated over subarray dims.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import arraystore  # noqa: E402

#: name -> create() arguments; test_fixtures.py holds its own copy of the expectations
ARRAYS: dict[str, dict] = {
    "mm_plain": dict(shape=(5, 3), dtype="f8", chunks=(2, 3), backend="memmap"),
    "mm_struct": dict(shape=(6,), dtype="id:i8,price:f8,vec:3f4", chunks=(4,), backend="memmap"),
    "zarr_plain": dict(shape=(6, 4), dtype="i4", chunks=(4, 3), backend="zarr", codec="zstd:3"),
    "zarr_struct": dict(
        shape=(5,),
        dtype="id:i8,price:f4,vec:3f4,m:(2,3)u2",
        chunks=(2,),
        backend="zarr",
        codec="blosc-lz4",
    ),
}
#: format 2 adds checksummed memmap (a table inside the shard file), records and strings
#: declared to zarr as raw bytes, the spec's blosc for `lz4`, sharded zarr arrays
ARRAYS_2: dict[str, dict] = {
    **ARRAYS,
    "mm_crc": dict(shape=(7, 2), dtype="i2", chunks=(3, 2), backend="memmap", checksum=True),
    "mm_str": dict(shape=(4,), dtype="S3", chunks=(3,), backend="memmap"),
    "zarr_lz4": dict(shape=(9,), dtype="u2", chunks=(4,), backend="zarr", codec="lz4"),
    "zarr_sharded": dict(
        shape=(10, 3), dtype="f4", chunks=(2, 3), shards=(4, 3), backend="zarr", codec="zstd:3"
    ),
    "zarr_struct_sharded": dict(
        shape=(7,), dtype="id:i8,vec:2f4", chunks=(2,), shards=(4,), backend="zarr", codec="gzip:5"
    ),
}


def make(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    store = arraystore.open(out, mode="a")
    for name, kwargs in ARRAYS_2.items():
        store.create(name, fill="range", attrs={"golden": name}, executor="serial", **kwargs)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total} bytes): {', '.join(store.names())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "fixtures" / "golden2.store")
    make(parser.parse_args().out)


if __name__ == "__main__":
    main()
