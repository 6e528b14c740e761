"""Executors by name: ``get_executor("threads", workers=4)``.

Each entry is a factory ``(workers=None, **options) -> Executor``; an executor with
an optional dependency imports it inside its factory, so ``import arraystore`` stays
light and a missing extra fails only when that executor is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arraystore.engine.executors.base import Executor
from arraystore.engine.executors.serial import SerialExecutor
from arraystore.engine.executors.threads import ThreadExecutor
from arraystore.errors import InvalidArgument, UnknownExecutorError

__all__ = [
    "Executor",
    "SerialExecutor",
    "ThreadExecutor",
    "available_executors",
    "get_executor",
    "register_executor",
]

DEFAULT_EXECUTOR = "threads"

ExecutorFactory = Callable[..., Executor]


def _dask(workers: int | None = None, **options: Any) -> Executor:
    """Imports distributed only when asked for, so the [dask] extra stays optional."""
    from arraystore.engine.executors.dask import DaskExecutor  # lazy: registry (optional dask)

    return DaskExecutor(workers=workers, **options)


_FACTORIES: dict[str, ExecutorFactory] = {
    "serial": SerialExecutor,
    "threads": ThreadExecutor,
    "dask": _dask,
}


def register_executor(name: str, factory: ExecutorFactory, *, replace: bool = False) -> None:
    """Make ``get_executor(name)`` call ``factory(workers=..., **options)``."""
    key = name.strip().lower()
    if not key:
        raise InvalidArgument("executor name must not be empty")
    if key in _FACTORIES and not replace:
        raise InvalidArgument(f"executor {key!r} is registered already (pass replace=True)")
    _FACTORIES[key] = factory


def available_executors() -> list[str]:
    """Registered executor names, sorted."""
    return sorted(_FACTORIES)


def get_executor(
    name_or_instance: str | Executor | None = None, workers: int | None = None, **kwargs: Any
) -> Executor:
    """An executor by name (``None`` means ``"threads"``); an instance passes through."""
    if isinstance(name_or_instance, Executor):
        if workers is not None or kwargs:
            raise InvalidArgument("workers and options apply only to an executor given by name")
        return name_or_instance
    if name_or_instance is not None and not isinstance(name_or_instance, str):
        raise InvalidArgument(f"executor must be a name or an Executor, got {name_or_instance!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise InvalidArgument(f"workers must be an integer, got {workers!r}")
    name = (name_or_instance or DEFAULT_EXECUTOR).strip().lower()
    try:
        factory = _FACTORIES[name]
    except KeyError:
        known = ", ".join(available_executors())
        raise UnknownExecutorError(
            f"unknown executor {name_or_instance!r}; known executors: {known}"
        ) from None
    return factory(workers=workers, **kwargs)
