"""groupby: grouped reductions out of core (``Array.groupby``, ``stats --by``).

:mod:`.keys` and :mod:`.kernels` are pure (numpy only): factorizing keys, partial
tables of mergeable per-group states, their ordered merge and the results;
:mod:`.engine` plans the tasks and reads the blocks; :mod:`.reduce` is the entry point.
"""

from arraystore.ops.groupby.kernels import OPS
from arraystore.ops.groupby.reduce import DEFAULT_OPS, groupby_reduce
from arraystore.ops.groupby.result import GroupedResult, GroupStats
from arraystore.ops.groupby.stream import GroupsWritten

__all__ = ["DEFAULT_OPS", "OPS", "GroupStats", "GroupedResult", "GroupsWritten", "groupby_reduce"]
