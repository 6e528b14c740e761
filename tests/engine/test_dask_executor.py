"""The dask executor (``arraystore.engine.executors.dask``) on a real ``LocalCluster``.

One module-scoped cluster (2 worker *processes*, 1 thread each, no dashboard) and its
``Client`` are shared by every test; the module is skipped when ``distributed`` is not
installed. What is checked:

1. the executor matrix: ``stats`` (every op, axis None/0/1, skipna both, memmap and zarr
   lz4) gives results *bit-identical* to the serial and threads executors (same chunks);
2. ``cast`` (value policy f8 -> f4, ``auto``, a refused cast) through dask equals the
   local executors' result and audit; the refused cast leaves the store byte-for-byte;
3. a worker process SIGKILLed mid-plan: the job is rescheduled and gives the right
   result, or (no reschedule allowed) fails with an ``ArrayStoreError`` naming the
   task -- the cast source is intact, nothing half-written is left in the store, and
   no task of the failed job is still running when ``cast`` returns;
4. bad configuration: no scheduler -> ``InvalidArgument``; a malformed address ->
   ``InvalidArgument``; an unreachable one -> ``ArrayStoreError`` within the timeout.

Slowing tasks down for the kill tests: functions *called by* the task functions
(``stats._read_fields``, ``cast.resolve.cast_block``) are replaced inside the worker processes
with ``client.run`` (nested functions, so cloudpickle ships them by value). A restarted
worker is a fresh process and runs the normal code.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from arraystore.testing import LZ4_WARNING, BackendCase, assert_same, tree_hash

distributed = pytest.importorskip("distributed")

import arraystore  # noqa: E402
from arraystore.engine import get_executor  # noqa: E402
from arraystore.engine.executors.dask import DaskExecutor  # noqa: E402
from arraystore.errors import ArrayStoreError, CastError, InvalidArgument  # noqa: E402
from arraystore.ops.cast import CastResult, cast  # noqa: E402
from arraystore.ops.reduce.stats import ALL_OPS  # noqa: E402

pytestmark = pytest.mark.filterwarnings(LZ4_WARNING)

MEMMAP = BackendCase("memmap", None)
ZARR_LZ4 = BackendCase("zarr", "lz4")
CASES = [pytest.param(MEMMAP, id="memmap"), pytest.param(ZARR_LZ4, id="zarr-lz4")]
#: memmap row blocks of 1 MiB at this budget (several tasks, 3 in flight)
MEMORY = "16MiB"
ZARR_ROWS = 16_384


# ------------------------------------------------------------------- the cluster
@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import dask

    # distributed race (2026.8): SpecCluster schedules a check ``lost-worker-timeout``
    # (15 s) after a worker is lost and closes that worker's nanny for good if no worker
    # of the same name is registered *at that moment* -- so a second kill of the same
    # worker ~15 s after the first (its restart in progress) shrinks the cluster to one
    # worker. The kill tests below do exactly that; push the check past the module.
    with (
        dask.config.set({"distributed.deploy.lost-worker-timeout": "1h"}),
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            # dashboard_address=None still serves /health and /metrics on port 8787 and warns
            # (an error here) when another cluster on this machine holds that port
            scheduler_kwargs={"dashboard_address": ":0"},
        ) as cluster,
    ):
        yield cluster


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster) as client:
        yield client


@pytest.fixture
def dask_ex(client: Any) -> DaskExecutor:
    """The executor on the shared client, with both workers up (a kill test restarts one)."""
    client.wait_for_workers(2, timeout=60)
    return DaskExecutor(client=client)


def executors(dask_ex: DaskExecutor) -> dict[str, Any]:
    return {"serial": "serial", "threads": get_executor("threads", workers=2), "dask": dask_ex}


# ------------------------------------------------------------------- helpers


def hidden(store: arraystore.Store) -> list[str]:
    return sorted(e for e in os.listdir(store.path) if e.startswith("."))


def chunks_for(case: BackendCase, ncols: int) -> dict[str, Any]:
    return {"chunks": (ZARR_ROWS, ncols)} if case.is_zarr else {}


def bits_equal(a: Any, b: Any, what: str = "") -> None:
    """Same type/dtype/shape and the same bytes (ints as ints)."""
    if isinstance(a, int) or isinstance(b, int):
        assert type(a) is type(b) and a == b, (what, a, b)
        return
    a, b = np.asarray(a), np.asarray(b)
    assert (a.dtype, a.shape) == (b.dtype, b.shape), (what, a.dtype, b.dtype, a.shape, b.shape)
    if a.dtype == object:
        assert a.tolist() == b.tolist(), what
    else:
        assert a.tobytes() == b.tobytes(), (what, a, b)


def float_data(n: int = 120_000) -> np.ndarray:
    """(n, 7) float64 with NaN (about 1 %), a +/-inf, ties and an all-nonzero column."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, 7))
    x[:, 1] = np.round(x[:, 1])  # many zeros and ties
    x[rng.random(x.shape) < 0.01] = np.nan
    x[:, 6] = np.abs(x[:, 6]) + 1.0  # no zero, no NaN: all() is True
    x[n // 3, 2], x[n - 5, 2] = np.inf, -np.inf
    return x


def int_data(n: int = 120_000) -> np.ndarray:
    rng = np.random.default_rng(8)
    x = rng.integers(-1_000, 1_000, (n, 5), dtype=np.int32)
    x[:, 4] = np.abs(x[:, 4]) + 1
    x[::7, 0] = 0
    return x


def f4_exact(n: int = 150_000) -> np.ndarray:
    """(n, 3) float64 of whole numbers and halves in [-100, 200]: exact in f4."""
    base = np.arange(n * 3, dtype=np.int64).reshape(n, 3)
    return ((base % 601) - 200).astype(np.float64) / 2.0


def comparable(res: CastResult) -> dict[str, Any]:
    """A cast result without what legitimately differs between runs (time, out name)."""
    d = res.to_dict()
    for k in ("seconds", "gb_per_s", "out"):
        d.pop(k)
    return d


# --------------------------------------------------- slow workers, kill a worker
def patch_workers(client: Any, module: str, name: str, delay: float) -> None:
    """In every worker process: ``module.name`` sleeps ``delay`` s before each call."""

    def patch() -> None:
        import importlib
        import time as _time

        mod = importlib.import_module(module)
        orig = getattr(mod, name)
        orig = getattr(orig, "_orig", orig)

        def slow(*args: Any, **kwargs: Any) -> Any:
            _time.sleep(delay)
            return orig(*args, **kwargs)

        slow._orig = orig  # type: ignore[attr-defined]
        setattr(mod, name, slow)

    client.run(patch)


def unpatch_workers(client: Any, module: str, name: str) -> None:
    def unpatch() -> None:
        import importlib

        mod = importlib.import_module(module)
        fn = getattr(mod, name)
        setattr(mod, name, getattr(fn, "_orig", fn))

    client.run(unpatch)


class Killer(threading.Thread):
    """SIGKILLs one worker process ``after`` seconds after the scheduler has tasks on
    every worker (so the victim's task is mid-flight and the survivor is busy too)."""

    def __init__(self, client: Any, after: float, ready: Callable[[], bool] | None = None) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.after = after
        self.ready = ready  # an extra condition to wait for
        self.pids: dict[str, int] = client.run(os.getpid)
        self.killed: int | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            busy = [a for a, keys in self.client.processing().items() if keys and a in self.pids]
            late = time.monotonic() > deadline - 25
            if (
                busy
                and (self.ready is None or self.ready() or late)
                and (len(busy) == len(self.pids) or late)
            ):
                time.sleep(self.after)
                self.killed = self.pids[busy[0]]
                os.kill(self.killed, signal.SIGKILL)
                return
            time.sleep(0.01)


def with_kill(client: Any, after: float, job: Callable[[], Any]) -> Any:
    killer = Killer(client, after)
    killer.start()
    try:
        return job()
    finally:
        killer.join()
        assert killer.killed is not None, "no worker was busy: nothing was killed"


@pytest.fixture
def no_reschedule(cluster: Any) -> Iterator[None]:
    """A task whose worker dies fails at once (``KilledWorker``) instead of being retried."""
    before = cluster.scheduler.allowed_failures
    cluster.scheduler.allowed_failures = 0
    try:
        yield
    finally:
        cluster.scheduler.allowed_failures = before


# ====================================================== 1. the executor matrix
@pytest.mark.parametrize("kind", ["f8", "i4"])
@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("case", CASES)
def test_stats_bit_identical_across_executors(
    store: arraystore.Store, dask_ex: DaskExecutor, case: BackendCase, axis: Any, kind: str
) -> None:
    x = float_data() if kind == "f8" else int_data()
    arr = store.create("x", data=x, **case.kwargs, **chunks_for(case, x.shape[1]))
    for skipna in (False, True):
        results = {
            name: arr.stats(
                ops=ALL_OPS, axis=axis, skipna=skipna, ddof=1, memory=MEMORY, executor=ex
            )
            for name, ex in executors(dask_ex).items()
        }
        ref = results["serial"]["x"]
        # sanity: the reference is numpy's answer where numpy's is exact
        nan_fn = np.nanmax if skipna else np.max
        bits_equal(ref["max"], nan_fn(x, axis=axis), "max vs numpy")
        arg_fn = np.nanargmin if skipna else np.argmin
        assert np.array_equal(ref["argmin"], arg_fn(x, axis=axis))
        assert np.array_equal(ref["all"], np.all(x, axis=axis))
        for name in ("threads", "dask"):
            got = results[name]["x"]
            assert list(got) == list(ALL_OPS)
            for op in ALL_OPS:
                bits_equal(got[op], ref[op], f"{name} {op} skipna={skipna}")
            assert results[name].nbytes == results["serial"].nbytes


def test_where_bit_identical_across_executors(
    store: arraystore.Store, dask_ex: DaskExecutor
) -> None:
    """A ``where=`` mask (an expression, a stored bool array) travels with the tasks to
    the workers: the same bits on every executor, numpy's counts."""
    x = float_data(40_000)
    arr = store.create("x", data=x, backend="zarr", codec="none", chunks=(ZARR_ROWS, 7))
    m = store.create("m", data=np.isfinite(x) & (x > -0.5), backend="memmap")
    ops = [op for op in ALL_OPS if op not in ("argmin", "argmax")]
    for where, w in (("x > -0.5", x > -0.5), (m, np.isfinite(x) & (x > -0.5))):
        res = {
            name: arr.stats(ops=ops, axis=0, where=where, memory=MEMORY, executor=ex)
            for name, ex in executors(dask_ex).items()
        }
        assert np.array_equal(res["serial"]["count"], np.sum(w, axis=0))
        for name in ("threads", "dask"):
            for op in ops:
                bits_equal(res[name][op], res["serial"][op], f"{name} {op} where={where}")


def test_task_count_and_in_flight_on_the_cluster(
    store: arraystore.Store, dask_ex: DaskExecutor
) -> None:
    """Many small tasks, more than fit in flight: every result comes back, merged in
    chunk order, through ``get_executor('dask', client=...)``; config round-trips."""
    x = float_data(40_000)
    arr = store.create("x", data=x, backend="zarr", codec="none", chunks=(1_000, 7))
    ex = get_executor("dask", client=dask_ex.client)
    assert ex.workers == 2
    seen: list[int] = []
    res = arr.stats(
        ops=("sum", "argmax", "count"),
        axis=0,
        skipna=True,
        memory="12MiB",  # 5 MiB per task: 2 in flight for 40 tasks
        executor=ex,
    )
    ref = arr.stats(ops=("sum", "argmax", "count"), axis=0, skipna=True, executor="serial")
    for op in ("sum", "argmax", "count"):
        bits_equal(res["x"][op], ref["x"][op], op)
    from arraystore.ops.reduce.stats import reduce

    reduce(arr, ("count",), memory="12MiB", executor=ex, progress=lambda t, r: seen.append(t.key))
    assert sorted(seen) == list(range(40))
    cfg = ex.get_config()
    assert cfg == {"name": "dask", "workers": 2, "address": dask_ex.client.scheduler.address}


def test_executor_by_name_from_the_environment(
    store: arraystore.Store, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``executor="dask"`` + ``ARRAYSTORE_SCHEDULER``: its own Client, closed afterwards."""
    client.wait_for_workers(2, timeout=60)
    monkeypatch.setenv("ARRAYSTORE_SCHEDULER", client.scheduler.address)
    x = int_data(20_000)
    arr = store.create("x", data=x, backend="zarr", codec="lz4", chunks=(4_096, 5))
    res = arr.stats(ops=("sum", "min", "any"), axis=None, executor="dask")
    assert res["x"]["sum"] == int(x.sum()) and res["x"]["min"] == x.min()
    assert bool(res["x"]["any"])
    assert client.status == "running"  # the shared client was not closed


# ================================================================== 2. cast
@pytest.mark.parametrize("case", CASES)
def test_cast_value_policy_f8_to_f4_matches_local(
    store: arraystore.Store, dask_ex: DaskExecutor, case: BackendCase
) -> None:
    data = f4_exact()
    store.create("x", data=data, **case.kwargs, **chunks_for(case, 3))
    before = tree_hash(store.path / "x")
    local = cast(store, "x", "f4", out="y_local", executor="threads", workers=2, memory=MEMORY)
    remote = cast(store, "x", "f4", out="y_dask", executor=dask_ex, memory=MEMORY)
    assert tree_hash(store.path / "x") == before
    assert store.names() == ["x", "y_dask", "y_local"] and hidden(store) == []
    assert comparable(remote) == comparable(local)
    assert remote.reports["x"].ok
    got = store["y_dask"]
    assert_same(got[...], data.astype("f4"))
    assert_same(got[...], store["y_local"][...])
    assert got.meta.backend == case.backend and got.meta.codec == store["x"].meta.codec
    assert got.meta.chunks == store["y_local"].meta.chunks
    # the chunk files are the same bytes (only the history's time stamp differs)
    data_files = sorted(
        p.relative_to(store.path / "y_local")
        for p in (store.path / "y_local").rglob("*")
        if p.is_file() and p.name not in ("zarr.json", "arraystore.json")
    )
    assert data_files
    for rel in data_files:
        assert (store.path / "y_dask" / rel).read_bytes() == (
            store.path / "y_local" / rel
        ).read_bytes(), rel


@pytest.mark.parametrize("case", CASES)
def test_cast_auto_in_place_matches_local(
    store: arraystore.Store, dask_ex: DaskExecutor, case: BackendCase
) -> None:
    data = np.trunc(f4_exact()) * 3.0  # whole numbers in [-300, 600]
    for name in ("a", "b"):
        store.create(name, data=data, **case.kwargs, **chunks_for(case, 3))
    local = cast(store, "a", "auto", executor="serial", memory=MEMORY)
    remote = cast(store, "b", "auto", executor=dask_ex, memory=MEMORY)
    assert remote.plan == {"b": local.plan["a"]}
    assert remote.plan["b"][1] != "float64"  # auto found something smaller
    assert store["b"].dtype == store["a"].dtype
    assert_same(store["b"][...], store["a"][...])
    assert_same(store["b"][...].astype("f8"), data)
    assert store["b"].meta.history[-1]["op"] == "cast"
    assert store.names() == ["a", "b"] and hidden(store) == []


@pytest.mark.parametrize("case", CASES)
def test_refused_cast_through_dask_leaves_store_unchanged(
    store: arraystore.Store, dask_ex: DaskExecutor, case: BackendCase
) -> None:
    data = f4_exact()
    data[77_777, 1] = 0.1  # not exact in f4
    data[3, 0] = 1e300  # out of f4 range
    store.create("x", data=data, **case.kwargs, **chunks_for(case, 3))
    before = tree_hash(store.path)
    messages = []
    for ex in ("serial", dask_ex):
        with pytest.raises(CastError) as info:
            cast(store, "x", "f4", executor=ex, memory=MEMORY)
        messages.append(str(info.value))
        assert tree_hash(store.path) == before
        assert store.names() == ["x"] and hidden(store) == []
    assert messages[0] == messages[1]  # same totals over the whole array
    assert "nothing was written" in messages[1]


# ============================================================ 3. worker death
@pytest.mark.parametrize("case", CASES)
def test_stats_survive_a_killed_worker(
    store: arraystore.Store, client: Any, dask_ex: DaskExecutor, case: BackendCase
) -> None:
    x = float_data()
    arr = store.create("x", data=x, **case.kwargs, **chunks_for(case, 7))
    ref = arr.stats(ops=ALL_OPS, axis=0, memory=MEMORY, executor="serial")
    patch_workers(client, "arraystore.ops.reduce.stats", "_read_fields", 0.4)
    try:
        got = with_kill(
            client,
            0.1,
            lambda: arr.stats(ops=ALL_OPS, axis=0, memory=MEMORY, executor=dask_ex),
        )
    finally:
        unpatch_workers(client, "arraystore.ops.reduce.stats", "_read_fields")
    for op in ALL_OPS:
        bits_equal(got["x"][op], ref["x"][op], op)


@pytest.mark.parametrize("case", CASES)
def test_cast_survives_a_killed_worker(
    store: arraystore.Store, client: Any, dask_ex: DaskExecutor, case: BackendCase
) -> None:
    data = f4_exact()
    store.create("x", data=data, **case.kwargs, **chunks_for(case, 3))
    before = tree_hash(store.path / "x")
    patch_workers(client, "arraystore.ops.cast.resolve", "cast_block", 0.4)
    try:
        res = with_kill(
            client, 0.1, lambda: cast(store, "x", "f4", out="y", executor=dask_ex, memory=MEMORY)
        )
    finally:
        unpatch_workers(client, "arraystore.ops.cast.resolve", "cast_block")
    assert res.reports["x"].ok and res.reports["x"].to_dict() == (
        cast(store, "x", "f4", out="z", executor="serial", memory=MEMORY).reports["x"].to_dict()
    )
    assert tree_hash(store.path / "x") == before
    assert_same(store["y"][...], data.astype("f4"))
    assert store.names() == ["x", "y", "z"] and hidden(store) == []
    stray = [p.name for p in (store.path / "y").rglob("*") if p.name.endswith(".partial")]
    assert stray == []


@pytest.mark.parametrize("case", CASES)
def test_cast_fails_cleanly_when_a_worker_dies(
    store: arraystore.Store,
    client: Any,
    dask_ex: DaskExecutor,
    no_reschedule: None,
    case: BackendCase,
) -> None:
    data = f4_exact()
    store.create("x", data=data, **case.kwargs, **chunks_for(case, 3))
    before = tree_hash(store.path)
    log = store.path.parent / "calls.log"  # outside the store: worker-side call log

    def patch() -> None:  # log every cast_block call in the workers, slowly
        import arraystore.ops.cast.resolve as mod

        orig = mod.cast_block
        orig = getattr(orig, "_orig", orig)

        def slow(*args: Any, **kwargs: Any) -> Any:
            with open(log, "a") as fh:
                fh.write(f"start {os.getpid()} {time.time()!r}\n")
            time.sleep(0.5)
            out = orig(*args, **kwargs)
            with open(log, "a") as fh:
                fh.write(f"end {os.getpid()} {time.time()!r}\n")
            return out

        slow._orig = orig  # type: ignore[attr-defined]
        mod.cast_block = slow

    def both_in_cast_block() -> bool:
        text = log.read_text() if log.exists() else ""
        return len({ln.split()[1] for ln in text.splitlines() if ln.startswith("start")}) >= 2

    client.run(patch)
    killer = Killer(client, 0.1, ready=both_in_cast_block)
    killer.start()
    try:
        with pytest.raises(ArrayStoreError) as info:
            cast(store, "x", "f4", executor=dask_ex, memory=MEMORY)
        returned = time.time()
    finally:
        killer.join()
        unpatch_workers(client, "arraystore.ops.cast.resolve", "cast_block")
    assert killer.killed is not None
    msg = str(info.value)
    assert "failed on the dask cluster" in msg and "KilledWorker" in msg, msg
    # No task of the failed cast may run on after cast() returned (the clean-up would
    # race with its writes): wait until every call begun in a surviving worker has
    # ended (a slow end is what we look for), then compare the times. A task that was
    # still queued on a worker may even start after the error: give it time to show up.
    time.sleep(1.5)
    deadline = time.monotonic() + 20
    while True:
        lines = [ln.split() for ln in log.read_text().splitlines()] if log.exists() else []
        begun = [ln for ln in lines if ln[0] == "start" and int(ln[1]) != killer.killed]
        ended = [float(ln[2]) for ln in lines if ln[0] == "end"]
        if len(ended) >= len(begun) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(ended) >= len(begun), ("cast_block calls still running after 20 s", lines)
    late = [round(t - returned, 3) for t in ended if t > returned]
    assert not late, f"cast_block calls of the failed cast ended {late} s after it raised"
    assert tree_hash(store.path) == before
    assert store.names() == ["x"] and hidden(store) == []
    # the store is usable: the same cast now succeeds
    client.wait_for_workers(2, timeout=60)
    cast(store, "x", "f4", executor=dask_ex, memory=MEMORY)
    assert_same(store["x"][...], data.astype("f4"))


# ============================================================= 4. bad config
def test_no_scheduler_is_invalid_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARRAYSTORE_SCHEDULER", raising=False)
    with pytest.raises(InvalidArgument, match="ARRAYSTORE_SCHEDULER"):
        get_executor("dask")


@pytest.mark.parametrize(
    "address", ["nonsense", "foo://127.0.0.1:1", "tcp://127.0.0.1:notaport", "tcp://:"]
)
def test_malformed_address_is_invalid_argument(address: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(InvalidArgument, match="bad dask scheduler address"):
        get_executor("dask", address=address)
    assert time.monotonic() - t0 < 5


def test_unreachable_scheduler_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARRAYSTORE_SCHEDULER", "tcp://127.0.0.1:1")  # nothing listens on 1
    t0 = time.monotonic()
    with pytest.raises(ArrayStoreError, match=r"cannot reach dask scheduler tcp://127\.0\.0\.1:1"):
        get_executor("dask", timeout="1s")
    assert time.monotonic() - t0 < 5
