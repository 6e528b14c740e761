"""``arraystore.ops.reduce.summarize``: the one document ``arraystore stats`` prints
(stats, exact quantiles and a histogram per field), and its bound on the bins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.ops.reduce import MAX_SUMMARY_BINS, summarize


@pytest.fixture
def arr(tmp_path: Path) -> arraystore.Array:
    data = np.zeros(500, dtype=[("a", "<f8"), ("b", "<i4")])
    data["a"] = np.linspace(-3, 7, 500) ** 2
    data["a"][::50] = np.nan
    data["b"] = np.arange(500) % 37
    return arraystore.open(tmp_path / "s.store", mode="a").create("x", data=data)


def test_summary_merges_stats_quantiles_and_histograms(arr: arraystore.Array) -> None:
    doc = summarize(arr, quantiles=[0.1, 0.5], bins=5)
    stats = arr.stats().to_dict()
    for name in ("a", "b"):
        col = arr[...][name]
        col = col[~np.isnan(col)] if col.dtype.kind == "f" else col
        d = doc["fields"][name]
        assert {k: d[k] for k in stats["fields"][name]} == stats["fields"][name]
        assert d["quantiles"] == {"0.1": np.quantile(col, 0.1), "0.5": np.quantile(col, 0.5)}
        counts, edges = np.histogram(col, bins=5)
        assert d["histogram"] == {"counts": counts.tolist(), "edges": edges.tolist()}
    assert "quantiles" not in summarize(arr, fields=["b"])["fields"]["b"]


@pytest.mark.parametrize("bins", [0, -1, MAX_SUMMARY_BINS + 1, True, 2.0, "fd"])
def test_summary_refuses_bins_outside_its_bound(arr: arraystore.Array, bins: object) -> None:
    calls = []
    with pytest.raises(arraystore.InvalidArgument, match=r"bins must be a number of bins in"):
        summarize(arr, bins=bins, progress=lambda *a: calls.append(a))  # type: ignore[arg-type]
    assert calls == []  # refused before the stats pass reads anything


def test_summary_takes_its_most_bins(arr: arraystore.Array) -> None:
    doc = summarize(arr, fields=["b"], bins=MAX_SUMMARY_BINS)
    assert len(doc["fields"]["b"]["histogram"]["counts"]) == MAX_SUMMARY_BINS
