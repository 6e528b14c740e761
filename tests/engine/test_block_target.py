"""``engine.memory.block_target``: the one rule sizing a task's block from the budget.

Properties (as rechunker's ``tests/test_algorithm.py`` does for its rechunking plans):
a block chosen by the budget fits it with every worker busy (``max_in_flight`` lets all
``workers * read_ahead`` tasks run), the floor and the cap hold, and the result grows
with the budget and shrinks with the workers and the overhead. Then the four ops that
size blocks with it (stats, cast, map, where) get the numbers their own formulas gave
before the rule was shared: first the rule with each op's parameters, then the chunks
the ops really choose on a store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.engine.memory import READ_AHEAD, block_target, max_in_flight
from arraystore.errors import InvalidArgument
from arraystore.ops.cast import cast
from arraystore.ops.map.blocks import map_blocks, map_expr, where
from arraystore.ops.reduce.stats import task_regions

KiB, MiB, GiB = 2**10, 2**20, 2**30
PERS = ("output", "input", "row")


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of one block_target call (bytes per element or per row)."""
    per = draw(st.sampled_from(PERS))
    small = st.integers(0, 64) if per != "row" else st.integers(0, 4 * KiB)
    return {
        "budget": draw(st.one_of(st.integers(0, 4 * KiB), st.integers(0, 2**40))),
        "workers": draw(st.integers(1, 64)),
        "read_ahead": draw(st.integers(1, 4)),
        "inputs": draw(small),
        "output": draw(small),
        "temps": draw(small),
        "overhead": draw(st.one_of(st.just(0), st.integers(0, 64 * MiB))),
        "cap": draw(st.integers(1, 2**31)),
        "floor": draw(st.integers(0, 4 * MiB)),
        "per": per,
        "floor_within_share": draw(st.booleans()),
    }


def _held(kw: dict[str, Any]) -> int:
    return max(1, kw["inputs"] + kw["output"] + kw["temps"])


def _unit(kw: dict[str, Any]) -> int:
    """Bytes per element of what the result measures (a row's bytes for rows)."""
    return {"output": kw["output"], "input": kw["inputs"], "row": _held(kw)}[kw["per"]]


