"""storage.foreign: stores arraystore did not write, read in place (no import, no copy).

* **A foreign zarr group** -- a v3 ``zarr.json`` group without our ``attributes
  ["arraystore"]``, or a v2 ``.zgroup`` (zarr-python, xarray, tensorstore): its arrays
  are listed with their zarr paths as names (``group/sub/array``); arrays of ours written
  into it (format 2) are listed too. It opens read-only unless the caller asks for
  writes (``mode="r+"``, CLI ``--writable``), and then only new arrays of ours go into it
  (a v3 group only: a v2 reader would not see a v3 array); a foreign array's chunks are
  never written, removed or renamed. When the group has inline consolidated metadata
  (xarray writes it), a new array's entry is added to it, so xarray sees the new array.
* **At an fsspec URL** (``s3://...``, ``memory://...``) a foreign group is read in place
  too, read-only (listing walks its prefixes; chunks are read by zarr-python).
* **A bare array** (:func:`locate`): a ``.npy`` file or a zarr array folder with no
  group above it is a one-array store rooted at its folder (``only``: its name); opened
  for writes, new arrays of ours go beside it (a cast to a ``.npy`` file uses one).

Names of foreign arrays may hold ``/`` but no empty, ``.`` or ``..`` part and no hidden
part, and must not lead out of the store through a symlink.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from arraystore.backends.base import Handle
from arraystore.backends.memmap import open_npy
from arraystore.backends.zarr.foreign import V2_ARRAY, V2_GROUP, open_foreign
from arraystore.core.dtypes import check_array_name
from arraystore.core.meta import ATTR
from arraystore.errors import (
    ArrayNotFound,
    InvalidArgument,
    InvalidName,
    InvalidStore,
    MetadataError,
)
from arraystore.fs import read_json, write_json
from arraystore.storage.nodes import NODE, is_array

__all__ = ["ForeignRoot", "locate", "node_kind"]

_MAX_DEPTH = 64


def node_kind(path: Path) -> str | None:
    """What the folder ``path`` is: ``"ours"`` (an arraystore array), ``"store"`` (an
    arraystore store), ``"array"`` / ``"group"`` (a foreign zarr v3 or v2 node), or None."""
    if (path / NODE).is_file():
        try:
            doc = read_json(path / NODE, f"{path.name}/{NODE}")
        except MetadataError:
            return "ours" if is_array(path) else None
        if not isinstance(doc, dict):
            return None
        attrs = doc.get("attributes", {})
        if not isinstance(attrs, dict):  # the zarr v3 spec: an object (zarr-python refuses)
            raise MetadataError(f"{path.name}/{NODE}: attributes must be a JSON object")
        ours = ATTR in attrs
        if doc.get("node_type") == "array":
            return "ours" if ours else "array"
        if doc.get("node_type") == "group":
            if ours and isinstance(attrs[ATTR], dict) and "backend" in attrs[ATTR]:
                return "ours"  # a structured array of ours is a zarr group
            return "store" if ours else "group"
        return None
    if is_array(path):
        return "ours"  # format 1
    if (path / V2_ARRAY).is_file():
        return "array"
    if (path / V2_GROUP).is_file():
        return "group"
    return None


def locate(path: Path) -> tuple[Path, str, bool]:
    """``(store root, array name, bare)`` of the path of one array: a ``.npy`` file, a
    zarr array folder (named from the outermost group above it) or an array of a store.
    ``bare``: no group holds it (a one-array store rooted at its folder)."""
    path = Path(os.path.abspath(path))  # (the groups above a relative path count too)
    if path.is_file() and path.suffix == ".npy":
        return path.parent, path.name, True
    kind = node_kind(path) if path.is_dir() else None
    if kind in ("store", "group"):
        raise InvalidArgument(f"{path} is a store: name one of its arrays (STORE NAME)")
    if kind not in ("array", "ours"):
        raise InvalidStore(f"{path} is neither a store, a zarr group or array, nor a .npy file")
    root, parts = path.parent, [path.name]
    while node_kind(root) == "group" and node_kind(root.parent) == "group":
        if len(parts) > _MAX_DEPTH:
            break
        parts.insert(0, root.name)
        root = root.parent
    if node_kind(root) in ("group", "store"):
        return root, "/".join(parts), False
    return path.parent, path.name, True


class ForeignRoot:
    """The arrays of a foreign store at ``path`` (see the module docstring).

    Parameters
    ----------
    path : Path
        The group's folder (or the folder of a bare array).
    zarr_format : int
        3 or 2: the group's zarr format (0 for a bare array's folder).
    only : str, optional
        A bare array: the one name this store has.
    """

    def __init__(self, path: Path, zarr_format: int, only: str | None = None) -> None:
        self.path = path
        self.zarr_format = zarr_format
        self.only = only

    @classmethod
    def probe(cls, path: Path) -> ForeignRoot | None:
        """The foreign group at ``path``, or None if it is none (e.g. a store of ours)."""
        if node_kind(path) != "group":
            return None
        return cls(path, 3 if (path / NODE).is_file() else 2)

    def describe(self) -> str:
        if self.only is not None:
            return f"{self.path / self.only} (a bare array)"
        return f"{self.path} (a zarr v{self.zarr_format} group arraystore did not write)"

    # ------------------------------------------------------------------ names
    def names(self) -> list[str]:
        """Every array, by its path inside the group, sorted."""
        if self.only is not None:
            return [self.only]
        out: list[str] = []
        self._walk(self.path, "", out, 0)
        return sorted(out)

    def _walk(self, folder: Path, prefix: str, out: list[str], depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        for sub in _subfolders(folder):
            kind = node_kind(sub)
            if kind in ("array", "ours"):
                out.append(prefix + sub.name)
            elif kind == "group":
                self._walk(sub, f"{prefix}{sub.name}/", out, depth + 1)

    def array_path(self, name: str) -> Path:
        """The folder (or .npy file) of array ``name``: :class:`InvalidName` if the name
        is not a relative path inside the store or leads out of it through a symlink."""
        if not isinstance(name, str) or not name:
            raise InvalidName(f"array name must be a non-empty string, got {name!r}")
        if self.only is not None:  # (writable: new arrays of ours go beside it)
            return self.path / (name if name == self.only else check_array_name(name))
        parts = name.split("/")
        if (
            name.startswith("/")
            or "\\" in name
            or "\0" in name
            or any(p in ("", ".", "..") or p.startswith(".") for p in parts)
        ):
            raise InvalidName(
                f"array name {name!r} must be a path inside the store (no '..', no leading "
                "'/', no hidden part)"
            )
        path = self.path.joinpath(*parts)
        if not isinstance(path, Path):  # a URL: object stores have no symlinks
            return path
        root = os.path.realpath(self.path)
        if not os.path.realpath(path).startswith(root + os.sep):
            raise InvalidName(f"array name {name!r} leads out of the store (a symlink)")
        return path

    def is_foreign(self, name: str) -> bool:
        """``name`` is an array arraystore did not write (read-only)."""
        path = self.array_path(name)
        if path.is_file():
            return True
        return node_kind(path) == "array"

    def open(self, name: str) -> Handle:
        """A read-only handle on the foreign array ``name``."""
        path = self.array_path(name)
        if isinstance(path, Path) and path.is_file() and path.suffix == ".npy":
            handle = open_npy(path)
            handle.meta = handle.meta.evolve(foreign=True)
            return handle
        if not path.is_dir() or node_kind(path) != "array":
            listed = ", ".join(self.names()[:20]) or "none"
            raise ArrayNotFound(f"no array {name!r} in {self.describe()} (arrays: {listed})")
        return open_foreign(path, name)

    # ------------------------------------------------------------------ consolidated
    def consolidate(self, folder: Path, present: bool) -> None:
        """Add (``present``) or remove the array at ``folder`` in the group's inline
        consolidated metadata, if it has some (xarray reads only that)."""
        if self.only is not None or self.zarr_format != 3 or not isinstance(self.path, Path):
            return
        doc: Any = read_json(self.path / NODE, NODE)
        meta = doc.get("consolidated_metadata") if isinstance(doc, dict) else None
        if not isinstance(meta, dict) or not isinstance(meta.get("metadata"), dict):
            return
        name = folder.name
        entries = {
            k: v for k, v in meta["metadata"].items() if k != name and not k.startswith(f"{name}/")
        }
        if present:
            for root, _dirs, files in os.walk(folder):
                if NODE in files:
                    rel = os.path.relpath(root, self.path).replace(os.sep, "/")
                    entries[rel] = read_json(Path(root) / NODE, f"{rel}/{NODE}")
        write_json(
            self.path / NODE, {**doc, "consolidated_metadata": {**meta, "metadata": entries}}
        )


def _subfolders(folder: Path) -> list[Path]:
    """The folders in ``folder`` (not hidden, no symlinks; a URL: its sub-prefixes)."""
    if not isinstance(folder, Path):  # RemotePath
        return [p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir()]
    return [
        Path(e.path)
        for e in os.scandir(folder)
        if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
    ]
