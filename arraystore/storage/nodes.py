"""storage.nodes: which folders of a store are arrays, and their metadata documents.

An array folder (DESIGN.md §3) is a zarr v3 node whose ``zarr.json`` carries our
metadata in ``attributes["arraystore"]`` (format 2), or a folder with format 1's sidecar
``arraystore.json``. A folder with neither is not an array of ours (a foreign zarr node,
or an array whose metadata was lost).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from arraystore.core.meta import ATTR, SIDECAR, doc_format
from arraystore.errors import MetadataError
from arraystore.fs import read_json

__all__ = ["NODE", "array_doc", "array_format", "is_array", "node_doc", "require_doc"]

#: a zarr v3 node's metadata file
NODE = "zarr.json"


def _exists(path: Path, name: str, dir_fd: int | None) -> bool:
    if dir_fd is None:
        return bool((path / name).exists())
    try:
        os.stat(name, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def node_doc(path: Path, dir_fd: int | None = None) -> dict[str, Any] | None:
    """The parsed ``zarr.json`` of the folder ``path`` (read relative to ``dir_fd``, the
    open folder, when given), or None if it has none. Raises MetadataError when it is not
    a JSON object."""
    if not _exists(path, NODE, dir_fd):
        return None
    label = f"{path.name}/{NODE}"
    doc = read_json(path / NODE, label, **({} if dir_fd is None else {"dir_fd": dir_fd}))
    if not isinstance(doc, dict):
        raise MetadataError(f"{label} must hold a JSON object")
    return doc


def array_doc(path: Path, dir_fd: int | None = None) -> dict[str, Any] | None:
    """Our metadata document of the array folder ``path``: ``attributes["arraystore"]``
    of its zarr.json (format 2) or its sidecar (format 1); None if it has neither."""
    node = node_doc(path, dir_fd)
    attrs = node.get("attributes") if node is not None else None
    if isinstance(attrs, dict) and ATTR in attrs:
        doc = attrs[ATTR]
        if not isinstance(doc, dict):
            raise MetadataError(f"{path.name}/{NODE}: attributes.{ATTR} must be an object")
        return dict(doc)
    if not _exists(path, SIDECAR, dir_fd):
        return None
    label = f"{path.name}/{SIDECAR}"
    doc = read_json(path / SIDECAR, label, **({} if dir_fd is None else {"dir_fd": dir_fd}))
    if not isinstance(doc, dict):
        raise MetadataError(f"{label} must hold a JSON object")
    return doc


def is_array(path: Path) -> bool:
    """The folder ``path`` holds an array of ours (listing: reads one small file; a
    zarr.json that cannot be parsed counts, so that opening it reports the damage)."""
    if _exists(path, SIDECAR, None):
        return True
    try:
        return array_doc(path) is not None
    except MetadataError:
        return _exists(path, NODE, None)


def array_format(path: Path) -> int:
    """The on-disk format of the array folder ``path``: 2, 1, or 0 (no metadata)."""
    doc = array_doc(path)
    return 0 if doc is None else doc_format(doc)


def require_doc(path: Path, name: str, dir_fd: int | None) -> dict[str, Any]:
    """:func:`array_doc` of the folder of array ``name``: MetadataError if the folder
    holds no metadata of ours (lost, or a build never committed)."""
    doc = array_doc(path, dir_fd)
    if doc is None:
        raise MetadataError(f"array {name!r} has no metadata (corrupt or incomplete)")
    return doc
