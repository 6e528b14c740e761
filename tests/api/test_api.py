"""The public surface of ``import arraystore`` (issue 16 item 3, issue 19 item 6)."""

from __future__ import annotations

from importlib.metadata import version

import arraystore
from arraystore import errors


def test_dir_is_the_public_api_only() -> None:
    assert sorted(dir(arraystore)) == sorted([*arraystore.__all__, "__version__"])
    assert "Any" not in dir(arraystore) and "annotations" not in dir(arraystore)
    for name in arraystore.__all__:
        assert getattr(arraystore, name) is not None


def test_version_comes_from_the_package_metadata() -> None:
    assert arraystore.__version__ == version("arraystore")


def test_every_error_class_is_exported() -> None:
    classes = {
        n
        for n, v in vars(errors).items()
        if isinstance(v, type) and issubclass(v, errors.ArrayStoreError)
    }
    assert classes <= set(arraystore.__all__), classes - set(arraystore.__all__)
