"""CLI of sharded zarr arrays: --shards on create, cast, map and import; info; errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import arraystore
from arraystore.testing import run_cli


def test_cli_create_info_cast_map_import(tmp_path: Path) -> None:
    s = str(tmp_path / "c.store")
    code, out, err = run_cli(
        ["create", s, "g", "--shape", "1000,4", "--chunks", "100,4", "--shards", "300",
         "--backend", "zarr", "--codec", "lz4", "--fill", "random"]
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run_cli(["info", s, "g"])
    assert code == 0 and "shards" in out and "(300, 4): 3 inner chunks per shard file" in out
    store = arraystore.open(s, mode="r+")
    x = store["g"][...]
    code, out, err = run_cli(["cast", s, "g", "--to", "f4", "--out", "g4", "--shards", "500",
                              "--casting", "unsafe"])  # fmt: skip
    assert code == 0, err
    assert store["g4"].shards == (500, 4)
    np.testing.assert_array_equal(store["g4"][...], x.astype("f4"))
    code, out, err = run_cli(["map", s, "g", "--expr", "g * 2", "--out", "m", "--shards", "200"])
    assert code == 0, err
    assert store["m"].shards == (200, 4) and store["m"].chunks == (100, 4)
    np.testing.assert_array_equal(store["m"][...], x * 2)
    np.save(tmp_path / "x.npy", x)
    code, out, err = run_cli(["import", s, "n", str(tmp_path / "x.npy"), "--backend", "zarr",
                              "--chunks", "50,4", "--shards", "400"])  # fmt: skip
    assert code == 0, err
    assert store["n"].shards == (400, 4)
    np.testing.assert_array_equal(store["n"][...], x)
    code, out, err = run_cli(["create", s, "bad", "--shape", "100,4", "--chunks", "10,4",
                              "--shards", "15", "--backend", "zarr"])  # fmt: skip
    assert code == 1 and len(err.strip().splitlines()) == 1 and "multiples" in err
    code, out, err = run_cli(["create", s, "bad", "--shape", "100", "--shards", "15"])
    assert code == 1 and "memmap" in err
