"""The optional numba kernels are built once per process, even when worker threads ask
for them at the same moment: a thread must never get None (numpy path) while another
gets the kernel, or results would depend on thread timing."""

from __future__ import annotations

import threading

import pytest

from arraystore.core.casting import fast as casting_fast
from arraystore.ops.reduce.kernels import numba as kernels_numba


@pytest.mark.parametrize("mod", [kernels_numba, casting_fast], ids=["stats", "cast"])
def test_concurrent_first_load_sees_one_kernel(mod) -> None:
    if mod.KERNEL.get() is None:
        pytest.skip("numba not installed")
    for _ in range(3):
        mod.KERNEL.reset()
        n = 8
        barrier = threading.Barrier(n)
        got: list[object] = []

        def go(barrier: threading.Barrier, got: list[object]) -> None:
            barrier.wait()
            got.append(mod.KERNEL.get())

        threads = [threading.Thread(target=go, args=(barrier, got)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(k is not None for k in got), got
        assert len({id(k) for k in got}) == 1


def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from arraystore._native.jit import LazyKernel

    built: list[int] = []
    k = LazyKernel(lambda: built.append(1) or "kernel")
    monkeypatch.setenv("ARRAYSTORE_NO_NUMBA", "1")
    assert k.get() is None and not built
    k.reset()
    monkeypatch.delenv("ARRAYSTORE_NO_NUMBA")
    assert k.get() == "kernel" and built == [1]


def test_prewarm_builds_in_the_background() -> None:
    from arraystore._native.jit import LazyKernel

    started = threading.Event()
    calls: list[tuple[int, ...]] = []

    def build() -> object:
        started.set()
        return lambda *a: calls.append(a)

    k = LazyKernel(build)
    k.prewarm(lambda: [(1, 2)])
    assert started.wait(10)
    assert k.get() is not None
    for _ in range(100):
        if calls:
            break
        threading.Event().wait(0.01)
    assert calls == [(1, 2)]
