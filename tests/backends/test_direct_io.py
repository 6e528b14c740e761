"""Large chunk files written around the page cache (O_DIRECT) and compressed into
reused buffers: the same bytes as the buffered path and as numcodecs / zarr-python."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest

from arraystore.backends.zarr import chunks as zc
from arraystore.backends.zarr import direct as _direct
from arraystore.backends.zarr import encode_into as _encode_into
from tests.backends.test_zarr_chunks import chunk_files, chunkio, create, open_array

MiB = 1 << 20


def direct_works(path: Path) -> bool:
    """Does this filesystem take O_DIRECT writes (tmpfs does not)?"""
    probe = path / f"probe-{uuid.uuid4().hex}"
    ok = _direct.write_new_file(probe, [np.ones(_direct.DIRECT_MIN_BYTES, np.uint8)])
    probe.unlink(missing_ok=True)
    return ok


@pytest.mark.parametrize(
    "sizes",
    [[MiB], [MiB + 1], [3 * MiB + 4095, 4], [5, 2 * MiB], [_direct.WINDOW * 2 + 17, 4]],
    ids=["aligned", "one-over", "tail-crc", "small-first", "windows"],
)
def test_write_new_file_same_bytes(tmp_path: Path, sizes: list[int]) -> None:
    rng = np.random.default_rng(len(sizes) + sizes[0])
    parts: list[Any] = [rng.integers(0, 256, n, dtype=np.uint8) for n in sizes]
    parts[-1] = parts[-1].tobytes()  # bytes and arrays mixed, as chunk writes pass them
    path = tmp_path / "f"
    used = _direct.write_new_file(path, parts)
    assert used == direct_works(tmp_path)
    want = b"".join(bytes(p) for p in parts)
    if used:
        assert path.read_bytes() == want
    else:
        assert not path.exists()


def test_write_new_file_declines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = tmp_path / "small"
    assert not _direct.write_new_file(small, [b"x" * (_direct.DIRECT_MIN_BYTES - 1)])
    assert not small.exists()
    monkeypatch.setenv("ARRAYSTORE_DIRECT_IO", "0")
    assert not _direct.write_new_file(tmp_path / "off", [np.zeros(2 * MiB, np.uint8)])
    assert not (tmp_path / "off").exists()


def test_refusing_filesystem_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """EINVAL on open (tmpfs) or on a write (a stricter alignment): nothing is left, the
    device is remembered and later files go straight to the buffered path."""
    monkeypatch.setattr(_direct, "_refused", set())
    real_open, calls = os.open, []

    def refusing_open(path: Any, flags: int, *args: Any) -> int:
        calls.append(flags)
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refusing_open)
    data = [np.zeros(2 * MiB, np.uint8)]
    assert not _direct.write_new_file(tmp_path / "a", data)
    assert not _direct.write_new_file(tmp_path / "b", data)
    assert len(calls) == 1 and not list(tmp_path.iterdir())
    monkeypatch.setattr(os, "open", real_open)
    monkeypatch.setattr(_direct, "_refused", set())

    def bad_write(fd: int, data: Any) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "write", bad_write)
    assert not _direct.write_new_file(tmp_path / "c", data)
    assert not list(tmp_path.iterdir())


def test_disk_full_propagates_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if not direct_works(tmp_path):
        pytest.skip("no O_DIRECT on this filesystem")

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        _direct.write_new_file(tmp_path / "f", [np.zeros(2 * MiB, np.uint8)])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("acceleration", [1, 5])
@pytest.mark.parametrize("n", [0, 1, 1000, 3 * MiB + 7])
def test_lz4_into_equals_numcodecs(n: int, acceleration: int) -> None:
    codec = numcodecs.LZ4(acceleration=acceleration)
    into = _encode_into.encoder("lz4", codec)
    if into is None:
        pytest.skip("numcodecs.lz4 exports no LZ4_compress_fast")
    rng = np.random.default_rng(n)
    for src in (rng.integers(0, 256, n, dtype=np.uint8), np.arange(n, dtype=np.uint8)):
        out = np.full(into.bound(n), 7, np.uint8)
        k = into.encode_into(src, out)
        assert out[:k].tobytes() == codec.encode(src)
        if n:  # (numcodecs cannot decode its own frame of an empty input)
            assert np.array_equal(np.frombuffer(codec.decode(out[:k]), np.uint8), src)
    assert _encode_into.encoder("zstd", codec) is None


@pytest.mark.parametrize("crc", [False, True], ids=["plain", "crc32c"])
@pytest.mark.parametrize("codec", ["none", "lz4", "blosc-lz4", "zstd"])
@pytest.mark.parametrize("direct", ["1", "0"], ids=["direct", "buffered"])
def test_large_chunks_are_zarrs_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str, crc: bool, direct: str
) -> None:
    """Chunks of 2 MiB (and a 1.3 MiB edge chunk) through both write paths: the files
    zarr-python writes, byte for byte; the direct path is taken where it can be."""
    monkeypatch.setenv("ARRAYSTORE_DIRECT_IO", direct)
    used: list[bool] = []
    real = zc.write_new_file

    def counting(path: Path, parts: Any) -> bool:
        used.append(real(path, parts))
        return used[-1]

    monkeypatch.setattr(zc, "write_new_file", counting)
    shape, chunks = (690_000,), (262_144,)
    data = np.random.default_rng(1).standard_normal(shape)
    data[:1000] = np.arange(1000)  # some compressible bytes too
    create(tmp_path / "z", shape, chunks, "float64", codec, crc)[...] = data
    create(tmp_path / "c", shape, chunks, "float64", codec, crc)
    io = chunkio(tmp_path / "c")
    for i in range(3):
        assert io.write_chunk((i,), np.ascontiguousarray(data[io.chunk_region((i,))]))
    np.testing.assert_array_equal(open_array(tmp_path / "c")[...], data)
    assert chunk_files(tmp_path / "c") == chunk_files(tmp_path / "z")
    expect_direct = direct == "1" and direct_works(tmp_path)
    assert used == [expect_direct] * 3
