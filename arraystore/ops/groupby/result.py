"""The result of a grouped reduction: sorted keys and per-field, per-op arrays."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arraystore.errors import FieldNotFound


class GroupStats(dict[str, Any]):
    """One field's results, ``{op: array with one row per group}``, also as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"no op {name!r} (computed: {', '.join(self) or 'none'})"
            ) from None


def _label(q: float) -> str:
    return f"q{q:g}"


@dataclass
class GroupedResult:
    """Per-group results of ``Array.groupby(...).stats(...)`` (and ``stats --by``).

    ``res.keys`` is a structured array of the group keys (sorted; NaN keys last);
    ``res["price"]["mean"]`` (or ``res["price"].mean``) the means per group, in the order
    of the keys; ``res["sym"]`` a key column; ``res.size`` the rows per group;
    :meth:`to_array` one structured array (key fields first, then ``price_mean``, ...).
    Results of a plain N-d array keep its trailing axes: shape ``(groups, *shape[1:])``;
    quantiles add a last axis of ``len(q)``.
    """

    array: str
    keys: np.ndarray
    size: np.ndarray
    fields: dict[str, dict[str, np.ndarray]]
    quantiles: tuple[float, ...] = ()
    nbytes: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fields = {k: GroupStats(d) for k, d in self.fields.items()}

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(self.keys.dtype.names or ())

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, name: str) -> Any:
        if name in self.fields:
            return self.fields[name]
        if name in self.key_names:
            return self.keys[name]
        have = [*self.key_names, *self.fields]
        raise FieldNotFound(f"no key or field {name!r} in the results (choose from: {have})")

    def columns(self) -> list[tuple[str, np.ndarray]]:
        """(name, values) of every result column, key columns first."""
        cols = [(k, self.keys[k]) for k in self.key_names]
        for fname, ops in self.fields.items():
            for op, vals in ops.items():
                if op == "quantile":
                    for j, q in enumerate(self.quantiles):
                        cols.append((f"{fname}_{_label(q)}", vals[..., j]))
                elif op == "size":
                    continue
                else:
                    cols.append((f"{fname}_{op}", vals))
        if any("size" in ops for ops in self.fields.values()) or not self.fields:
            cols.append(("size", self.size))
        return cols

    def to_array(self) -> np.ndarray:
        """One structured array: a row per group, key fields first, sorted by key."""
        cols = self.columns()
        dt = np.dtype([(n, v.dtype, v.shape[1:]) for n, v in cols])
        out = np.empty(len(self), dt)
        for n, v in cols:
            out[n] = v
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "array": self.array,
            "by": list(self.key_names),
            "groups": len(self),
            "columns": {n: _plain(v) for n, v in self.columns()},
            "bytes_read": self.nbytes,
            "seconds": self.seconds,
        }

    def to_json(self) -> str:
        """JSON text; NaN/inf become the strings "nan", "inf", "-inf"."""
        return json.dumps(_json_safe(self.to_dict()), indent=2)

    def __repr__(self) -> str:
        lines = [f"GroupedResult({self.array}, by={list(self.key_names)}, groups={len(self)})"]
        for name, d in self.fields.items():
            lines.append(f"  {name}: {', '.join(d)}")
        return "\n".join(lines)


def _plain(v: np.ndarray) -> list[Any]:
    """A column as Python values (fixed byte strings decoded as UTF-8)."""
    if v.dtype.kind == "S":
        return [b.decode("utf-8", "replace") for b in v.tolist()]
    return [int(x) if isinstance(x, int) else x for x in v.tolist()]


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        if obj != obj:
            return "nan"
        if obj in (float("inf"), float("-inf")):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj
