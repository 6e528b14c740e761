"""storage.upgrade: rewrite a format-1 array as format 2, in place and crash-safe.

Format 1 (DESIGN.md §3): our metadata in a sidecar ``arraystore.json``; a memmap
array's data in ``data.npy`` (checksums in ``data.crc32c``), its folder a zarr group.
Format 2: the metadata in the node's ``zarr.json`` (``attributes["arraystore"]``); a
memmap array's data file is also a zarr shard at its chunk key (backends/memmap/shard.py).

The switch is one atomic step, the replacement of the array's ``zarr.json`` by one that
carries our metadata (``storage.nodes.array_doc`` prefers it to a sidecar):

* zarr: nothing else changes (chunks and zarr's own metadata are already zarr v3);
* memmap: before the switch, ``c/0/0`` is made a hard link of ``data.npy`` (the same
  file, no copy) and the padding, checksum table and shard index are appended to it;
  a format-1 reader ignores bytes after the data, so the array stays readable as
  format 1 until the switch.

After the switch the format-1 files (sidecar, ``data.npy`` link, ``data.crc32c``) are
removed. A kill at any point leaves the array readable, as format 1 before the switch and
as format 2 after it; running the upgrade again finishes or redoes it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from arraystore.backends import get_backend
from arraystore.backends.memmap import DATA, crc, data_name, shard_layout
from arraystore.backends.memmap.npy import read_header
from arraystore.core.meta import SIDECAR, ArrayMeta, doc_format
from arraystore.errors import MetadataError
from arraystore.fs import fsync_dir
from arraystore.storage.killpoints import kill_point
from arraystore.storage.nodes import array_doc

__all__ = ["upgrade_array"]


def upgrade_array(path: Path, meta: ArrayMeta) -> bool:
    """Upgrade the array in the folder ``path`` (``meta``: its metadata as opened) to
    format 2; True if it was format 1. The caller holds the array's writer lock."""
    doc = array_doc(path)
    if doc is None:
        raise MetadataError(f"array {path.name!r} has no metadata (corrupt or incomplete)")
    if doc_format(doc) >= 2:
        _drop_format_1(path, meta)  # an upgrade killed after its switch
        return False
    new = meta.evolve(format=2)
    if meta.backend == "memmap":
        _prepare_shard(path, meta, new)
        kill_point("upgrade-data")
    get_backend(meta.backend).write_meta(path, new)  # the switch
    kill_point("upgrade-switch")
    _drop_format_1(path, new)
    return True


def _prepare_shard(path: Path, old: ArrayMeta, new: ArrayMeta) -> None:
    """Give ``data.npy`` a second name, the chunk key, and append the shard's tail."""
    src, dst = path / DATA, path / data_name(new)
    offset = read_header(src)[2]
    layout = shard_layout(new, offset)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        dst.unlink()  # left by an interrupted upgrade: made again
    try:
        os.link(src, dst)
    except OSError:  # no hard links here: a copy (the old file stays as it is)
        import shutil

        shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDWR)
    try:
        os.ftruncate(fd, offset + old.nbytes)  # drops what an earlier attempt appended
        os.ftruncate(fd, layout.padded_end)  # zero padding
        if new.checksum:
            table = crc.load(crc.Loc.beside(path), offset, old.nbytes)
            crc.write(crc.Loc(dst, layout.padded_end, alone=False), table)
        index, done = layout.index(), 0
        while done < len(index):
            done += os.pwrite(fd, index[done:], layout.index_offset + done)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(dst.parent)


def _drop_format_1(path: Path, meta: ArrayMeta) -> None:
    """Remove what format 1 left beside a format-2 array (sidecar, data.npy, data.crc32c)."""
    names = [SIDECAR]
    if meta.backend == "memmap":
        names += [DATA, crc.CRC_FILE]
    for name in names:
        p = path / name
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    if isinstance(path, Path):
        fsync_dir(path)
