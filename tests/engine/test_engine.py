"""Plans and executors: one suite run against every executor; no timing is asserted."""

from __future__ import annotations

import pickle
import random
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arraystore.engine import (
    Executor,
    Plan,
    SerialExecutor,
    Task,
    ThreadExecutor,
    available_executors,
    get_executor,
    register_executor,
    run,
)
from arraystore.engine import executors as executors_module
from arraystore.errors import InvalidArgument, MemoryBudgetError, UnknownExecutorError

MiB, GiB = 1024**2, 1024**3
EXECUTORS = ["serial", "threads"]


# --- picklable top-level task functions and a thread-safe recorder -------------------


class Tracker:
    """Counts tasks started and running at once (peak), under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = 0
        self.running = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.started += 1
            self.running += 1
            self.peak = max(self.peak, self.running)

    def leave(self) -> None:
        with self.lock:
            self.running -= 1


def square(x: int) -> int:
    return x * x


def label(key: int, delay: float) -> str:
    time.sleep(delay)
    return f"<{key}>"


def tracked(tracker: Tracker, key: int, delay: float = 0.0, fail: Sequence[int] = ()) -> int:
    tracker.enter()
    try:
        time.sleep(delay)
        if key in fail:
            raise ValueError(f"boom {key}")
        return key
    finally:
        tracker.leave()


def tracked_plan(
    tracker: Tracker, n: int, nbytes: int = MiB, delay: float = 0.0, fail: Sequence[int] = ()
) -> Plan:
    tasks = [Task(k, tracked, (tracker, k, delay, tuple(fail)), nbytes) for k in range(n)]
    return Plan(tuple(tasks), name="tracked")


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    workers = 1 if request.param == "serial" else 4
    with get_executor(request.param, workers=workers) as ex:
        yield ex


# --- Task and Plan --------------------------------------------------------------------


def test_task_calls_fn_with_args_and_pickles() -> None:
    task = Task(3, square, (7,), nbytes=64)
    assert task() == 49
    again = pickle.loads(pickle.dumps(task))
    assert again.key == 3 and again.nbytes == 64 and again() == 49


def test_plan_sorts_by_key_and_validates() -> None:
    plan = Plan((Task(2, square, (2,), 10), Task(0, square, (0,), 30), Task(1, square, (1,), 20)))
    assert [t.key for t in plan.tasks] == [0, 1, 2]
    assert plan.max_task_bytes == 30 and len(plan) == 3
    assert plan.check(budget=100, workers=1) == 2  # 1 worker * read-ahead 2
    assert plan.check(budget=60, workers=8) == 2  # memory-bound: 60 // 30
    assert Plan(()).max_task_bytes == 0
    with pytest.raises(InvalidArgument, match="duplicate task key 1"):
        Plan((Task(1, square, (1,), 1), Task(1, square, (2,), 1)))
    with pytest.raises(InvalidArgument, match="nbytes"):
        Task(0, square, (1,), -1)


# --- run: results, ordering, budget ---------------------------------------------------


def test_run_returns_results_in_key_order(executor: Executor) -> None:
    keys = list(range(30))
    random.Random(0).shuffle(keys)
    plan = Plan(tuple(Task(k, square, (k,), MiB) for k in keys))
    assert run(plan, executor, 8 * MiB) == [k * k for k in range(30)]
    assert run(plan, executor, "8MiB", merge=lambda a, b: a + b, init=0) == sum(
        k * k for k in range(30)
    )


def test_run_empty_plan(executor: Executor) -> None:
    assert run(Plan(()), executor, MiB) == []
    assert run(Plan(()), executor, MiB, merge=lambda a, b: a + b, init="x") == "x"


def test_run_default_budget(executor: Executor) -> None:
    assert run(Plan((Task(0, square, (3,), MiB),)), executor) == [9]


@settings(max_examples=25, deadline=None)
@given(
    delays=st.lists(st.sampled_from([0.0, 0.0005, 0.001, 0.002]), min_size=1, max_size=24),
    in_flight=st.integers(min_value=1, max_value=8),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_ordered_merge_is_independent_of_timing(
    delays: list[float], in_flight: int, seed: int
) -> None:
    keys = list(range(len(delays)))
    random.Random(seed).shuffle(keys)
    plan = Plan(tuple(Task(k, label, (k, delays[k]), MiB) for k in keys))
    expected = "".join(f"<{k}>" for k in range(len(delays)))
    with SerialExecutor() as serial, ThreadExecutor(4) as threads:
        for ex in (serial, threads):
            # string and list concatenation are not commutative: key order is required
            assert run(plan, ex, in_flight * MiB, merge=lambda a, b: a + b, init="") == expected
            lists = run(plan, ex, in_flight * MiB, merge=lambda a, b: [*a, b], init=[])
            assert "".join(lists) == expected


def test_in_flight_tasks_are_bounded_by_the_budget(executor: Executor) -> None:
    tracker = Tracker()
    plan = tracked_plan(tracker, 40, nbytes=MiB, delay=0.001)
    allowed = plan.check(3 * MiB, executor.workers)
    assert allowed == min(3, 2 * executor.workers)
    assert run(plan, executor, 3 * MiB) == list(range(40))
    assert 1 <= tracker.peak <= allowed
    assert tracker.started == 40 and tracker.running == 0


@pytest.mark.parametrize("max_in_flight", [1, 2, 5])
def test_map_pulls_lazily_and_bounds_unconsumed_tasks(
    executor: Executor, max_in_flight: int
) -> None:
    tracker = Tracker()
    pulled = 0

    def tasks() -> Iterator[Task]:
        nonlocal pulled
        for k in range(25):
            pulled += 1
            yield Task(k, tracked, (tracker, k), MiB)

    consumed = 0
    for task, result in executor.map(tasks(), max_in_flight):
        assert task.key == result
        assert pulled - consumed <= max_in_flight  # the task being handed over counts
        consumed += 1
        time.sleep(0.0005)  # a slow consumer: finished tasks must not pile up
    assert consumed == pulled == 25


def test_plan_over_budget_is_refused_before_any_task_runs(executor: Executor) -> None:
    tracker = Tracker()
    tasks = [*tracked_plan(tracker, 5).tasks, Task(5, tracked, (tracker, 5), GiB)]
    plan = Plan(tuple(tasks), name="big")
    with pytest.raises(MemoryBudgetError) as info:
        run(plan, executor, 256 * MiB)
    assert str(info.value) == (
        "plan needs at least 1.0 GiB per task but --memory is 256.0 MiB; "
        "raise --memory or use smaller chunks"
    )
    with pytest.raises(InvalidArgument, match="memory budget must be positive"):
        run(plan, executor, 0)
    assert tracker.started == 0


# --- failures -------------------------------------------------------------------------


def test_task_exception_propagates_and_stops_submission(executor: Executor) -> None:
    tracker = Tracker()
    plan = tracked_plan(tracker, 100, delay=0.0005, fail=[3])
    allowed = plan.check(64 * MiB, executor.workers)
    with pytest.raises(ValueError, match="boom 3"):
        run(plan, executor, 64 * MiB)
    assert tracker.running == 0  # in-flight tasks were waited for
    assert tracker.started <= 3 + allowed  # keys > 3 + allowed - 1 were never submitted


def test_first_failure_in_key_order_wins(executor: Executor) -> None:
    tracker = Tracker()
    plan = tracked_plan(tracker, 8, fail=[5, 2])  # one window: all 8 in flight at once
    with pytest.raises(ValueError, match="boom 2"):
        run(plan, executor, 8 * MiB)
    assert tracker.running == 0


def test_merge_exception_cancels_and_waits(executor: Executor) -> None:
    tracker = Tracker()
    plan = tracked_plan(tracker, 100, delay=0.0005)

    def merge(acc: int, value: int) -> int:
        if value == 4:
            raise RuntimeError("merge failed")
        return acc + value

    with pytest.raises(RuntimeError, match="merge failed"):
        run(plan, executor, 64 * MiB, merge=merge, init=0)
    assert tracker.running == 0
    assert tracker.started < 100


def test_closing_map_early_leaves_nothing_running(executor: Executor) -> None:
    tracker = Tracker()
    plan = tracked_plan(tracker, 50, delay=0.0005)
    results = executor.map(plan.tasks, 4)
    assert next(results)[1] in range(4)  # (threads hand over results as they finish)
    results.close()  # type: ignore[attr-defined]
    assert tracker.running == 0
    assert tracker.started <= 4  # the 4 pulled before the first result was handed over


def test_map_rejects_a_non_positive_bound(executor: Executor) -> None:
    with pytest.raises(InvalidArgument, match="max_in_flight"):
        list(executor.map([Task(0, square, (1,), 1)], 0))


def test_progress_is_called_once_per_task(executor: Executor) -> None:
    seen: list[tuple[int, Any]] = []
    plan = Plan(tuple(Task(k, square, (k,), MiB) for k in range(20)))
    run(plan, executor, 4 * MiB, progress=lambda task, result: seen.append((task.key, result)))
    assert sorted(seen) == [(k, k * k) for k in range(20)]


# --- executors by name ----------------------------------------------------------------


def test_available_and_default_executors() -> None:
    assert {"serial", "threads"} <= set(available_executors())
    with get_executor() as ex:
        assert isinstance(ex, ThreadExecutor) and ex.name == "threads" and ex.workers >= 1
    with get_executor("Threads", workers=3) as ex:
        assert ex.workers == 3 and ex.get_config() == {"name": "threads", "workers": 3}
    with get_executor("serial") as ex:
        assert isinstance(ex, SerialExecutor) and ex.workers == 1


def test_executor_instance_passes_through() -> None:
    with ThreadExecutor(2) as ex:
        assert get_executor(ex) is ex
        with pytest.raises(InvalidArgument):
            get_executor(ex, workers=4)


def test_unknown_executor_lists_known_names() -> None:
    with pytest.raises(UnknownExecutorError) as info:
        get_executor("nope")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "unknown executor 'nope'; known executors: dask, serial, threads"


def test_register_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors_module, "_FACTORIES", dict(executors_module._FACTORIES))
    register_executor("inline", SerialExecutor)
    assert "inline" in available_executors()
    assert isinstance(get_executor("inline"), SerialExecutor)
    with pytest.raises(InvalidArgument, match="registered already"):
        register_executor("inline", ThreadExecutor)
    register_executor("inline", ThreadExecutor, replace=True)
    with get_executor("inline", workers=2) as ex:
        assert isinstance(ex, ThreadExecutor)


def test_bad_worker_counts() -> None:
    with pytest.raises(InvalidArgument):
        ThreadExecutor(0)
    with pytest.raises(InvalidArgument):
        get_executor("serial", workers=2)


def test_thread_executor_is_reusable_after_close() -> None:
    ex = ThreadExecutor(2)
    plan = Plan(tuple(Task(k, square, (k,), 1) for k in range(5)))
    assert run(plan, ex, MiB) == [0, 1, 4, 9, 16]
    ex.close()
    assert run(plan, ex, MiB) == [0, 1, 4, 9, 16]
    ex.close()


def _hugepage_setting() -> bool:
    from numpy._core.multiarray import _set_madvise_hugepage

    current = _set_madvise_hugepage(False)
    _set_madvise_hugepage(current)
    return bool(current)


def test_plans_run_without_numpy_huge_pages_and_restore_the_setting() -> None:
    """numpy's madvise(MADV_HUGEPAGE) of big arrays is off while a plan runs (first
    touches of huge pages cost more than the streaming work) and back afterwards, also
    when a task fails."""
    from numpy._core.multiarray import _set_madvise_hugepage

    from arraystore._native.alloc import raw_buffer

    before = _set_madvise_hugepage(True)
    try:
        tasks = tuple(Task(i, _hugepage_setting, (), 1) for i in range(3))
        assert run(Plan(tasks), get_executor("threads", workers=2), "1MiB") == [False] * 3
        assert _hugepage_setting() is True

        def boom() -> None:
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            run(Plan((Task(0, boom, (), 1),)), get_executor("serial"), "1MiB")
        assert _hugepage_setting() is True
    finally:
        _set_madvise_hugepage(before)
    buf = raw_buffer(5 * 2**20)
    assert buf.dtype == np.uint8 and buf.size == 5 * 2**20 and buf.flags.writeable
    buf[-1] = 7
    assert raw_buffer(0).size == 1
