"""Run tasks on a thread pool: the default, since numpy and the codecs release the GIL."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from arraystore.engine.executors.base import Executor, check_in_flight
from arraystore.errors import InvalidArgument

if TYPE_CHECKING:
    from arraystore.engine.plan import Task

__all__ = ["ThreadExecutor", "default_workers"]


def default_workers() -> int:
    """CPUs this process may use (``os.process_cpu_count`` on 3.13+, else ``cpu_count``)."""
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return max(1, count or 1)


class ThreadExecutor(Executor):
    """``workers`` threads; at most ``max_in_flight`` tasks pulled and not yet yielded."""

    name = "threads"

    def __init__(self, workers: int | None = None) -> None:
        workers = default_workers() if workers is None else workers
        if workers < 1:
            raise InvalidArgument(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None

    def _get_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="arraystore")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, tasks: Iterable[Task], max_in_flight: int) -> Iterator[tuple[Task, Any]]:
        check_in_flight(max_in_flight)
        pool = self._get_pool()
        todo = iter(tasks)
        running: dict[Future[Any], Task] = {}

        def fill() -> None:
            while len(running) < max_in_flight:
                task = next(todo, None)
                if task is None:
                    return
                running[pool.submit(task.fn, *task.args)] = task

        try:
            fill()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                if any(not f.cancelled() and f.exception() is not None for f in done):
                    _fail(running)
                for future in sorted(done, key=lambda f: running[f].key):
                    task = running.pop(future)
                    yield task, future.result()
                    fill()  # only now: the yielded task counted as in flight until taken
        finally:
            for future in running:
                future.cancel()
            wait(running)


def _fail(running: dict[Future[Any], Task]) -> None:
    """Cancel what has not started, wait for the rest, raise the first error by key."""
    for future in running:
        future.cancel()
    wait(running)
    failed = [f for f in running if not f.cancelled() and f.exception() is not None]
    error = min(failed, key=lambda f: running[f].key).exception()
    running.clear()
    assert error is not None
    raise error
