"""Spilling group tables to disk when the groups outgrow the memory budget.

When the merged table passes 1/8 of the budget, the :class:`Spiller` takes over: it cuts
that table into ``P`` partitions by **key range** and writes each to a spill file, then
does the same with every later task's table as it arrives (in row order). The ``P - 1``
boundaries are quantiles of the distinct keys of a sample of row blocks spread over the
whole array (``sampler``, set by the engine), so the partitions hold about as many groups
each and come out in key order: each partition's finished groups follow the previous
one's, and a result can be written out partition by partition (:mod:`.stream`).
Afterwards each partition is read back and its pieces merged in the order they were
written -- the same order in which every group's states would have been merged in
memory, so the results are the same bits as without spilling -- and finalised on its own.

A partition that outgrows 1/:data:`PART_LIMIT` of the budget while it is merged (a skewed
sample) is cut again by the quantiles of its own keys into smaller range partitions
(read twice: keys, then pieces), recursively; one group alone that does not fit raises
``MemoryBudgetError``.

Spill files live in the store's temp area (a hidden ``.NAME.tmp-PID-HEX`` folder, which
``verify`` and later writes recognise as a leftover) when the store is local and
writable, else in the system's temp directory; :meth:`Spiller.close` removes them, on
success and on failure. ``P`` is chosen when spilling starts from the table's size and
the share of rows read so far, so that one partition's table should take a sixteenth
of the budget.
"""

from __future__ import annotations

import math
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from arraystore.engine.memory import format_size
from arraystore.errors import MemoryBudgetError
from arraystore.ops.groupby import kernels
from arraystore.ops.groupby.kernels import Table

MAX_PARTITIONS = 4096
#: a partition's table should take 1/PART_TARGET of the budget ...
PART_TARGET = 16
#: ... and is cut again past 1/PART_LIMIT (its merge temporaries and result need the rest)
PART_LIMIT = 8
#: how deep an overflowing partition is cut again before giving up
MAX_DEPTH = 4


def key_rows(cols: list[np.ndarray], dtypes: list[np.dtype] | None = None) -> np.ndarray:
    """The key columns as one comparable array (a structured one for composite keys;
    numpy orders it field by field, NaN last, like the tables' keys)."""
    dtypes = dtypes or [c.dtype for c in cols]
    if len(cols) == 1:
        return cols[0].astype(dtypes[0], copy=False)
    out = np.empty(len(cols[0]), [(f"k{i}", dt) for i, dt in enumerate(dtypes)])
    for i, c in enumerate(cols):
        out[f"k{i}"] = c
    return out


def distinct(cols: list[np.ndarray]) -> int:
    """The number of distinct key rows (NaN equal to NaN, as the tables group them)."""
    if not cols or not len(cols[0]):
        return 0
    rows = np.sort(key_rows(cols))
    fields = [rows] if len(cols) == 1 else [rows[f"k{i}"] for i in range(len(cols))]
    new = np.zeros(len(rows) - 1, bool)
    for c in fields:
        step = c[1:] != c[:-1]
        if c.dtype.kind in "fc":
            step &= ~(np.isnan(c[1:]) & np.isnan(c[:-1]))
        new |= step
    return 1 + int(new.sum())


