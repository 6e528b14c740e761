"""storage.view: :class:`ArrayView`, a stored array as the operations see it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from arraystore.backends.base import Handle
from arraystore.core.meta import ArrayMeta

if TYPE_CHECKING:
    from arraystore.storage.root import StoreRoot

__all__ = ["ArrayView"]


@runtime_checkable
class ArrayView(Protocol):
    """A stored array, or one field of it, as the operations (``arraystore.ops``) see
    it; ``arraystore.Array`` is one. Operations never import the façade: they work on
    this and on :class:`StoreRoot`."""

    @property
    def store(self) -> StoreRoot: ...
    @property
    def name(self) -> str: ...
    @property
    def field(self) -> str | None: ...
    @property
    def handle(self) -> Handle: ...
    @property
    def meta(self) -> ArrayMeta: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def chunks(self) -> tuple[int, ...]: ...
    def read(self, region: Any = None, out: np.ndarray | None = None) -> np.ndarray: ...
    def __getitem__(self, key: Any) -> Any: ...
