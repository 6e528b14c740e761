"""storage: what a store looks like on disk and how a write becomes visible.

- :mod:`.layout`: the hidden names derived from an array name and the renames that
  commit a finished array (``Layout``);
- :mod:`.transaction`: ``NewArray``, the one way a new array is built and committed;
- :mod:`.journal`: journals of resumable writes and the recovery of a crashed cast;
- :mod:`.root`: ``StoreRoot``, a store without the façade (what ``ops`` work on);
- :mod:`.killpoints`: the crash tests' hook.

Imports ``backends``, ``fs``, ``core`` and ``errors`` only (rule R3).
"""

from arraystore.storage.layout import Layout, remove_hidden
from arraystore.storage.root import ArrayView, StoreRoot
from arraystore.storage.transaction import NewArray, group_doc

__all__ = ["ArrayView", "Layout", "NewArray", "StoreRoot", "group_doc", "remove_hidden"]