def range_bounds(cols: list[np.ndarray], nparts: int) -> list[np.ndarray]:
    """At most ``nparts - 1`` increasing key rows (as columns) cutting the distinct keys
    of ``cols`` into ``nparts`` ranges of about as many keys each."""
    if not cols or not len(cols[0]) or nparts < 2:
        return [c[:0] for c in cols]
    u = np.unique(key_rows(cols))
    at = np.unique((np.arange(1, nparts) * len(u)) // nparts)
    at = at[(at > 0) & (at < len(u))]
    b = u[at]
    return [b] if len(cols) == 1 else [b[f"k{i}"] for i in range(len(cols))]


def part_of(bounds: list[np.ndarray], keys: list[np.ndarray]) -> np.ndarray:
    """The range partition of each key row: how many bounds are <= it."""
    dts = [np.promote_types(b.dtype, k.dtype) for b, k in zip(bounds, keys, strict=True)]
    b, k = key_rows(bounds, dts), key_rows(keys, dts)
    return np.searchsorted(b, k, side="right").astype(np.intp)


def split_table(table: Table, part: np.ndarray, nparts: int) -> Iterator[tuple[int, Table]]:
    """(partition, its piece of ``table``) for each partition with groups, in order."""
    order = np.argsort(part, kind="stable")
    cuts = np.searchsorted(part[order], np.arange(nparts + 1))
    for p in range(nparts):
        groups = order[cuts[p] : cuts[p + 1]]
        if len(groups):
            yield p, subset(table, groups)


def _pieces(path: Path) -> Iterator[Any]:
    with open(path, "rb") as fh:
        while fh.peek(1):
            yield pickle.load(fh)  # (our own file)


def _keys_file(path: Path) -> Path:
    return path.with_suffix(".keys")


def _append(path: Path, piece: Table) -> None:
    """Add ``piece`` to the partition file ``path``, and its keys to ``path.keys``."""
    with open(path, "ab") as fh:
        pickle.dump(piece, fh, protocol=5)
    with open(_keys_file(path), "ab") as fh:
        pickle.dump((piece.keys, piece.nbytes), fh, protocol=5)


def _drop(path: Path) -> None:
    path.unlink(missing_ok=True)
    _keys_file(path).unlink(missing_ok=True)


def subset(table: Table, groups: np.ndarray) -> Table:
    """The table of the groups at (sorted) indices ``groups``."""
    out = Table([k[groups] for k in table.keys], table.size[groups], cells=dict(table.cells))
    for name, st in table.states.items():
        K = table.cells[name]
        sub: kernels.State = {}
        for key, arr in st.items():
            if key not in ("qc", "qv"):
                sub[key] = arr.reshape(-1, K)[groups].ravel()
        if "qc" in st:
            rank = np.full(table.ngroups, -1, np.int64)
            rank[groups] = np.arange(len(groups))
            g = rank[st["qc"] // K]
            keep = g >= 0
            sub["qc"] = g[keep] * K + st["qc"][keep] % K
            sub["qv"] = st["qv"][keep]
        out.states[name] = sub
    return out


class Spiller:
    """Range-partitioned spill files of group tables (see the module docstring)."""

    def __init__(self, directory: Path | None, budget: int) -> None:
        self._base = directory
        self.budget = budget
        self.dir: Path | None = None
        #: one file per partition, holding its pieces one after the other
        self.parts: list[Path] = []
        #: the key columns of a sample of the groups (set by the engine)
        self.sampler: Callable[[], list[np.ndarray]] | None = None
        self.bounds: list[np.ndarray] = []
        #: partitions reduced (more than ``parts`` when some were cut again)
        self.reduced = 0
        self._made = 0
        #: removes reduced partition files in the background (an unlink waits for the
        #: file's pages under writeback: seconds for big spills on a busy disk)
        self._bin: ThreadPoolExecutor | None = None

    @property
    def active(self) -> bool:
        return self.dir is not None

    def start(self, table: Table, fraction_read: float) -> None:
        """Begin spilling with ``table`` (the groups of ``fraction_read`` of the rows)."""
        expected = table.nbytes / max(fraction_read, 1e-9)
        target = max(1, self.budget // PART_TARGET)
        nparts = min(MAX_PARTITIONS, max(2, math.ceil(expected / target)))
        sample = self.sampler() if self.sampler is not None else []
        if not sample or not len(sample[0]):
            sample = table.keys
        self.bounds = range_bounds(sample, nparts)
        if self._base is not None:
            self._base.mkdir()
            self.dir = self._base
        else:
            self.dir = Path(tempfile.mkdtemp(prefix="arraystore-groupby-"))
        self.parts = [self._new_path() for _ in range(len(self.bounds[0]) + 1)]
        self.add(table)

    def _new_path(self) -> Path:
        assert self.dir is not None
        self._made += 1
        return self.dir / f"part-{self._made:06d}"

    def add(self, table: Table) -> None:
        """Write ``table``'s groups to their partitions (a piece each)."""
        if table.ngroups == 0:
            return
        part = part_of(self.bounds, table.keys)
        for p, piece in split_table(table, part, len(self.parts)):
            _append(self.parts[p], piece)

    def partitions(self) -> Iterator[Table]:
        """Each partition's table, in key order: its pieces merged in the order they
        were written (a partition too large for the budget is cut again first)."""
        for path in self.parts:
            yield from self._reduce(path, 0)

    def _reduce(self, path: Path, depth: int) -> Iterator[Table]:
        if not path.exists():
            return
        limit = self.budget // PART_LIMIT
        acc: Table | None = None
        for piece in _pieces(path):
            acc = kernels.merge(acc, piece)
            del piece
            if acc.nbytes > limit:
                break
        else:
            self._discard(path)
            if acc is not None:
                self.reduced += 1
                yield acc
            return
        ngroups, nbytes = acc.ngroups, acc.nbytes
        del acc
        subs = self._cut(path, depth) if ngroups > 1 and depth < MAX_DEPTH else None
        if subs is None:
            raise MemoryBudgetError(
                f"a spilled partition of {ngroups} groups needs {format_size(nbytes)}, "
                f"over 1/{PART_LIMIT} of the memory budget {format_size(self.budget)}; "
                "raise --memory"
            )
        for sub in subs:
            yield from self._reduce(sub, depth + 1)

    def _cut(self, path: Path, depth: int) -> list[Path] | None:
        """Cut the partition file ``path`` by the quantiles of its keys into smaller
        ones (its pieces keep their order); None if its keys do not split."""
        total, sample = 0, []
        for keys, nbytes in _pieces(_keys_file(path)):
            total += nbytes
            step = max(1, len(keys[0]) // 4096)
            sample.append([k[::step] for k in keys])
        cols = [np.concatenate(c) for c in zip(*sample, strict=True)]
        nparts = max(2, math.ceil(total * PART_TARGET / self.budget))
        bounds = range_bounds(cols, min(nparts, MAX_PARTITIONS))
        del sample, cols
        if not len(bounds[0]):
            return None
        subs = [self._new_path() for _ in range(len(bounds[0]) + 1)]
        for piece in _pieces(path):
            for p, sub in split_table(piece, part_of(bounds, piece.keys), len(subs)):
                _append(subs[p], sub)
        _drop(path)
        return subs

    def count(self) -> int:
        """The number of groups: the distinct keys of each partition (read from its
        keys file), partitions whose keys show they will not fit cut again first."""
        parts: list[Path] = []
        total = 0
        for path in self.parts:
            total += self._count(path, 0, parts)
        self.parts = parts
        return total

    def _count(self, path: Path, depth: int, parts: list[Path]) -> int:
        if not path.exists():
            return 0
        limit = self.budget // PART_LIMIT
        cols: list[list[np.ndarray]] = []
        kbytes = per_group = 0.0
        for keys, nbytes in _pieces(_keys_file(path)):
            cols.append(keys)
            kbytes += sum(k.nbytes for k in keys)
            per_group = max(per_group, nbytes / max(1, len(keys[0])))
            if kbytes > limit:
                break
        else:
            n = distinct([np.concatenate(c) for c in zip(*cols, strict=True)])
            if n * per_group <= limit or depth >= MAX_DEPTH or n < 2:
                parts.append(path)  # (one group too large: _reduce says so)
                return n
        del cols
        subs = self._cut(path, depth)
        if subs is None:
            parts.append(path)
            return self._count_plain(path)
        return sum(self._count(sub, depth + 1, parts) for sub in subs)

    def _count_plain(self, path: Path) -> int:
        cols = [keys for keys, _ in _pieces(_keys_file(path))]
        return distinct([np.concatenate(c) for c in zip(*cols, strict=True)])

    def _discard(self, path: Path) -> None:
        if self._bin is None:
            self._bin = ThreadPoolExecutor(1, thread_name_prefix="arraystore-spill-rm")
        self._bin.submit(_drop, path)

    def close(self) -> None:
        """Remove the spill files (also after a failure)."""
        if self._bin is not None:
            self._bin.shutdown(wait=True)
            self._bin = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
