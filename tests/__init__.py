"""arraystore's test suite, laid out like the package (tests/core, tests/ops/cast, ...).

Every folder is a package, so pytest's default import mode imports a test file as
``tests.<folder>.test_x`` with the repository root on ``sys.path``: files in different
folders may share a name, and a test imports a sibling's helpers as
``from tests.backends.test_zarr_chunks import chunkio``. Fixtures live in
``tests/conftest.py``, helpers for any test suite in :mod:`arraystore.testing`.
"""
