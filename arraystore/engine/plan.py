"""Plans: tasks with their projected memory, checked against a budget, then run.

A :class:`Plan` is a tuple of :class:`Task` objects. Each task is a picklable
top-level function and its arguments (typically one region of one array) plus
``nbytes``, the task's projected peak memory. :func:`run` refuses a plan whose
in-flight memory would exceed the budget *before any task runs*, then streams the
tasks through an executor and folds the results **in key order**, so a result
never depends on thread timing even when ``merge`` is not commutative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from arraystore._native.alloc import small_pages
from arraystore.engine.executors.base import Executor
from arraystore.engine.memory import default_budget, max_in_flight, parse_size
from arraystore.errors import InvalidArgument

__all__ = ["Plan", "Task", "run"]


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(*args)``."""

    key: int
    """Position of the task (chunk order); results are merged in increasing key order."""
    fn: Callable[..., Any] = field(compare=False)
    """A picklable top-level function, so process and cluster executors can ship it."""
    args: tuple[Any, ...] = field(compare=False)
    """Its arguments: small and picklable (regions, paths, options), not data."""
    nbytes: int
    """Projected peak memory of one call, in bytes (buffers, temporaries, result)."""

    def __post_init__(self) -> None:
        if self.nbytes < 0:
            raise InvalidArgument(f"task {self.key}: nbytes must not be negative")

    def __call__(self) -> Any:
        return self.fn(*self.args)


@dataclass(frozen=True)
class Plan:
    """Tasks to run, in key order; ``name`` labels progress bars and errors."""

    tasks: tuple[Task, ...]
    name: str = ""

    def __post_init__(self) -> None:
        tasks = tuple(sorted(self.tasks, key=lambda t: t.key))
        for a, b in pairwise(tasks):
            if a.key == b.key:
                raise InvalidArgument(f"plan {self.name!r}: duplicate task key {a.key}")
        object.__setattr__(self, "tasks", tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def max_task_bytes(self) -> int:
        """Peak memory of the largest task (0 for an empty plan)."""
        return max((t.nbytes for t in self.tasks), default=0)

    def check(self, budget: int, workers: int) -> int:
        """How many tasks may be in flight; raises ``MemoryBudgetError`` if none fits."""
        return max_in_flight(budget, self.max_task_bytes, workers)


def run(
    plan: Plan,
    executor: Executor,
    budget: int | str | None = None,
    merge: Callable[[Any, Any], Any] | None = None,
    init: Any = None,
    progress: Callable[[Task, Any], object] | None = None,
) -> Any:
    """Run ``plan`` on ``executor`` within ``budget`` bytes and combine the results.

    ``budget`` is bytes, a size string (``"512MiB"``) or ``None`` for
    :func:`~arraystore.engine.memory.default_budget`. The plan is checked first, so an
    impossible plan raises ``MemoryBudgetError`` with no task run. With ``merge``, the
    result is ``merge(...merge(merge(init, r0), r1)..., rN)`` in key order; results that
    finish early wait in a buffer (keep them small: reduction states, reports). Without
    ``merge``, the list of results in key order. ``progress(task, result)`` is called in
    this thread as each task finishes. A failing task stops the run: nothing more is
    submitted, running tasks are waited for, and the task's exception is re-raised.
    """
    if budget is None:
        budget = default_budget()
    elif isinstance(budget, str):
        budget = parse_size(budget)
    in_flight = plan.check(budget, executor.workers)
    with small_pages():  # see arraystore._native.alloc: huge pages cost more than they give
        return _collect(plan, executor, in_flight, merge, init, progress)


def _collect(
    plan: Plan,
    executor: Executor,
    in_flight: int,
    merge: Callable[[Any, Any], Any] | None,
    init: Any,
    progress: Callable[[Task, Any], object] | None,
) -> Any:
    order = iter([t.key for t in plan.tasks])
    next_key = next(order, None)
    waiting: dict[int, Any] = {}
    acc = init
    results: list[Any] = []
    finished = executor.map(plan.tasks, in_flight)
    try:
        for task, result in finished:
            if progress is not None:
                progress(task, result)
            waiting[task.key] = result
            while next_key in waiting:
                value = waiting.pop(next_key)
                if merge is None:
                    results.append(value)
                else:
                    acc = merge(acc, value)
                next_key = next(order, None)
    finally:  # if merge or progress raised, the executor cancels and waits right now
        close = getattr(finished, "close", None)
        if close is not None:
            close()
    if waiting or next_key is not None:
        raise RuntimeError(f"executor {executor.name!r} did not return every task's result")
    return results if merge is None else acc
