"""Batches (numpy, read-ahead, chunk-local shuffle) and zero-copy torch conversion."""

from __future__ import annotations

import numpy as np
import pytest

import arraystore
from arraystore.ops import interop
from arraystore.ops.interop.batching import TORCH_DTYPES, Batches
from arraystore.testing import backend_params

CASES = backend_params(lambda c: c.codec in (None, "none"))


@pytest.mark.parametrize("case", CASES)
def test_numpy_batches_cover_every_row_in_order(store, case):
    arr = store.create("t", 1000, "id:i8,price:f8,vec:3f4", fill="range", chunks=128, **case.kwargs)
    data = arr[...]
    batches = list(interop.batches(arr, 100))
    assert len(batches) == 10 == len(interop.batches(arr, 100))
    for k, b in enumerate(batches):
        assert set(b) == {"id", "price", "vec"}
        for f in b:
            assert b[f].flags.c_contiguous and b[f].flags.writeable
            np.testing.assert_array_equal(b[f], data[f][k * 100 : (k + 1) * 100])
    sizes = [len(b) for b in interop.batches(arr, 300, fields="price")]
    assert sizes == [300, 300, 300, 100]
    assert [len(b["id"]) for b in interop.batches(arr, 300, fields=["id"], drop_last=True)] == [
        300
    ] * 3
    plain = store.create("p", (50, 4), "f4", fill="random", chunks=(7, 4), **case.kwargs)
    got = np.concatenate(list(interop.batches(plain, 16)))
    np.testing.assert_array_equal(got, plain[...])
    field_view = np.concatenate(list(interop.batches(arr["vec"], 64)))
    np.testing.assert_array_equal(field_view, data["vec"])


def test_shuffle_is_a_seeded_chunk_local_permutation(store):
    arr = store.create("t", 1000, "i8", fill="range", chunks=100)
    one = np.concatenate(list(interop.batches(arr, 64, shuffle=True, seed=3)))
    two = np.concatenate(list(interop.batches(arr, 64, shuffle=True, seed=3)))
    other = np.concatenate(list(interop.batches(arr, 64, shuffle=True, seed=4)))
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, other) and not np.array_equal(one, np.arange(1000))
    np.testing.assert_array_equal(np.sort(one), np.arange(1000))
    # chunk-local: each consecutive run of 100 rows is one whole chunk, shuffled
    for k in range(10):
        block = one[k * 100 : (k + 1) * 100]
        assert len(set(block // 100)) == 1 and len(set(block)) == 100
    b = Batches(arr, 64, shuffle=True, seed=3)
    b.set_epoch(1)
    assert not np.array_equal(np.concatenate(list(b)), one)


def test_batches_check_their_arguments(store):
    arr = store.create("t", 10, "a:i4,s:U3", fill="range")
    with pytest.raises(arraystore.InvalidArgument):
        interop.batches(arr, 0)
    with pytest.raises(arraystore.FieldNotFound):
        interop.batches(arr, 2, fields=["nope"])
    with pytest.raises(arraystore.InvalidArgument):
        interop.batches(store.create("z", (), "f8"), 2)


def test_torch_batches_share_memory_and_map_dtypes(store):
    torch = pytest.importorskip("torch")
    spec = "b:bool,u:u1,i:i1,h:i2,w:i4,q:i8,e:f2,f:f4,d:f8,x:c8,z:c16,v:3f8"
    arr = store.create("t", 300, spec, fill="random", chunks=64)
    nb = next(iter(interop.batches(arr, 50)))
    tb = interop.to_torch(nb)
    for name, t in tb.items():
        want = getattr(torch, TORCH_DTYPES[arraystore.core.dtypes.scalar_str(nb[name].dtype)])
        assert t.dtype == want, name
        assert t.data_ptr() == nb[name].ctypes.data, name  # zero-copy
        assert tuple(t.shape) == nb[name].shape
    tb["d"][0] = 42.0
    assert nb["d"][0] == 42.0  # the very same memory
    assert tb["d"].dtype == torch.float64  # float64 stays float64
    batches = list(interop.batches(arr, 128, to_torch=True))
    assert [len(b["d"]) for b in batches] == [128, 128, 44]
    np.testing.assert_array_equal(torch.cat([b["d"] for b in batches]).numpy(), arr["d"][...])
    conv = next(iter(interop.batches(arr, 32, fields="d").to_torch(torch.float32)))
    assert conv.dtype == torch.float32 and conv.shape == (32,)


def test_torch_bfloat16_without_a_float32_detour(store):
    torch = pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    arr = store.create("bf", (100, 3), "bfloat16", fill="random", chunks=(40, 3))
    nb = next(iter(interop.batches(arr, 25)))
    t = interop.to_torch(nb)
    assert t.dtype == torch.bfloat16 and t.data_ptr() == nb.ctypes.data
    np.testing.assert_array_equal(t.float().numpy(), nb.astype(np.float32))


def test_torch_refuses_unsigned_and_strings_unless_told(store):
    torch = pytest.importorskip("torch")
    arr = store.create("t", 20, "u:u2,big:u8,s:U3", fill="range")
    with pytest.raises(arraystore.DTypeError, match=r"u2.*torch_dtype=torch.int32"):
        interop.batches(arr, 5, fields=["u"], to_torch=True)
    with pytest.raises(arraystore.DTypeError, match="strings"):
        interop.batches(arr, 5, to_torch=True, torch_dtype={"u": torch.int32, "big": "int64"})
    got = next(
        iter(
            interop.batches(arr, 5, fields=["u", "big"]).to_torch(
                {"u": torch.int32, "big": torch.int64}
            )
        )
    )
    assert got["u"].dtype == torch.int32 and got["u"].tolist() == [0, 1, 2, 3, 4]
    assert got["big"].dtype == torch.int64
    arr["big"][0:1] = np.array([2**64 - 1], dtype="u8")
    with pytest.raises(arraystore.DTypeError, match="does not fit"):
        next(iter(interop.batches(arr, 5, fields=["big"], to_torch=True, torch_dtype=torch.int64)))
