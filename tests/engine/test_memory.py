"""Memory-budget arithmetic: size parsing/formatting and the in-flight bound."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arraystore.engine import memory
from arraystore.engine.memory import (
    available_memory,
    default_budget,
    format_size,
    max_in_flight,
    parse_size,
)
from arraystore.errors import ArrayStoreError, InvalidArgument, MemoryBudgetError

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4
BINARY = {"K": KiB, "M": MiB, "G": GiB, "T": TiB, "KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB}
DECIMAL = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64MiB", 64 * MiB),
        ("1GiB", GiB),
        ("1.5GB", 1_500_000_000),
        ("512k", 512 * KiB),
        ("512K", 512 * KiB),
        ("50_000", 50_000),
        (50_000, 50_000),
        ("12 B", 12),
        ("12b", 12),
        ("1kb", 1000),
        ("2T", 2 * TiB),
        ("64.0 MiB", 64 * MiB),
        ("1.5 GiB", 3 * GiB // 2),
        ("  256 mib ", 256 * MiB),
        ("0", 0),
        ("0.5K", 512),
        ("1e3", 1000),
        ("1.5B", 1),
    ],
)
def test_parse_size_examples(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


JUNK = ["", " ", "abc", "MiB", "12 parsecs", "5 MiBs", "1.2.3", "_5", "5_", "1__0", "nan"]
JUNK += ["inf", "-5", "-1.5GiB", "--5", ".", "e5", "0x10", "1,000"]


@pytest.mark.parametrize("text", JUNK)
def test_parse_size_rejects_junk_naming_it(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_size(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ArrayStoreError)


@pytest.mark.parametrize("value", [-1, True, 1.5, None, b"64MiB"])
def test_parse_size_rejects_other_types_and_negative_ints(value: object) -> None:
    with pytest.raises(InvalidArgument):
        parse_size(value)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=2**70))
def test_parse_size_plain_integers_round_trip(n: int) -> None:
    assert parse_size(n) == n
    assert parse_size(str(n)) == n
    assert parse_size(f"{n:_}") == n
    assert parse_size(f"{n} B") == n


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(sorted({**BINARY, **DECIMAL}.items())),
    st.sampled_from([str.lower, str.upper, lambda s: s]),
    st.sampled_from(["", " "]),
)
def test_parse_size_units(n: int, unit: tuple[str, int], case: object, space: str) -> None:
    suffix, factor = unit
    assert parse_size(f"{n}{space}{case(suffix)}") == n * factor  # type: ignore[operator]


@given(st.integers(min_value=0, max_value=2**60))
def test_format_then_parse_is_close(n: int) -> None:
    text = format_size(n)
    back = parse_size(text)
    if n < KiB:
        assert text == f"{n} B"
        assert back == n
    else:  # one decimal of the chosen unit, which is <= n
        assert abs(back - n) <= 0.05 * n + 1
        number, unit = text.split()
        assert unit in ("KiB", "MiB", "GiB", "TiB", "PiB")
        assert 1.0 <= float(number) < 1024 or unit == "PiB"


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (12, "12 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (64 * MiB, "64.0 MiB"),
        (3 * GiB // 2, "1.5 GiB"),
        (MiB - 1, "1.0 MiB"),
        (-2 * KiB, "-2.0 KiB"),
    ],
)
def test_format_size_examples(n: int, text: str) -> None:
    assert format_size(n) == text


@given(
    st.integers(min_value=1, max_value=2**45),
    st.data(),
    st.integers(min_value=1, max_value=256),
)
def test_max_in_flight_never_exceeds_budget(budget: int, data: st.DataObject, workers: int) -> None:
    task_bytes = data.draw(st.integers(min_value=0, max_value=budget))
    k = max_in_flight(budget, task_bytes, workers)
    assert 1 <= k <= workers * memory.READ_AHEAD
    assert k * task_bytes <= budget
    if task_bytes and budget // task_bytes >= workers * memory.READ_AHEAD:
        assert k == workers * memory.READ_AHEAD  # memory is not the limit: use the workers


@given(st.integers(min_value=1, max_value=2**45), st.integers(min_value=1, max_value=2**40))
def test_max_in_flight_refuses_a_task_larger_than_the_budget(budget: int, extra: int) -> None:
    with pytest.raises(MemoryBudgetError) as info:
        max_in_flight(budget, budget + extra, 4)
    message = str(info.value)
    assert format_size(budget + extra) in message and format_size(budget) in message
    assert isinstance(info.value, MemoryError)


def test_max_in_flight_message() -> None:
    with pytest.raises(MemoryBudgetError, match="raise --memory or use smaller chunks") as info:
        max_in_flight(256 * MiB, GiB, 2)
    assert str(info.value) == (
        "plan needs at least 1.0 GiB per task but --memory is 256.0 MiB; "
        "raise --memory or use smaller chunks"
    )


@pytest.mark.parametrize("budget", [0, -1, -(2**40)])
def test_max_in_flight_budget_must_be_positive(budget: int) -> None:
    with pytest.raises(InvalidArgument, match="memory budget must be positive"):
        max_in_flight(budget, 1, 2)


@pytest.mark.parametrize(
    ("task_bytes", "workers", "read_ahead"), [(-1, 2, 2), (1, 0, 2), (1, 2, 0)]
)
def test_max_in_flight_other_bad_arguments(task_bytes: int, workers: int, read_ahead: int) -> None:
    with pytest.raises(InvalidArgument):
        max_in_flight(GiB, task_bytes, workers, read_ahead)


def test_available_memory_and_default_budget() -> None:
    assert available_memory() > 0
    assert 0 < default_budget() <= GiB
    assert default_budget() <= available_memory() // 4 or default_budget() == GiB


def test_available_memory_reads_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  8000000 kB\nMemFree:   1000 kB\nMemAvailable:   4096 kB\n")
    assert memory._meminfo_available(str(meminfo)) == 4096 * KiB
    meminfo.write_text("MemTotal:  8000000 kB\n")
    assert memory._meminfo_available(str(meminfo)) is None


def test_available_memory_falls_back_without_meminfo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_MEMINFO", "/nonexistent/meminfo")
    assert available_memory() > 0
    monkeypatch.setattr(memory, "_sysconf_available", lambda: None)
    assert available_memory() == memory._FALLBACK_MEMORY
    assert default_budget() == memory._FALLBACK_MEMORY // 4
