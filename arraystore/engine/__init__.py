"""The engine: run a plan of tasks over regions in bounded memory; it knows no dtypes.

- :mod:`.memory` — pure budget arithmetic (``parse_size``, ``max_in_flight``, and
  ``block_target``, the one rule sizing a task's block from the budget).
- :mod:`.plan` — ``Task`` / ``Plan`` (frozen dataclasses) and ``run``, which checks
  the plan against the budget before anything runs and merges results in key order.
- :mod:`.executors` — the ``Executor`` interface and executors by name
  (``serial``, ``threads``, and ``dask`` when its extra is installed).
"""

from arraystore.engine.executors import (
    Executor,
    SerialExecutor,
    ThreadExecutor,
    available_executors,
    get_executor,
    register_executor,
)
from arraystore.engine.memory import (
    available_memory,
    block_target,
    default_budget,
    format_size,
    max_in_flight,
    memory_budget,
    parse_size,
)
from arraystore.engine.plan import Plan, Task, run

__all__ = [
    "Executor",
    "Plan",
    "SerialExecutor",
    "Task",
    "ThreadExecutor",
    "available_executors",
    "available_memory",
    "block_target",
    "default_budget",
    "format_size",
    "get_executor",
    "max_in_flight",
    "memory_budget",
    "parse_size",
    "register_executor",
    "run",
]
