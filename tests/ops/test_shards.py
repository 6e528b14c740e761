"""Operations on sharded zarr arrays: a task per shard, shards kept or chosen by cast /
map / where / import, resumed runs keep them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.backends.zarr.shards import ShardIO
from arraystore.ops.cast import cast
from arraystore.ops.map.blocks import map_expr, where
from arraystore.testing import FailingExecutor


@pytest.fixture
def store(tmp_path: Path) -> Any:
    return arraystore.open(tmp_path / "s.store", mode="a")


def _data(n: int = 1000) -> np.ndarray:
    return np.random.default_rng(0).random((n, 4))


def test_create_writes_a_shard_per_task(store: Any) -> None:
    ex = FailingExecutor()
    store.create("a", data=_data(), chunks=(10, 4), shards=(300, 4), backend="zarr", executor=ex)
    assert ex.ran == 4  # 4 shards (the last one ragged), not 100 chunks
    np.testing.assert_array_equal(store["a"][...], _data())


def test_cast_keeps_or_sets_shards_and_resumes(store: Any) -> None:
    x = _data()
    store.create("a", data=x, chunks=(10, 4), shards=(300, 4), backend="zarr", codec="lz4")
    cast(store, "a", "f4", out="b", casting="unsafe")
    assert store["b"].shards == (300, 4) and store["b"].chunks == (10, 4)
    with pytest.raises(KeyboardInterrupt):
        cast(store, "a", "f4", out="c", casting="unsafe", shards=500, executor=FailingExecutor(1))
    ex = FailingExecutor()
    cast(store, "a", None, resume=True, executor=ex)
    assert ex.ran == 1  # 2 shards of 500 rows, one done before the interruption
    assert store["c"].shards == (500, 4)
    np.testing.assert_array_equal(store["c"][...], x.astype("f4"))
    store.create("m", data=x, chunks=(10, 4))  # memmap
    with pytest.raises(arraystore.errors.InvalidArgument, match="memmap backend has no shards"):
        cast(store, "m", "f4", out="d", casting="unsafe", shards=100)


def test_map_inherits_or_sets_shards_and_resumes(store: Any) -> None:
    x = _data()
    store.create("a", data=x, chunks=(10, 4), shards=(300, 4), backend="zarr")
    m = map_expr(store, "a * 2", out="m")  # the grid follows a's chunks: its shards too
    assert m.shards == (300, 4) and m.chunks == (10, 4)
    np.testing.assert_array_equal(m[...], x * 2)
    assert map_expr(store, "a * 2", out="u", chunks=(100, 4)).shards is None
    with pytest.raises(KeyboardInterrupt):
        map_expr(store, "a + 1", out="n", shards=200, executor=FailingExecutor(2))
    ex = FailingExecutor()
    n = map_expr(store, "a + 1", out="n", shards=200, resume=True, executor=ex)
    assert ex.ran == 5 - 2 and n.shards == (200, 4)
    np.testing.assert_array_equal(n[...], x + 1)
    with pytest.raises(arraystore.errors.InvalidArgument, match="multiples of the chunks"):
        map_expr(store, "a + 1", out="bad", shards=15)


def test_where_reads_whole_shards(store: Any) -> None:
    v = _data()[:, 0]
    store.create("v", data=v, chunks=10, shards=300, backend="zarr")
    w = where(store, "v", "v > 0.5", "w")
    np.testing.assert_array_equal(w[...], v[v > 0.5])
    assert w.chunks[0] == 300  # blocks of whole shards, not of 10-row chunks


def test_import_csv_with_shards(store: Any, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    x = _data()
    src = tmp_path / "t.csv"
    np.savetxt(src, x, delimiter=",", header="a,b,c,d", comments="", fmt="%.17g")
    t = store.import_file("t", src, backend="zarr", chunks=100, shards=400)
    assert t.shards == (400,) and t["a"].shards == (400,)
    np.testing.assert_array_equal(t["c"][...], x[:, 2])


def test_from_dask_writes_whole_shards(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    da = pytest.importorskip("dask.array")
    x = _data()
    d = da.from_array(x, chunks=(10, 4))
    written = []
    real = ShardIO.write_shard

    def counting(self: ShardIO, shard: Any, block: np.ndarray) -> bool:
        written.append(tuple(shard))
        return real(self, shard, block)

    monkeypatch.setattr(ShardIO, "write_shard", counting)
    a = arraystore.from_dask(d, store, "d", backend="zarr", shards=(300, 4), scheduler="threads")
    assert sorted(written) == [(0, 0), (1, 0), (2, 0), (3, 0)]  # each shard once, whole
    assert a.shards == (300, 4) and a.chunks == (10, 4)
    np.testing.assert_array_equal(a[...], x)