def _share(kw: dict[str, Any]) -> int:
    return int(kw["budget"] // (kw["workers"] * kw["read_ahead"]))


def _floor(kw: dict[str, Any]) -> int:
    """The floor in force: lowered to the task's share of the budget if asked."""
    if kw["floor_within_share"]:
        return min(kw["floor"], _share(kw) * _unit(kw) // _held(kw))
    return int(kw["floor"])


def _block_bytes(kw: dict[str, Any], result: int) -> int:
    """Bytes a task holds for a block of ``result`` (bytes of ``per``, or rows)."""
    if kw["per"] == "row":
        return result * _held(kw)
    return -(-result * _held(kw) // _unit(kw))


@given(rules())
def test_a_block_chosen_by_the_budget_fits_it_with_every_worker_busy(kw: dict[str, Any]) -> None:
    result = block_target(**kw)
    measured = result * _held(kw) if kw["per"] == "row" else result
    by_budget = measured > max(1, _floor(kw)) and (kw["per"] != "row" or result > 1)
    if _unit(kw) == 0 or not by_budget:
        return  # nothing measured, or the floor (not the budget) chose the size
    task = _block_bytes(kw, result) + kw["overhead"]
    tasks = kw["workers"] * kw["read_ahead"]
    assert tasks * task <= kw["budget"]
    assert max_in_flight(kw["budget"], task, kw["workers"], kw["read_ahead"]) == tasks


@given(rules())
def test_the_floor_holds(kw: dict[str, Any]) -> None:
    result = block_target(**kw)
    assert result >= 1
    if kw["per"] == "row":
        assert result >= _floor(kw) // _held(kw)
    else:
        assert result >= _floor(kw)
        if not kw["floor_within_share"]:
            assert result >= kw["floor"]


@given(rules())
def test_the_cap_holds(kw: dict[str, Any]) -> None:
    result = block_target(**kw)
    if kw["per"] == "row":  # the cap bounds a task's bytes, one row at least
        assert result * _held(kw) <= max(kw["cap"], _floor(kw), _held(kw))
    else:
        assert result <= max(kw["cap"], _floor(kw), 1)


@given(rules(), st.integers(0, 2**40), st.integers(1, 64), st.integers(0, 64 * MiB))
def test_monotone_in_budget_workers_and_overhead(
    kw: dict[str, Any], more: int, workers: int, overhead: int
) -> None:
    result = block_target(**kw)
    assert block_target(**{**kw, "budget": kw["budget"] + more}) >= result
    assert block_target(**{**kw, "workers": kw["workers"] + workers}) <= result
    assert block_target(**{**kw, "overhead": kw["overhead"] + overhead}) <= result


@given(rules(), st.integers(0, 2**40))
def test_the_budget_alone_gives_the_floor_or_the_cap_at_the_ends(
    kw: dict[str, Any], budget: int
) -> None:
    kw = {**kw, "floor_within_share": False, "overhead": 0}
    floor, cap = kw["floor"], max(kw["cap"], kw["floor"], 1)
    result = block_target(**{**kw, "budget": 0})
    assert result == (max(1, floor // _held(kw)) if kw["per"] == "row" else max(1, floor))
    if _unit(kw):
        huge = block_target(**{**kw, "budget": 2**80})
        assert huge == (max(1, cap // _held(kw)) if kw["per"] == "row" else cap)


@pytest.mark.parametrize(
    "bad",
    [
        {"workers": 0},
        {"read_ahead": 0},
        {"budget": -1},
        {"inputs": -1},
        {"overhead": -1},
        {"floor": -1},
        {"per": "block"},
    ],
)
def test_bad_arguments_are_refused(bad: dict[str, Any]) -> None:
    kw: dict[str, Any] = {"budget": GiB, "workers": 2, "cap": MiB, "floor": KiB, **bad}
    with pytest.raises(InvalidArgument):
        block_target(**kw)


# ------------------------------------ each op's parameters: the numbers of before
# Expected numbers: the ops' own formulas before block_target (commit 2088a97).


def _stats(budget: int) -> int:  # ops.reduce.stats.task_regions (memmap)
    return block_target(
        budget, 4, read_ahead=1, inputs=1, per="input", overhead=4 * MiB,
        cap=128 * MiB, floor=MiB, floor_within_share=True,
    )  # fmt: skip


def _cast(budget: int) -> int:  # ops.cast._cast_chunks (memmap)
    return block_target(
        budget, 4, read_ahead=1, inputs=1, output=1, temps=1, per="input",
        overhead=3 * MiB, cap=64 * MiB, floor=MiB, floor_within_share=True,
    )  # fmt: skip


def _grid(budget: int, workers: int, overhead: int, item: int, fn: bool, ins: int) -> int:
    return block_target(  # ops.map.blocks._grid
        budget, workers, inputs=ins, output=item, temps=2 * item if fn else 0,
        overhead=overhead, cap=8 * MiB, floor=256 * KiB,
    )  # fmt: skip


def _rows(budget: int, workers: int, row: int, out_row: int, temps: int) -> int:
    return block_target(  # ops.map.where._rows_per_block
        budget, workers, inputs=2 * row, output=2 * out_row, temps=1, overhead=2 * temps,
        cap=8 * MiB, floor=256 * KiB, per="row",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("budget", "expected"),
    [(0, 1), (3, 1), (1000, 250), (MiB, 256 * KiB), (16 * MiB, MiB), (17 * MiB, MiB),
     (64 * MiB, 12 * MiB), (300 * MiB, 71 * MiB), (GiB, 128 * MiB), (4 * GiB, 128 * MiB)],
)  # fmt: skip
def test_stats_blocks_are_the_old_ones(budget: int, expected: int) -> None:
    assert _stats(budget) == expected


@pytest.mark.parametrize(
    ("budget", "expected"),
    [(0, 1), (11, 1), (1000, 83), (12 * MiB, MiB), (24 * MiB, MiB),
     (100 * MiB, 7_689_557), (GiB, 64 * MiB), (4 * GiB, 64 * MiB)],
)  # fmt: skip
def test_cast_blocks_are_the_old_ones(budget: int, expected: int) -> None:
    assert _cast(budget) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((24 * MiB, 2, 1024, 8, False, 16), 2_096_810),
        ((8 * MiB, 1, 1024, 8, False, 16), 1_397_760),
        ((3 * MiB, 2, 1024, 8, False, 16), 256 * KiB),  # the floor
        ((GiB, 4, 0, 8, False, 8), 8 * MiB),  # the cap
        ((24 * MiB, 2, 0, 4, True, 4), 1_572_864),
        ((MiB, 8, 0, 4, True, 4), 256 * KiB),
        ((256 * MiB, 1, 0, 4, True, 4), 8 * MiB),
        ((64 * MiB, 2, 3 * MiB, 1, False, 24), 545_259),
    ],
)
def test_map_blocks_are_the_old_ones(args: tuple[Any, ...], expected: int) -> None:
    assert _grid(*args) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((4 * MiB, 2, 24, 0, MiB), 5_349),
        ((64 * MiB, 2, 24, 8, 512 * KiB), 129_055),
        ((GiB, 1, 24, 24, 100_000), 86_480),  # the cap: 8 MiB of 97-byte rows
        ((0, 1, 8, 8, 0), 7_943),  # the floor
        ((64 * MiB, 1, 100 * MiB, 0, 0), 1),  # one row bigger than everything
    ],
)
def test_where_rows_are_the_old_ones(args: tuple[Any, ...], expected: int) -> None:
    assert _rows(*args) == expected


# -------------------------------------------- the chunks the ops really choose
# Expected chunks: what the ops chose before block_target (commit 2088a97).


@pytest.fixture(scope="module")
def sized(tmp_path_factory: pytest.TempPathFactory) -> arraystore.Store:
    store = arraystore.open(Path(tmp_path_factory.mktemp("sizes")) / "s.store", mode="a")
    x = np.arange(1_000_000, dtype="f8")
    store.create("a", data=x)
    store.create("b", data=x[::-1].copy())
    store.create("m2", (300_000, 7), "f4", fill="range")
    t = np.zeros(500_000, dtype=[("qty", "i4"), ("price", "f8"), ("v", "f4", (3,))])
    t["qty"] = np.arange(len(t)) % 50
    store.create("t", data=t)
    store.create("big", (40_000_000,), "f8")  # zeros: only its shape matters
    store.create("src", (9_000_000,), "f8")  # 72 MiB of zeros
    return store


@pytest.mark.parametrize(
    ("memory", "workers", "chunks"),
    [("24MiB", 2, (196_608,)), ("8MiB", 1, (109_226,)), ("3MiB", 2, (32_768,)),
     ("1GiB", 4, (1_000_000,))],
)  # fmt: skip
def test_map_expr_chunks_are_the_old_ones(
    sized: arraystore.Store, memory: str, workers: int, chunks: tuple[int, ...]
) -> None:
    res = map_expr(sized, "a * 2 + b", out="o", memory=memory, workers=workers, overwrite=True)
    assert res.meta.chunks == chunks


@pytest.mark.parametrize(
    ("memory", "workers", "chunks"), [("24MiB", 2, (56_173, 7)), ("256MiB", 1, (299_593, 7))]
)
def test_map_blocks_chunks_are_the_old_ones(
    sized: arraystore.Store, memory: str, workers: int, chunks: tuple[int, ...]
) -> None:
    res = map_blocks(
        lambda v: v + 1, sized["m2"], out="o", store=sized, memory=memory, workers=workers,
        overwrite=True,
    )  # fmt: skip
    assert res.meta.chunks == chunks


@pytest.mark.parametrize(
    ("memory", "workers", "expr", "rows"),
    [("4MiB", 1, None, 2_702), ("4MiB", 2, None, 2_702), ("64MiB", 2, "price * 2", 129_055),
     ("1GiB", 1, None, 86_480)],
)  # fmt: skip
def test_where_chunks_are_the_old_ones(
    sized: arraystore.Store, memory: str, workers: int, expr: str | None, rows: int
) -> None:
    res = where(
        sized, "t", "qty > 20", "w", expr=expr, memory=memory, workers=workers, overwrite=True
    )
    assert res.meta.chunks[0] == rows


@pytest.mark.parametrize(
    ("budget", "n", "rows"),
    [(MiB, 1_221, 32_768), (16 * MiB, 306, 131_072), (64 * MiB, 26, 1_572_864),
     (300 * MiB, 5, 9_306_112), (GiB, 3, 16_777_216), (4 * GiB, 3, 16_777_216)],
)  # fmt: skip
@pytest.mark.parametrize("workers", [1, 8])
def test_stats_regions_are_the_old_ones(
    sized: arraystore.Store, budget: int, n: int, rows: int, workers: int
) -> None:
    regions = task_regions(sized["big"].handle, budget, workers)
    assert len(regions) == n
    assert regions[0][0].stop == rows


@pytest.mark.parametrize(
    ("memory", "rows"),
    [("12MiB", 131_072), ("24MiB", 131_072), ("100MiB", 961_194), ("1GiB", 8_388_608)],
)
def test_cast_chunks_are_the_old_ones(sized: arraystore.Store, memory: str, rows: int) -> None:
    cast(sized, "src", "f4", out="dst", memory=memory, workers=2)
    try:
        assert sized["dst"].meta.chunks == (rows,)
    finally:
        sized.delete("dst")


def test_read_ahead_is_the_engine_default() -> None:
    kw: dict[str, Any] = {"inputs": 8, "output": 8, "cap": GiB, "floor": 1}
    assert block_target(GiB, 3, **kw) == block_target(GiB, 3, read_ahead=READ_AHEAD, **kw)
    assert block_target(GiB, 3, **kw) == block_target(GiB, 3 * READ_AHEAD, read_ahead=1, **kw)
