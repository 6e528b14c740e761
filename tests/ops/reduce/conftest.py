"""Fixtures of the reduction tests."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from arraystore._native import direct


@pytest.fixture
def direct_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, str]]:
    """The (offset, length, thread name) of every direct read (memmap ranges, zarr
    chunk files): ``--io direct`` tests (test_direct_io*.py)."""
    calls: list[tuple[int, int, str]] = []
    real = direct.read_range

    def spy(fd: int, offset: int, length: int, pool: Any) -> Any:
        calls.append((offset, length, threading.current_thread().name))
        return real(fd, offset, length, pool)

    monkeypatch.setattr(direct, "read_range", spy)
    return calls
