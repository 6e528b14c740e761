"""Run a command as if the machine had only SIZE of RAM: in a child memory cgroup.

    python benchmarks/memcap.py 4GiB CGROUP_NAME -- cmd args...

The command runs in a new memory cgroup (v1 ``memory.limit_in_bytes`` or v2
``memory.max``) below this process's own, named CGROUP_NAME. Everything the process
touches is charged to that cgroup: its anonymous memory *and the page cache of the
files it reads*, which the kernel reclaims once the cap is reached, exactly as on a
machine with SIZE of RAM. So data of 2 x SIZE is "twice the RAM" for the command, while
the rest of the machine keeps its memory. A process that needs more than SIZE of
anonymous memory is killed by the kernel's OOM killer (exit -9), as it would be.

Pages already cached before the run were charged to whoever read them, and reads of
them cost nothing: evict the inputs first (``common.drop_cache``; ``--ram-cap``
implies cold runs).

The command is ``exec``-ed, so its pid (and ``wait4`` rusage) is this process's;
the caller removes the cgroup after the process ended (:func:`remove`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _parse_size(text: str) -> int:
    units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    num = t.rstrip("kmgt")
    return int(float(num) * units[t[len(num) :]])


def own_cgroup() -> tuple[Path, int]:
    """This process's memory cgroup directory and the cgroup version (1 or 2)."""
    v2 = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _hid, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return ROOT / "memory" / path.lstrip("/"), 1
        if controllers == "":
            v2 = path
    if v2 is not None:
        base = ROOT / "unified" if (ROOT / "unified" / "cgroup.procs").exists() else ROOT
        return base / v2.lstrip("/"), 2
    raise OSError("no memory cgroup found in /proc/self/cgroup")


def cgroup_path(name: str) -> Path:
    return own_cgroup()[0] / name


def available() -> bool:
    """Can this process make a capped child cgroup?"""
    try:
        parent, _v = own_cgroup()
        probe = parent / f"asbench-probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


def enter(name: str, limit: int) -> None:
    """Make cgroup ``name`` below ours, cap it at ``limit`` bytes and move this process in."""
    parent, version = own_cgroup()
    path = parent / name
    path.mkdir(exist_ok=True)
    if version == 1:
        (path / "memory.limit_in_bytes").write_text(str(limit))
        memsw = path / "memory.memsw.limit_in_bytes"
        if memsw.exists():  # no swapping around the cap either
            memsw.write_text(str(limit))
    else:
        (path / "memory.max").write_text(str(limit))
        swap = path / "memory.swap.max"
        if swap.exists():
            swap.write_text("0")
    (path / "cgroup.procs").write_text(str(os.getpid()))


def remove(name: str) -> None:
    """Remove the (now empty) cgroup ``name``; nothing if it is gone or still busy."""
    with contextlib.suppress(OSError):
        cgroup_path(name).rmdir()


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        sys.exit("usage: memcap.py SIZE CGROUP_NAME -- cmd args...")
    enter(argv[1], _parse_size(argv[0]))
    os.execvp(argv[3], argv[3:])


if __name__ == "__main__":
    main(sys.argv[1:])
