"""The executor contract: run tasks, yield results as they finish, bounded in flight.

An :class:`Executor` has a ``name``, a ``workers`` count, ``in_process`` (do tasks run
in this process?) and one abstract method,
:meth:`Executor.map`. ``map`` pulls tasks from its iterable lazily and never holds
more than ``max_in_flight`` tasks that were pulled but whose result the caller has
not yet taken, so memory stays within *in-flight * bytes per task* (checked by
:meth:`arraystore.engine.plan.Plan.check` before anything runs). Results come in
completion order, each paired with its task; putting them back in key order is the
plan's job (:func:`arraystore.engine.plan.run`).

When a task raises, ``map`` stops pulling tasks, cancels the ones not started, waits
for the running ones and re-raises the task's own exception. Closing the generator
early (``break``, an exception in the caller) does the same clean-up. No executor
leaves work running behind the caller's back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from arraystore.errors import InvalidArgument

if TYPE_CHECKING:
    from arraystore.engine.plan import Task

__all__ = ["Executor"]


class Executor(ABC):
    """Runs :class:`~arraystore.engine.plan.Task` objects; see the module docstring."""

    name: str = ""
    """Registry name (``"serial"``, ``"threads"``...)."""
    workers: int = 1
    """How many tasks run at the same time."""
    in_process: bool = True
    """Tasks run in this process (threads or inline), so what the caller loads or warms
    up here (a JIT-compiled kernel, a cache) serves them; False when tasks are shipped to
    other processes (``dask``)."""

    @abstractmethod
    def map(self, tasks: Iterable[Task], max_in_flight: int) -> Iterator[tuple[Task, Any]]:
        """Yield ``(task, task.fn(*task.args))`` as tasks finish, bounded in flight."""

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release workers and pools; the executor may be used again afterwards."""

    def get_config(self) -> dict[str, Any]:
        """Plain-dict form: ``get_executor(cfg.pop("name"), **cfg)`` rebuilds it."""
        return {"name": self.name, "workers": self.workers}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.workers})"


def check_in_flight(max_in_flight: int) -> None:
    """Shared argument check for ``map`` implementations."""
    if max_in_flight < 1:
        raise InvalidArgument(f"max_in_flight must be at least 1, got {max_in_flight}")
