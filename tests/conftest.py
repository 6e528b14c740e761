"""Shared fixtures for the whole test suite.

``backend_case``
    Parametrizes a test over every storage format arraystore writes: the memmap backend
    and the zarr backend with each codec family. The value is a :class:`BackendCase`
    (a named tuple ``(backend, codec)``); pass ``**backend_case.kwargs`` to
    ``store.create`` so new backends/codecs need an edit here only::

        def test_roundtrip(store, backend_case):
            arr = store.create("x", (10, 3), "f8", fill="range", **backend_case.kwargs)

``store``
    A fresh, empty, writable store (``mode="a"``) in the test's ``tmp_path``;
    ``store.path`` is its directory (``tmp_path / "s.store"``).

``reopen``
    ``reopen(store, mode="r")`` opens the same store again with a *new*
    ``arraystore.open`` (fresh handles: nothing cached from the writer).

Helpers (``assert_same``, ``listing``, ``tree_hash``, ``run_cli``, ``backend_params``,
``BACKEND_CASES``, ``FailingExecutor``) live in :mod:`arraystore.testing`: import them
from there.

Hypothesis tests here use ``tmp_path``/``store`` fixtures with unique array names per
example, so they suppress ``HealthCheck.function_scoped_fixture`` on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import arraystore
from arraystore.testing import BackendCase, backend_params


@pytest.fixture(params=backend_params())
def backend_case(request: pytest.FixtureRequest) -> BackendCase:
    """Every backend/codec combination in turn (see :data:`BACKEND_CASES`)."""
    return request.param


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Where the ``store`` fixture lives (created by it)."""
    return tmp_path / "s.store"


@pytest.fixture
def store(store_path: Path) -> arraystore.Store:
    """A new empty writable store in ``tmp_path``."""
    return arraystore.open(store_path, mode="a")


@pytest.fixture
def reopen() -> Callable[..., arraystore.Store]:
    """Open the same store again through a new ``arraystore.open`` call."""

    def _reopen(store: arraystore.Store, mode: str = "r") -> arraystore.Store:
        return arraystore.open(store.path, mode=mode)

    return _reopen


@pytest.fixture
def preadv_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bytes each ``os.preadv`` of the test read (from here on)."""
    read: list[int] = []
    real = os.preadv

    def counting(fd: int, buffers: Any, offset: int, *args: Any) -> int:
        n = real(fd, buffers, offset, *args)
        read.append(n)
        return n

    monkeypatch.setattr(os, "preadv", counting)
    return read
