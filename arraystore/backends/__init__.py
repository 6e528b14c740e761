"""Backends by name: ``memmap`` (one .npy file) and ``zarr`` (zarr format 3)."""

from __future__ import annotations

from arraystore.backends.base import Backend, Handle

__all__ = ["Backend", "Handle", "available_backends", "get_backend"]

_NAMES = ("memmap", "zarr")


def available_backends() -> tuple[str, ...]:
    return _NAMES


def get_backend(name: str) -> Backend:
    """The backend called ``name``; its module (and zarr) is imported only when asked for."""
    from arraystore.errors import UnknownBackend

    if name == "memmap":
        from arraystore.backends.memmap import MemmapBackend

        return MemmapBackend()
    if name == "zarr":
        from arraystore.backends.zarr import ZarrBackend

        return ZarrBackend()
    raise UnknownBackend(f"unknown backend {name!r} (choose from: {', '.join(_NAMES)})")
