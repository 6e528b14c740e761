"""Run plans on a dask.distributed cluster (``executor="dask"``).

Tasks are shipped as small picklable descriptions — the task function and its arguments:
a backend handle (path + metadata, no open files, no data), a region and the operation's
settings — never numpy blocks from the client. Workers read and write the storage
themselves, so the data must live on storage every worker sees (a shared POSIX path).
Results (reduction states, per-chunk reports) come back and are merged on the client in
chunk order, so results are bit-identical to the local executors for the same chunking.

The scheduler: ``executor=DaskExecutor(client=...)``, ``address="tcp://host:8786"``, or
the ``ARRAYSTORE_SCHEDULER`` environment variable; ``timeout`` bounds the connection
attempt (a malformed address is an ``InvalidArgument``, an unreachable one an
``ArrayStoreError``). ``workers`` is the cluster's thread count; the memory budget bounds
tasks in flight over the whole cluster. A task lost with its worker is rescheduled by
the scheduler (up to ``distributed.scheduler.allowed-failures`` worker deaths, default
3, then ``KilledWorker``); a task that raised is re-run ``retries`` times (default 1).
Otherwise the job fails with an ``ArrayStoreError`` naming the task; a cast then leaves
its source intact (it only ever writes a new array). As with the local executors, a
failing (or abandoned) run returns only once no task of it is running any more: tasks
already on a worker cannot be interrupted, so the ones in flight (at most
``max_in_flight``) are waited for before the error propagates -- the caller's clean-up
(a failed cast removes its work folder) never races with a task still writing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from arraystore._native.alloc import small_pages
from arraystore.engine.executors.base import Executor, check_in_flight
from arraystore.errors import ArrayStoreError, InvalidArgument

if TYPE_CHECKING:
    from arraystore.engine.plan import Task


class DaskExecutor(Executor):
    name = "dask"
    in_process = False  # tasks run in the cluster's worker processes
    #: seconds a failing run waits for its tasks still in flight before giving up on them
    drain_timeout: float = 120.0

    def __init__(
        self,
        workers: int | None = None,
        client: Any = None,
        address: str | None = None,
        retries: int = 1,
        timeout: str | float = "10s",
    ) -> None:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ArrayStoreError(
                "the dask executor needs distributed: pip install 'arraystore[dask]'"
            ) from exc
        self._own = False
        if client is None:
            address = address or os.environ.get("ARRAYSTORE_SCHEDULER")
            if not address:
                raise InvalidArgument(
                    "the dask executor needs a scheduler: "
                    "ARRAYSTORE_SCHEDULER=tcp://HOST:PORT, or executor=DaskExecutor(client=...)"
                )
            _check_address(address)
            try:
                client = Client(address, timeout=timeout)
            except ValueError as exc:
                raise InvalidArgument(f"bad dask scheduler address {address!r}: {exc}") from exc
            except OSError as exc:
                raise ArrayStoreError(f"cannot reach dask scheduler {address}: {exc}") from exc
            self._own = True
        self.client = client
        threads = sum(client.nthreads().values()) or 1
        self.workers = int(workers or threads)
        self.retries = int(retries)

    def map(self, tasks: Iterable[Task], max_in_flight: int) -> Iterator[tuple[Task, Any]]:
        from distributed import as_completed

        check_in_flight(max_in_flight)
        it = iter(tasks)
        pending: dict[Any, Task] = {}
        ac = as_completed()
        try:
            for task in it:
                fut = self.client.submit(
                    _on_worker, task.fn, *task.args, pure=False, retries=self.retries
                )
                pending[fut] = task
                ac.add(fut)
                if len(pending) >= max_in_flight:
                    break
            while pending:
                fut = next(ac)
                task = pending.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:
                    if isinstance(exc, ArrayStoreError):
                        raise
                    raise ArrayStoreError(
                        f"task {task.key} failed on the dask cluster: {type(exc).__name__}: {exc}"
                    ) from exc
                nxt = next(it, None)
                if nxt is not None:
                    f2 = self.client.submit(
                        _on_worker, nxt.fn, *nxt.args, pure=False, retries=self.retries
                    )
                    pending[f2] = nxt
                    ac.add(f2)
                yield task, result
        finally:
            if pending:  # a failure or an abandoned run: see the module docstring
                from distributed import wait

                futures = list(pending)
                with contextlib.suppress(Exception):
                    wait(futures, timeout=self.drain_timeout)
                self.client.cancel(futures)

    def close(self) -> None:
        if self._own:
            self.client.close()

    def get_config(self) -> dict[str, Any]:
        address = self.client.scheduler.address
        return {"name": self.name, "workers": self.workers, "address": address}


def _check_address(address: str) -> None:
    """Refuse a malformed address before a ``Client`` is built (a failed ``Client`` lingers
    and can block interpreter exit for 20 s in its ``__del__``)."""
    from distributed.comm import parse_address
    from distributed.comm.registry import get_backend

    try:
        scheme, loc = parse_address(address)
        backend = get_backend(scheme)
        with contextlib.suppress(NotImplementedError):  # inproc, ucx: no host:port form
            backend.get_address_host_port(loc)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"bad dask scheduler address {address!r}: {exc}") from None


def _on_worker(fn: Any, *args: Any) -> Any:
    """A task in a worker process, with numpy's huge pages off (see
    :mod:`arraystore._native.alloc`), as local executors run it."""
    with small_pages():
        return fn(*args)
