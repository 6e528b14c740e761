"""The backend registry (arraystore.backends): names, factories, the unknown-name error."""

from __future__ import annotations

import subprocess
import sys

import pytest

import arraystore.backends as backends_module
from arraystore.backends import (
    Backend,
    backend_names,
    check_backend,
    get_backend,
    register_backend,
)
from arraystore.backends.memmap import MemmapBackend
from arraystore.backends.zarr import ZarrBackend
from arraystore.errors import InvalidArgument, UnknownBackend


def test_builtin_backends_by_name() -> None:
    assert backend_names() == ["memmap", "zarr"]
    assert isinstance(get_backend("memmap"), MemmapBackend)
    assert isinstance(get_backend("zarr"), ZarrBackend)
    assert check_backend("zarr") == "zarr"


@pytest.mark.parametrize("lookup", [get_backend, check_backend])
@pytest.mark.parametrize("name", ["hdf5", "", "ZARR", None, ["zarr"]])
def test_unknown_backend_lists_known_names(lookup, name) -> None:
    with pytest.raises(UnknownBackend) as info:
        lookup(name)
    assert isinstance(info.value, KeyError)
    assert str(info.value) == f"unknown backend {name!r} (choose from: memmap, zarr)"


def test_check_backend_imports_no_backend_module() -> None:
    """check_backend names a backend without importing it (``import arraystore`` itself
    loads the memmap backend, which the façade uses; zarr-python stays unloaded)."""
    code = (
        "import sys\n"
        "from arraystore.backends import check_backend\n"
        "before = set(sys.modules)\n"
        "check_backend('zarr'); check_backend('memmap')\n"
        "print(sorted(set(sys.modules) - before), 'zarr' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[] False"


def test_register_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends_module, "_FACTORIES", dict(backends_module._FACTORIES))

    class Other(MemmapBackend):
        name = "other"

    register_backend("other", Other)
    assert backend_names() == ["memmap", "other", "zarr"]
    assert isinstance(get_backend("other"), Other)
    with pytest.raises(InvalidArgument, match="registered already"):
        register_backend("other", MemmapBackend)
    register_backend("other", MemmapBackend, replace=True)
    got: Backend = get_backend("other")
    assert type(got) is MemmapBackend
    with pytest.raises(InvalidArgument, match="non-empty"):
        register_backend("", Other)
