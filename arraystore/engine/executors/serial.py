"""Run tasks one after the other in the calling thread: the reference executor."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from arraystore.engine.executors.base import Executor, check_in_flight
from arraystore.errors import InvalidArgument

if TYPE_CHECKING:
    from arraystore.engine.plan import Task

__all__ = ["SerialExecutor"]


class SerialExecutor(Executor):
    """One task at a time, in the order given; handy for debugging and profiling."""

    name = "serial"

    def __init__(self, workers: int | None = None) -> None:
        if workers not in (None, 1):
            raise InvalidArgument(f"the serial executor has exactly 1 worker, got {workers}")
        self.workers = 1

    def map(self, tasks: Iterable[Task], max_in_flight: int) -> Iterator[tuple[Task, Any]]:
        check_in_flight(max_in_flight)
        for task in tasks:
            yield task, task.fn(*task.args)
