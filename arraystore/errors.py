"""One error hierarchy for arraystore.

Every class derives from :class:`ArrayStoreError` *and* from the built-in exception it
refines, so ``except KeyError`` or ``except ValueError`` in caller code keeps working.
The CLI prints ``str(error)`` on one line and exits 1 for any :class:`ArrayStoreError`.
"""

from __future__ import annotations


class ArrayStoreError(Exception):
    """Base class of every error arraystore raises on purpose."""


class InvalidArgument(ArrayStoreError, ValueError):
    """A parameter has a wrong value (bad shape, negative size, axis out of range...)."""


class DTypeError(ArrayStoreError, TypeError):
    """A dtype spec cannot be parsed or names a dtype arraystore refuses (object, unsized)."""


class InvalidName(ArrayStoreError, ValueError):
    """An array or field name that could escape the store or is otherwise not allowed."""


class ArrayNotFound(ArrayStoreError, KeyError):
    """The store holds no array of that name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep the plain one
        return str(self.args[0]) if self.args else "array not found"


class FieldNotFound(ArrayStoreError, KeyError):
    """The array has no field of that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "field not found"


class ArrayExists(ArrayStoreError, FileExistsError):
    """An array of that name exists already (pass overwrite=True / --overwrite)."""


class StoreNotFound(ArrayStoreError, FileNotFoundError):
    """The store path does not exist or is not a store."""


class InvalidStore(ArrayStoreError, NotADirectoryError):
    """The store path exists but is not a directory / not an arraystore store."""


class MetadataError(ArrayStoreError, ValueError):
    """Metadata is missing, corrupt, or of an unknown format version."""


class CorruptData(ArrayStoreError, OSError):
    """Stored data does not match its metadata (truncated file, bad chunk)."""


class UnknownBackend(ArrayStoreError, KeyError):
    """No backend of that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown backend"


class UnknownCodec(ArrayStoreError, ValueError):
    """No codec of that name, or a bad codec parameter."""


class UnknownExecutorError(ArrayStoreError, KeyError):
    """No executor of that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown executor"


class MemoryBudgetError(ArrayStoreError, MemoryError):
    """A plan cannot run within the memory budget; raised before any work is done."""


class ShapeMismatch(ArrayStoreError, ValueError):
    """A block or source file has a shape/dtype that disagrees with the target."""


class CastError(ArrayStoreError, ValueError):
    """A cast was refused by its policy; nothing was written."""


class CastOverflow(CastError, OverflowError):
    """A value does not fit the target dtype where numpy raises ``OverflowError`` (e.g.
    ``arr[0] = 300`` into int8); nothing was written."""


class InvalidType(ArrayStoreError, TypeError):
    """A value or operand of a type that does not fit where numpy raises ``TypeError``
    (``None`` or a dict stored into an int array, ``len()`` of a 0-d array)."""


class InvalidIndex(ArrayStoreError, IndexError):
    """An index out of bounds, a mask of the wrong shape, arrays that do not broadcast,
    or an index of a kind arraystore does not support (floats, strings)."""


class ReadOnlyError(ArrayStoreError, PermissionError):
    """A write was attempted on a store or array opened read-only."""


class LockedError(ArrayStoreError, BlockingIOError):
    """Another writer holds the array's lock."""


class MissingDependency(ArrayStoreError, ImportError):
    """An optional package (pyarrow, dask, torch, xarray, ml_dtypes) is not installed; the
    message gives the ``pip install 'arraystore[EXTRA]'`` line to run."""
