"""Spilling group tables to disk when the groups outgrow the memory budget.

When the merged table passes 1/8 of the budget, the :class:`Spiller` takes over: it cuts
that table into ``P`` partitions by a hash of the key (:func:`key_hash`) and writes
each to a spill file, then does the same with every later task's table as it arrives
(in row order). Afterwards each partition is read back and its pieces merged in the
order they were written -- the same order in which every group's states would have
been merged in memory, so the results are the same bits as without spilling -- and
finalised on its own; the caller sorts the finished groups by key.

Spill files live in the store's temp area (a hidden ``.NAME.tmp-PID-HEX`` folder, which
``verify`` and later writes recognise as a leftover) when the store is local and
writable, else in the system's temp directory; :meth:`Spiller.close` removes them, on
success and on failure. ``P`` is chosen when spilling starts from the table's size and
the share of rows read so far, so that one partition's table should take a sixteenth
of the budget; a partition that still does not fit raises ``MemoryBudgetError``.
"""

from __future__ import annotations

import math
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from arraystore.engine.memory import format_size
from arraystore.errors import MemoryBudgetError
from arraystore.ops.groupby import kernels
from arraystore.ops.groupby.kernels import Table

MAX_PARTITIONS = 4096
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64, wrapping)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def key_hash(cols: list[np.ndarray]) -> np.ndarray:
    """A uint64 hash of each key row (equal keys of one dtype hash equal)."""
    n = len(cols[0])
    h = np.zeros(n, np.uint64)
    for c in cols:
        if c.dtype.kind in "biu":
            w = c.astype(np.int64).view(np.uint64)
        elif c.dtype.kind == "f":
            w = c.astype(np.float64).view(np.uint64)
        else:  # fixed strings: their bytes, 8 at a time
            raw = np.ascontiguousarray(c).view(np.uint8).reshape(n, c.dtype.itemsize)
            pad = (-c.dtype.itemsize) % 8
            if pad:
                raw = np.concatenate([raw, np.zeros((n, pad), np.uint8)], axis=1)
            words = raw.view(np.uint64).reshape(n, -1)
            w = np.zeros(n, np.uint64)
            for j in range(words.shape[1]):
                w = _mix(w ^ words[:, j])
        h = _mix(h ^ w)
    return h


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
    """Partitioned spill files of group tables (see the module docstring)."""

    def __init__(self, directory: Path | None, budget: int) -> None:
        self._base = directory
        self.budget = budget
        self.dir: Path | None = None
        #: one file per partition, holding its pieces one after the other
        self.parts: list[Path] = []

    @property
    def active(self) -> bool:
        return self.dir is not None

    def start(self, table: Table, fraction_read: float) -> None:
        """Begin spilling with ``table`` (the groups of ``fraction_read`` of the rows)."""
        expected = table.nbytes / max(fraction_read, 1e-9)
        nparts = 2 ** math.ceil(math.log2(max(2.0, expected / max(1, self.budget // 16))))
        if self._base is not None:
            self._base.mkdir()
            self.dir = self._base
        else:
            self.dir = Path(tempfile.mkdtemp(prefix="arraystore-groupby-"))
        self.parts = [self.dir / f"part-{p:05d}" for p in range(min(nparts, MAX_PARTITIONS))]
        self.add(table)

    def add(self, table: Table) -> None:
        """Write ``table``'s groups to their partitions (a piece each)."""
        assert self.dir is not None
        if table.ngroups == 0:
            return
        nparts = len(self.parts)
        part = (key_hash(table.keys) % np.uint64(nparts)).astype(np.intp)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(nparts + 1))
        for p in range(nparts):
            groups = order[bounds[p] : bounds[p + 1]]
            if len(groups):
                with open(self.parts[p], "ab") as fh:
                    pickle.dump(subset(table, groups), fh, protocol=5)

    def partitions(self) -> Iterator[Table]:
        """Each partition's table: its pieces merged in the order they were written."""
        for path in self.parts:
            if not path.exists():
                continue
            acc: Table | None = None
            with open(path, "rb") as fh:
                while fh.peek(1):
                    acc = kernels.merge(acc, pickle.load(fh))  # (our own file)
                    if acc.nbytes * 4 > self.budget:
                        raise MemoryBudgetError(
                            f"a spilled partition of {acc.ngroups} groups needs "
                            f"{format_size(acc.nbytes)}, over a quarter of the memory budget "
                            f"{format_size(self.budget)}; raise --memory"
                        )
            path.unlink()
            if acc is not None:
                yield acc

    def close(self) -> None:
        """Remove the spill files (also after a failure)."""
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
