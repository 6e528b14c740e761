"""Regenerate the golden store ``tests/fixtures/golden.store`` (acceptance 7).

    .venv/bin/python tests/make_fixtures.py [--out PATH]

The store is committed: ``tests/storage/test_fixtures.py`` opens it read-only and checks every
value against numpy, so a later change of the on-disk format cannot silently break
stores written by this version. Only regenerate it for a deliberate format change (and
then keep the old one too, e.g. as ``golden-v1.store``). Every array uses
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


def make(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    store = arraystore.open(out, mode="a")
    for name, kwargs in ARRAYS.items():
        store.create(name, fill="range", attrs={"golden": name}, executor="serial", **kwargs)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total} bytes): {', '.join(store.names())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "fixtures" / "golden.store")
    make(parser.parse_args().out)


if __name__ == "__main__":
    main()
