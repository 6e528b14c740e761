"""Memory-budget arithmetic: pure functions, no dtypes, no I/O except reading RAM size.

The engine's contract (DESIGN.md §4) is *in-flight tasks * bytes per task <= budget*.
:func:`block_target` is the one rule that sizes a task's block from the budget so that
the contract holds; :func:`max_in_flight` turns a budget, a task's projected peak memory
and a worker count into how many tasks may be submitted at once, or refuses with
:class:`~arraystore.errors.MemoryBudgetError` before anything runs.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from typing import Literal

from arraystore.errors import InvalidArgument, MemoryBudgetError

__all__ = [
    "READ_AHEAD",
    "available_memory",
    "block_target",
    "default_budget",
    "format_size",
    "max_in_flight",
    "memory_budget",
    "parse_size",
]

KiB = 1024
GiB = KiB**3
READ_AHEAD = 2
"""Tasks in flight per worker: one running, one read ahead to keep the disk busy."""

_PREFIXES = "kmgtp"
_UNITS: dict[str, int] = {"": 1, "b": 1}
for _i, _p in enumerate(_PREFIXES, start=1):
    _UNITS[_p] = _UNITS[_p + "ib"] = 1024**_i  # K, KiB: binary (as `ls -h`, numpy)
    _UNITS[_p + "b"] = 1000**_i  # KB, MB: SI
_DIGITS = r"\d+(?:_\d+)*"  # 50_000 as in Python literals
_SIZE_RE = re.compile(
    rf"(?P<sign>[+-]?)(?P<num>(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:e[+-]?\d{{1,3}})?)"
    r"\s*(?P<unit>[a-z]*)",
    re.IGNORECASE | re.ASCII,  # ASCII digits only: '٣MiB' is not 3 MiB
)
_FORMAT_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")
_MEMINFO = "/proc/meminfo"
_FALLBACK_MEMORY = 2 * GiB


def parse_size(text: str | int) -> int:
    """Bytes in a human size: ``"64MiB"``, ``"1.5GB"``, ``"512k"``, ``"50_000"``, ``4096``.

    Units are case-insensitive: ``B``; ``KB MB GB TB PB`` are powers of 1000;
    ``KiB MiB GiB TiB PiB`` and the bare ``K M G T P`` are powers of 1024. Fractional
    byte counts are rounded down. Junk and negative sizes raise ``InvalidArgument``.
    """
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise InvalidArgument(f"invalid size {text!r}: expected a string like '64MiB' or an int")
    if isinstance(text, int):
        if text < 0:
            raise InvalidArgument(f"invalid size {text!r}: must not be negative")
        return text
    match = _SIZE_RE.fullmatch(text.strip())
    if not match:
        raise InvalidArgument(
            f"invalid size {text!r}: expected a number and an optional unit, "
            "e.g. 64MiB, 1.5GB, 512k or 50_000"
        )
    unit = match["unit"].lower()
    if unit not in _UNITS:
        raise InvalidArgument(
            f"invalid size {text!r}: unknown unit {match['unit']!r} "
            "(use B, KB/MB/GB/TB, KiB/MiB/GiB/TiB or K/M/G/T)"
        )
    value = Decimal(match["num"].replace("_", "")) * _UNITS[unit]
    if match["sign"] == "-" and value != 0:
        raise InvalidArgument(f"invalid size {text!r}: must not be negative")
    return int(value)


def memory_budget(memory: str | int | None) -> int | None:
    """A ``memory=`` argument checked up front: None (the default budget) or a positive
    byte count (``"64MiB"``, ``4096``); anything else raises ``InvalidArgument``."""
    if memory is None:
        return None
    budget = parse_size(memory)
    if budget <= 0:
        raise InvalidArgument(f"memory budget must be positive, got {memory!r}")
    return budget


def format_size(n: int) -> str:
    """A short human size with binary units: ``"12 B"``, ``"64.0 MiB"``, ``"1.5 GiB"``."""
    if n < 0:
        return "-" + format_size(-n)
    if n < KiB:
        return f"{n} B"
    value, units = n / KiB, list(_FORMAT_UNITS)
    while round(value, 1) >= KiB and len(units) > 1:  # 1023.99 KiB shows as 1.0 MiB
        value /= KiB
        units.pop(0)
    return f"{value:.1f} {units[0]}"


def _meminfo_available(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    kib = int(line.split()[1])
                    return kib * KiB if kib > 0 else None
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sysconf_available() -> int | None:
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):  # macOS has only the second
        try:
            n = os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            continue
        if n > 0:
            return n
    return None


def available_memory() -> int:
    """Bytes of RAM available now: ``MemAvailable`` from /proc/meminfo, else sysconf.

    Falls back to a conservative 2 GiB where the platform tells neither.
    """
    return _meminfo_available(_MEMINFO) or _sysconf_available() or _FALLBACK_MEMORY


def default_budget() -> int:
    """The default ``--memory``: a quarter of available RAM, at most 1 GiB."""
    return min(GiB, available_memory() // 4)


def max_in_flight(budget: int, task_bytes: int, workers: int, read_ahead: int = READ_AHEAD) -> int:
    """How many tasks of ``task_bytes`` peak memory may be submitted at once.

    ``min(budget // task_bytes, workers * read_ahead)`` and at least 1, so that
    ``result * task_bytes <= budget`` always holds. Raises ``MemoryBudgetError`` when a
    single task needs more than the whole budget, ``InvalidArgument`` for a budget or
    worker count that is not positive.
    """
    if budget <= 0:
        raise InvalidArgument("memory budget must be positive")
    if workers < 1:
        raise InvalidArgument(f"workers must be at least 1, got {workers}")
    if read_ahead < 1:
        raise InvalidArgument(f"read_ahead must be at least 1, got {read_ahead}")
    if task_bytes < 0:
        raise InvalidArgument(f"task memory must not be negative, got {task_bytes}")
    if task_bytes > budget:
        raise MemoryBudgetError(
            f"plan needs at least {format_size(task_bytes)} per task but --memory is "
            f"{format_size(budget)}; raise --memory or use smaller chunks"
        )
    by_workers = workers * read_ahead
    if task_bytes == 0:
        return by_workers
    return max(1, min(budget // task_bytes, by_workers))


def block_target(
    budget: int,
    workers: int,
    *,
    inputs: int = 0,
    output: int = 0,
    temps: int = 0,
    overhead: int = 0,
    cap: int,
    floor: int,
    per: Literal["output", "input", "row"] = "output",
    floor_within_share: bool = False,
    read_ahead: int = READ_AHEAD,
) -> int:
    """The size of one task's block, so that ``workers * read_ahead`` such tasks fit ``budget``.

    The one block-size rule of the ops that tile an array from the memory budget. Each
    of the ``workers * read_ahead`` tasks in flight gets an equal share of the budget;
    the share less ``overhead`` is split over the bytes a task holds per element (or
    row), ``inputs + output + temps``; the ``per`` part is the block, kept within
    ``[floor, cap]``. Unless a bound applies, a task holding that block and ``overhead``
    needs at most its share, so :func:`max_in_flight` (``Plan.check``) runs all tasks at
    once. The floor overrules the budget; ``Plan.check`` then decides if the plan fits.

    Parameters
    ----------
    budget : int
        The memory budget in bytes (``--memory``).
    workers : int
        Workers running tasks at once. A caller whose tiling must not depend on the
        executor passes a fixed count (and ``read_ahead=1``).
    inputs : int
        Bytes a task reads per element (or row), over all its inputs; for ``per="input"``,
        a multiplier of the source block.
    output : int
        Bytes a task writes per element (or row); for ``per="output"``, the output's
        item size.
    temps : int
        Bytes of temporaries per element (or row).
    overhead : int
        Bytes a task holds whatever its block size (kernel or expression temporaries).
    cap : int
        The largest result in bytes (``per="row"``: the largest bytes a task holds for
        its rows): bigger blocks gain nothing.
    floor : int
        The smallest result in bytes (``per="row"``: bytes a task holds for its rows).
        It wins over the budget and over ``cap``.
    per : {"output", "input", "row"}
        What the result measures: bytes of the output block (``output`` bytes per
        element), bytes of the input block (``inputs`` bytes per element), or rows of a
        block (a row holds ``inputs + output + temps`` bytes; ``cap`` and ``floor`` bound
        a task's bytes, and the result is those bytes divided by the row's, at least 1).
    floor_within_share : bool
        Lower ``floor`` to the task's whole share of the budget when that is smaller, so
        a tiny budget gives tiny blocks instead of the floor.
    read_ahead : int
        Tasks in flight per worker (:data:`READ_AHEAD`).

    Returns
    -------
    int
        Target bytes of a block (``per="output"``/``"input"``) or rows (``per="row"``),
        at least 1.
    """
    if workers < 1 or read_ahead < 1:
        raise InvalidArgument(
            f"workers and read_ahead must be at least 1, got {workers}, {read_ahead}"
        )
    if min(budget, inputs, output, temps, overhead, cap, floor) < 0:
        raise InvalidArgument("block_target: sizes must not be negative")
    held = max(1, inputs + output + temps)
    units = {"output": output, "input": inputs, "row": held}
    if per not in units:
        raise InvalidArgument(f"block_target: per must be output, input or row, got {per!r}")
    unit = units[per]
    share = budget // (workers * read_ahead)
    target = max(0, share - overhead) * unit // held
    low = min(floor, share * unit // held) if floor_within_share else floor
    target = max(1, low, min(cap, target))
    return max(1, target // held) if per == "row" else target
