"""Backends by name: ``memmap`` (one .npy file) and ``zarr`` (zarr format 3).

Each entry is a factory ``() -> Backend``; a backend's module (and zarr) is imported
inside its factory, so ``import arraystore`` stays light and a format is loaded only
when an array of it is created or opened. :func:`check_backend` validates a name
without importing anything; an unknown name raises
:class:`~arraystore.errors.UnknownBackend`.
"""

from __future__ import annotations

from collections.abc import Callable

from arraystore.backends.base import Backend, Handle
from arraystore.errors import InvalidArgument, UnknownBackend

__all__ = [
    "Backend",
    "Handle",
    "backend_names",
    "check_backend",
    "get_backend",
    "register_backend",
]

BackendFactory = Callable[[], Backend]


def _memmap() -> Backend:
    from arraystore.backends.memmap import MemmapBackend  # lazy: registry (on first use)

    return MemmapBackend()


def _zarr() -> Backend:
    from arraystore.backends.zarr import ZarrBackend  # lazy: registry (zarr-python on first use)

    return ZarrBackend()


_FACTORIES: dict[str, BackendFactory] = {
    "memmap": _memmap,
    "zarr": _zarr,
}


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Make ``get_backend(name)`` call ``factory()``.

    Parameters
    ----------
    name : str
        The name arrays of this format record as their ``backend``.
    factory : callable
        Takes no arguments and returns a :class:`Backend`.
    replace : bool
        Replace a backend registered under ``name`` already (else that is an error).
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"backend name must be a non-empty string, got {name!r}")
    if name in _FACTORIES and not replace:
        raise InvalidArgument(f"backend {name!r} is registered already (pass replace=True)")
    _FACTORIES[name] = factory


def backend_names() -> list[str]:
    """Registered backend names, sorted."""
    return sorted(_FACTORIES)


def check_backend(name: str) -> str:
    """Return ``name`` if a backend is registered under it, else raise
    :class:`~arraystore.errors.UnknownBackend` (imports no backend module)."""
    if not isinstance(name, str) or name not in _FACTORIES:
        known = ", ".join(backend_names())
        raise UnknownBackend(f"unknown backend {name!r} (choose from: {known})")
    return name


def get_backend(name: str) -> Backend:
    """The backend called ``name``; its module (and zarr) is imported only when asked for."""
    return _FACTORIES[check_backend(name)]()
