"""Run plans on a dask.distributed cluster (``executor="dask"``).

Tasks are shipped as small picklable descriptions — the task function and its arguments:
a backend handle (path + metadata, no open files, no data), a region and the operation's
settings — never numpy blocks from the client. Workers read and write the storage
themselves, so the data must live on storage every worker sees (a shared POSIX path).
Results (reduction states, per-chunk reports) come back and are merged on the client in
chunk order, so results are bit-identical to the local executors for the same chunking.

The scheduler: ``executor=DaskExecutor(client=...)``, ``address="tcp://host:8786"``, or
the ``ARRAYSTORE_SCHEDULER`` environment variable. ``workers`` is the cluster's thread
count; the memory budget bounds tasks in flight over the whole cluster. A task lost with
its worker is retried (``retries``, default 1) and otherwise fails the job with a clear
error; a cast then leaves its source intact (it only ever writes a new array).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from arraystore.core.errors import ArrayStoreError, InvalidArgument
from arraystore.engine.executors.base import Executor, check_in_flight

if TYPE_CHECKING:
    from arraystore.engine.plan import Task


class DaskExecutor(Executor):
    name = "dask"

    def __init__(
        self,
        workers: int | None = None,
        client: Any = None,
        address: str | None = None,
        retries: int = 1,
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
                    "the dask executor needs a scheduler: --scheduler tcp://HOST:PORT, "
                    "ARRAYSTORE_SCHEDULER, or executor=DaskExecutor(client=...)"
                )
            try:
                client = Client(address, timeout="10s")
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
                fut = self.client.submit(task.fn, *task.args, pure=False, retries=self.retries)
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
                    f2 = self.client.submit(nxt.fn, *nxt.args, pure=False, retries=self.retries)
                    pending[f2] = nxt
                    ac.add(f2)
                yield task, result
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        if self._own:
            self.client.close()

    def get_config(self) -> dict[str, Any]:
        address = self.client.scheduler.address
        return {"name": self.name, "workers": self.workers, "address": address}
