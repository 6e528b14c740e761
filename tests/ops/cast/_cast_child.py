"""Run one ``arraystore.ops.cast.cast`` in a subprocess, for the crash tests.

    python tests/ops/cast/_cast_child.py STORE NAME [--to f4] [--out OUT] [--memory 64MiB]
                                [--workers N] [--executor threads] [--resume]
                                [--kill-at PHASE]

Prints one JSON line (``CastResult.to_dict()``) on success; an ``ArrayStoreError`` prints
``error: <class>: <message>`` on stderr and exits 1.

``--kill-at`` makes the process SIGKILL itself at a precise point of the cast, to hit the
crash windows a random delay rarely lands in (tests/ops/cast/test_cast_crash.py):

``mkdir``          after the work folder ``.NAME.cast`` exists, before the journal header
``header``         right after the journal header is written (no new array yet)
``create``         after the journal header and ``.NAME.cast/data/`` exist, before the
                   backend creates the new array in it
``chunks:N``       after N chunks were written and journaled
``swap``           inside the commit: right before the atomic exchange (or, without
                   renameat2, between the two renames)
``remove-old``     inside the commit: both renames done, the old array not yet deleted
``committed``      after the commit returned, before the work folder is removed
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import arraystore
import arraystore.storage.layout as _layout_mod
import arraystore.storage.transaction as _tx_mod
from arraystore.errors import ArrayStoreError
from arraystore.ops import cast as _cast_mod
from arraystore.ops.cast import run as _cast_run


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _patch(obj: Any, attr: str, value: Any) -> None:
    setattr(obj, attr, value)


def _install_kill(phase: str) -> None:
    if phase == "mkdir":

        def die_instead_of_header(path: Path, header: dict[str, Any]) -> None:
            assert path.parent.is_dir()
            _die()

        _patch(_tx_mod, "write_header", die_instead_of_header)
    elif phase == "header":
        orig = _tx_mod.write_header

        def header_then_die2(path: Path, header: dict[str, Any]) -> None:
            orig(path, header)
            _die()

        _patch(_tx_mod, "write_header", header_then_die2)
    elif phase == "create":
        real_get_backend = _tx_mod.get_backend

        class DieOnCreate:
            def __init__(self, backend: Any) -> None:
                self._backend = backend

            def create(self, path: Path, meta: Any) -> Any:
                assert path.is_dir()
                _die()

            def __getattr__(self, attr: str) -> Any:
                return getattr(self._backend, attr)

        _patch(_tx_mod, "get_backend", lambda name: DieOnCreate(real_get_backend(name)))
    elif phase.startswith("chunks:"):
        n = int(phase.split(":", 1)[1])
        orig_task = _cast_run.cast_task
        lock = threading.Lock()
        done = [0]

        def task_then_maybe_die(*args: Any, **kwargs: Any) -> Any:
            out = orig_task(*args, **kwargs)
            with lock:
                done[0] += 1
                if done[0] >= n:
                    _die()
            return out

        _patch(_cast_run, "cast_task", task_then_maybe_die)
    elif phase in ("swap", "remove-old", "committed"):
        orig_commit = _layout_mod.Layout.commit

        def commit(self: Any, tmp: Path, path: Path) -> None:
            if phase == "committed":
                orig_commit(self, tmp, path)
                _die()
            if phase == "remove-old":
                _patch(_layout_mod, "remove_hidden", lambda p: _die())
                orig_commit(self, tmp, path)
                return
            # swap: die on the second os.replace of the commit (or the first, when there
            # is no old array to move away)
            real_replace = os.replace
            calls = [0]
            moves_old = path.exists()

            def replace(src: Any, dst: Any) -> None:
                calls[0] += 1
                if calls[0] == (2 if moves_old else 1):
                    _die()
                real_replace(src, dst)

            _patch(_layout_mod.os, "replace", replace)
            # with an atomic exchange (renameat2) the swap is one call: die right before it
            _patch(_layout_mod, "exchange", lambda a, b: _die())
            try:
                orig_commit(self, tmp, path)
            finally:
                _patch(_layout_mod.os, "replace", real_replace)

        _patch(_layout_mod.Layout, "commit", commit)
    else:
        raise SystemExit(f"unknown --kill-at {phase!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("name")
    ap.add_argument("--to", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--memory", default="64MiB")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--executor", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--kill-at", default=None)
    ns = ap.parse_args(argv)
    if ns.kill_at:
        _install_kill(ns.kill_at)
    store = arraystore.open(ns.store, mode="r+")
    try:
        res = _cast_mod.cast(
            store,
            ns.name,
            ns.to,
            out=ns.out,
            memory=ns.memory,
            workers=ns.workers,
            executor=ns.executor,
            resume=ns.resume,
        )
    except ArrayStoreError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    doc = res.to_dict()
    print(json.dumps(doc, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
