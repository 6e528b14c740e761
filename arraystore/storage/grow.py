"""storage.grow: change an array's shape in place (append, resize), atomically.

A resize is journaled: before any byte of the array changes, ``.NAME.grow`` (JSON, written
atomically in the store root) records the old and new shape and what is needed to undo
or finish the change. Whatever a kill leaves, the next writer of NAME (``settle_held``)
or ``verify`` settles it deterministically with :func:`recover`: rolled back to the old
shape if the commit point was not reached, else rolled forward; then the journal goes.
An error during the writes (a lossy value in a later block, a full disk) rolls back too.

memmap (the data file is header, data, padding, checksum table, shard index; only the
first dimension changes). The commit point is the in-place rewrite of the .npy header's
shape (numpy reserves room in the header, so its length never changes): ``np.load`` and
arraystore read the shape from it. Growing:

1. journal: old file size and old checksum table (the index follows from the header)
                                                                     (kill ``grow-journal``)
2. the file is cut at the end of the old data and extended to its new size: the new rows,
   padding, table and index start as zeros (the old table is gone: the journal has it)
                                                                     (kill ``grow-extend``)
3. the new rows are written (``pwrite``)                (kill ``grow-data``, per block)
4. new checksum table (the old one's whole blocks kept, the rest computed from the file;
   with the new header's CRC) and shard index past the new padding, fsync
                                                                     (kill ``grow-tail``)
5. the header's shape, in place, fsync: THE COMMIT                   (kill ``grow-header``)
6. ``zarr.json`` (new shape for zarr readers, history entry)        (kill ``grow-meta``)
7. the journal is removed.

Shrinking commits first (nothing is lost before the header says so): journal (old table and
the complete new table) → header (``grow-header``) → truncate and write the new tail
(``grow-tail``) → ``zarr.json`` (``grow-meta``) → journal removed.

Recovery: the header holds the old shape → the file is cut back to the old data, extended
to the old size and the old table and index written back; the new shape → the new table
and index (if the journal has the table: a shrink) and the new ``zarr.json`` are written.
Until then readers see a consistent array: the header decides (``open`` tolerates a
longer file and a zarr.json whose shape lags while the journal is there), data below the
old edge is never touched by a grow, and a handle opened before keeps reading the old
shape (after a shrink: the rows still there). A zarr reader opening the file between
steps 2 and 6 finds no valid shard index (it errors; it never reads wrong values: the
index has a CRC). A structured zarr array killed between its fields' documents
(``grow-field``) or before its group's is opened with the journal's old shape (the new
one once the group's document is the new one): the fields' documents may disagree.
Region writes (``arr[...] = x``), every writer of NAME and ``verify`` settle first.

zarr: chunk files of the new region are written first (each atomically, an edge chunk
rewritten with its old values kept), then the ``zarr.json`` of each field (structured
arrays), then the node's ``zarr.json`` with the new shape and history entry: THE COMMIT
(kill ``grow-data`` per appended block, ``grow-chunk`` per chunk a resize fills,
``grow-field`` per field document, ``grow-meta``);
a shrink then deletes the chunk files beyond the new edge (``grow-drop``). Recovery: the
node document on disk equals the journal's new one → the new documents are written and
chunks beyond the new grid deleted; else the old documents are written back and chunks
beyond the old grid deleted.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from arraystore.backends.base import Handle
from arraystore.backends.memmap import MemmapBackend, MemmapHandle, crc, data_name, shard_layout
from arraystore.backends.memmap.npy import read_header, write_header
from arraystore.backends.memmap.shard import ShardLayout
from arraystore.backends.zarr import ZarrHandle
from arraystore.backends.zarr.chunks import ChunkIO
from arraystore.backends.zarr.codecs import quiet
from arraystore.core.chunks import grid_shape
from arraystore.core.dtypes import fields_of
from arraystore.core.meta import ATTR, ArrayMeta
from arraystore.errors import CorruptData, InvalidArgument
from arraystore.fs import fsync_dir, read_json, write_json
from arraystore.storage.killpoints import kill_point

__all__ = ["GROW", "Resize", "in_place", "journal_path", "recover", "settle_resize"]

#: the journal of an interrupted resize in the store root
GROW = re.compile(r"^\.(?P<name>.+)\.grow$")


def journal_path(root: Path, name: str) -> Path:
    """The journal of an interrupted resize of ``name``."""
    return root / f".{name}.grow"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)


def _pread(fd: int, size: int, offset: int) -> bytes:
    out = os.pread(fd, size, offset)
    if len(out) != size:
        raise CorruptData("unexpected end of the data file (truncated?)")
    return out


def _header_bytes(meta: ArrayMeta, offset: int) -> bytes:
    buf = io.BytesIO()
    if write_header(buf, meta.dtype, meta.shape) != offset:
        raise InvalidArgument(f"shape {meta.shape} does not fit the .npy header")
    return buf.getvalue()


def in_place(old: Handle, shape: tuple[int, ...]) -> bool:
    """``old`` can take ``shape`` in place: zarr, or memmap along axis 0 with a header
    that has room for the new shape (numpy leaves room; a file from elsewhere may not)."""
    if not isinstance(old, MemmapHandle):
        return True
    if shape[1:] != old.meta.shape[1:]:
        return False
    buf = io.BytesIO()
    return write_header(buf, old.meta.dtype, shape) == old.offset


def _with_history(doc: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    attrs = dict(doc.get("attributes") or {})
    ours = dict(attrs[ATTR])
    ours["history"] = [*ours.get("history", []), entry]
    attrs[ATTR] = ours
    return {**doc, "attributes": attrs}


class Resize:
    """One journaled shape change of the array ``name`` (its lock held, format 2).

    ``handle`` (writable, opened with the new shape) receives the new data through
    ``write``; ``commit()`` makes the new shape visible; ``abort()`` (or an exception
    in a ``with`` block) restores the old one.
    """

    def __init__(
        self, root: Path, name: str, old: Handle, shape: tuple[int, ...], entry: dict[str, Any]
    ) -> None:
        self.root, self.name, self.path = root, name, old.path
        self.journal = journal_path(root, name)
        self.old = old.meta
        self.new = old.meta.evolve(shape=tuple(int(s) for s in shape))
        self.entry = entry
        self.doc: dict[str, Any] = {"name": name, "backend": self.old.backend}
        self.doc |= {"old_shape": list(self.old.shape), "new_shape": list(self.new.shape)}
        self.handle: Handle
        self.fd: int | None = None  # (memmap: the data file)
        try:
            if self.old.backend == "memmap":
                self._begin_memmap(old)
            else:
                self._begin_zarr()
        except BaseException:
            self._close()
            recover(root, name)  # (a journal written: the file back as it was)
            raise

    # ----------------------------------------------------------------- protocol
    def __enter__(self) -> Resize:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is not None:
            with contextlib.suppress(Exception):
                self.handle.close()
            self._close()
            recover(self.root, self.name)  # the commit point was not reached: old shape

    def _close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def write_journal(self) -> None:
        write_json(self.journal, self.doc)
        fsync_dir(self.root)
        kill_point("grow-journal")

    def commit(self) -> None:
        self.handle.flush()
        if self.old.backend == "memmap":
            self._commit_memmap()
        else:
            self._commit_zarr()
        self.journal.unlink()
        fsync_dir(self.root)

    # ------------------------------------------------------------------- memmap
    def _begin_memmap(self, old: Handle) -> None:
        assert isinstance(old, MemmapHandle) and old.shard is not None
        if self.new.shape[1:] != self.old.shape[1:]:  # (ops.grow rewrites those)
            raise InvalidArgument("a memmap array changes in place along axis 0 only")
        self.file = old.file
        self.l0, offset = old.shard, old.offset
        self.l1 = shard_layout(self.new, offset)
        self.header = _header_bytes(self.new, offset)
        fd = os.open(self.file, os.O_RDWR)
        self.fd = fd
        table0 = _pread(fd, self.l0.crc_size, self.l0.padded_end)
        self.doc |= {"old_size": self.l0.file_size, "old_table": _b64(table0)}
        self.doc["node"] = _with_history(MemmapBackend.node_doc(self.new), self.entry)
        self.grows = self.new.shape[0] > self.old.shape[0]
        if not self.grows:  # the new table is known now: it is written after the commit
            self.doc["new_table"] = _b64(self._new_table(_table(table0, self.l0)))
        self.write_journal()
        if self.grows:
            os.ftruncate(fd, self.l0.header + self.l0.data_bytes)
            os.ftruncate(fd, self.l1.file_size)
            kill_point("grow-extend")
        handle = MemmapHandle(self.path, self.new, offset, writable=True, committed=True)
        handle._fd = os.dup(fd)
        self.handle = handle

    def _new_table(self, old_table: crc.Table | None) -> bytes:
        """The checksum table of the new layout (b"": none): the old table's whole
        blocks below the old and new data ends are kept, the rest computed from the
        file, the header's CRC is the new header's."""
        table = b""
        if self.new.checksum:
            assert old_table is not None
            bs = old_table.block_size
            nbytes = self.l1.data_bytes
            keep = min(self.l0.data_bytes, nbytes) // bs
            crcs = old_table.crcs[: crc.nblocks(nbytes, bs)].copy()
            crcs.resize(crc.nblocks(nbytes, bs), refcheck=False)
            first = keep
            n = crc.nblocks(nbytes, bs)
            fd = self.fd
            assert fd is not None
            for i, c in crc.block_crcs(fd, self.file, self.l1.header, nbytes, bs, first, n):
                crcs[i] = c
            head_crc = crc.crc32c(self.header)
            table = crc.Table(bs, self.l1.header, nbytes, head_crc, crcs).encode()
        return table

    def _commit_memmap(self) -> None:
        fd = self.fd
        assert fd is not None
        try:
            self.handle.close()
            if self.grows:
                table = self._new_table(_table(_unb64(self.doc["old_table"]), self.l0))
                _pwrite(fd, table + self.l1.index(), self.l1.padded_end)
                os.fsync(fd)
                kill_point("grow-tail")
            _pwrite(fd, self.header, 0)
            os.fsync(fd)
            kill_point("grow-header")
            if not self.grows:
                _restore_tail(fd, self.l1, _unb64(self.doc["new_table"]))
                kill_point("grow-tail")
        finally:
            self._close()
        write_json(self.path / "zarr.json", self.doc["node"])
        kill_point("grow-meta")

    # --------------------------------------------------------------------- zarr
    def _begin_zarr(self) -> None:
        if not isinstance(self.path, Path):
            raise InvalidArgument("append/resize need a local store (zarr on an object store)")
        docs: dict[str, Any] = {}
        new_docs: dict[str, Any] = {}
        sub = {f.name: f.subshape for f in fields_of(self.new.dtype)}
        rels = [f"{f}/zarr.json" for f in sub] + ["zarr.json"]
        for rel in rels:
            doc = read_json(self.path / rel, f"{self.name}/{rel}")
            assert isinstance(doc, dict)
            docs[rel] = doc
            if doc.get("node_type") == "array":
                field = rel.split("/")[0] if "/" in rel else None
                trail = sub[field] if field else ()
                doc = {**doc, "shape": [*self.new.shape, *trail]}
            new_docs[rel] = doc
        new_docs["zarr.json"] = _with_history(new_docs["zarr.json"], self.entry)
        self.doc |= {"docs": docs, "new_docs": new_docs, "fields": list(sub)}
        # (not committed: a chunk beyond the old grid that a first block covers in part
        # is missing, i.e. fill, until then)
        handle = ZarrHandle(self.path, self.new, writable=True, committed=False)
        for field in sub or [None]:
            rel = "zarr.json" if field is None else f"{field}/zarr.json"
            where = self.path if field is None else self.path / field
            cio = ChunkIO.from_metadata(new_docs[rel], where, write_empty_chunks=True)
            handle._cio[field] = cio
            if cio is None:  # zarr-python's path, over the new metadata (not yet written)
                handle._arrays[field] = _zarr_array(new_docs[rel], where)
        self.handle = handle
        self.write_journal()

    def _commit_zarr(self) -> None:
        new_docs = self.doc["new_docs"]
        for rel in new_docs:
            if rel != "zarr.json":
                write_json(self.path / rel, new_docs[rel])
                kill_point("grow-field")
        write_json(self.path / "zarr.json", new_docs["zarr.json"])
        kill_point("grow-meta")
        _drop_chunks(self.path, self.doc, self.new.shape, self.new.chunks)


def _zarr_array(doc: dict[str, Any], where: Path) -> Any:
    """A zarr-python array at ``where`` described by ``doc`` (not its zarr.json)."""
    from zarr.core.array import Array, AsyncArray
    from zarr.core.metadata import ArrayV3Metadata
    from zarr.storage import LocalStore, StorePath

    with quiet():
        meta = ArrayV3Metadata.from_dict(doc)
        arr = Array(AsyncArray(meta, StorePath(LocalStore(where))))
        return arr.with_config({"write_empty_chunks": True})


def _table(tail: bytes, layout: ShardLayout) -> crc.Table | None:
    """A parsed checksum table (None: not checksummed)."""
    if not layout.checksum:
        return None
    head = crc.HEAD_SIZE
    bs, off, nb, hcrc = (int.from_bytes(tail[a:b], "little") for a, b in _TABLE_FIELDS)
    n = crc.nblocks(nb, bs)
    crcs = np.frombuffer(tail[head : head + 4 * n], dtype="<u4").astype(np.uint32)
    return crc.Table(bs, off, nb, hcrc, crcs)


#: byte ranges of block_size, offset, nbytes, header_crc in a table's head (crc._HEAD)
_TABLE_FIELDS = ((16, 24), (24, 32), (32, 40), (40, 44))


def _restore_tail(fd: int, layout: ShardLayout, table: bytes) -> None:
    """Cut the file at the end of ``layout``'s data, extend it (zeros: the padding) and
    write the checksum ``table`` (b"": none) and the shard index after the padding."""
    os.ftruncate(fd, layout.header + layout.data_bytes)
    os.ftruncate(fd, layout.file_size)
    _pwrite(fd, table + layout.index(), layout.padded_end)
    os.fsync(fd)


def _drop_chunks(
    path: Path, doc: dict[str, Any], shape: tuple[int, ...], chunks: tuple[int, ...]
) -> None:
    """Delete the chunk files of every field beyond the grid of ``shape``."""
    grid = grid_shape(shape, chunks)
    for field in doc.get("fields") or [None]:
        top = (path if field is None else path / field) / "c"
        if not top.is_dir():
            continue
        for leaf in list(_chunk_files(top)):
            idx = leaf.relative_to(top).parts[: len(grid)]
            try:
                beyond = any(int(i) >= g for i, g in zip(idx, grid, strict=True))
            except ValueError:
                continue
            if beyond:
                leaf.unlink()
                kill_point("grow-drop")


def _chunk_files(top: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(top):
        for f in files:
            yield Path(dirpath) / f


def settle_resize(root: Path, name: str, lock: Callable[[str], Any] | None = None) -> None:
    """Settle an interrupted resize of ``name`` if there is one (taking ``lock(name)``
    when given, else the caller holds it)."""
    if journal_path(root, name).is_file():
        with lock(name) if lock is not None else contextlib.nullcontext():
            recover(root, name)


def recover(root: Path, name: str) -> str | None:
    """Settle an interrupted resize of ``name`` (its lock held): roll back or forward
    (see the module doc). Returns what was done, or None (no journal)."""
    journal = journal_path(root, name)
    if not journal.is_file():
        return None
    doc = read_json(journal, journal.name)
    if not isinstance(doc, dict):
        raise CorruptData(f"{journal.name} is not a resize journal")
    path = root / name
    old, new = tuple(doc["old_shape"]), tuple(doc["new_shape"])
    if doc["backend"] == "memmap":
        done = _recover_memmap(path, doc, old, new)
    else:
        node = read_json(path / "zarr.json", f"{name}/zarr.json")
        committed = node == doc["new_docs"]["zarr.json"]
        docs = doc["new_docs"] if committed else doc["docs"]
        for rel, d in docs.items():
            if read_json(path / rel, f"{name}/{rel}") != d:
                write_json(path / rel, d)
        first = f"{doc['fields'][0]}/zarr.json" if doc["fields"] else "zarr.json"
        grid = doc["docs"][first]["chunk_grid"]["configuration"]["chunk_shape"]
        _drop_chunks(path, doc, new if committed else old, tuple(grid[: len(old)]))
        done = "finished" if committed else "rolled back"
    journal.unlink()
    fsync_dir(root)
    return f"an interrupted resize of {name!r} from {old} to {new} was {done}"


def _recover_memmap(path: Path, doc: dict[str, Any], old: tuple, new: tuple) -> str:
    node = doc["node"]
    meta = ArrayMeta.from_doc(node["attributes"][ATTR], shape=new)
    file = path / data_name(meta)
    shape, _dtype, offset = read_header(file)
    fd = os.open(file, os.O_RDWR)
    try:
        if shape == new:
            if "new_table" in doc:
                _restore_tail(fd, shard_layout(meta, offset), _unb64(doc["new_table"]))
            done = "finished"
        elif shape == old:
            l0 = shard_layout(meta.evolve(shape=old), offset)
            _restore_tail(fd, l0, _unb64(doc["old_table"]))
            done = "rolled back"
        else:
            raise CorruptData(f"{file}: shape {shape} is neither {old} nor {new}")
    finally:
        os.close(fd)
    if shape == new:
        write_json(path / "zarr.json", node)
    return done
