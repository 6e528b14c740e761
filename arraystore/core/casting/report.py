"""The audit of a cast: :class:`CastReport`, its merge, summary and JSON form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from arraystore.core.casting.rules import (
    MAX_EXAMPLES,
    MAX_FIRST_BAD,
    _as_dtype,
    _dtname,
)
from arraystore.errors import InvalidArgument

# ------------------------------------------------------------------------------- reports


@dataclass
class CastReport:
    """What one cast did to the values of one field; merge chunk reports with :meth:`merge`.

    Categories are disjoint per value, in this precedence: ``parse_errors``, ``nan_inf``,
    ``out_of_range``, ``rounded``.

    ``count``           values checked.
    ``out_of_range``    values outside the target's range: integers that don't fit, floats
                        that overflow the target float to inf, complex values with a
                        non-zero imaginary part cast to a real type (also in
                        ``nonzero_imag``), bool targets from values other than 0/1.
    ``nan_inf``         NaN/±inf into an integer or bool target.
    ``nonfinite``       NaN/±inf passed through to a float/complex target (not an error).
    ``rounded``         in-range values whose round trip ``src -> dst -> src`` differs.
    ``beyond_rtol``     of those, the ones whose relative error exceeds ``rtol``.
    ``clipped``         values saturated by the ``clip`` policy.
    ``unhandled_nan``   NaN into an integer target under ``clip`` without ``nan_to``.
    ``parse_errors``    strings that are not numbers; ``coerced`` of them replaced
                        (``errors="coerce"``).
    ``violations``      values the policy refuses (the cast fails when non-zero).
    ``max_abs_err`` / ``max_rel_err``  over finite, in-range values that were cast
                        (relative error ``|x - y| / |x|`` for ``x != 0``; complex values
                        per part).
    ``first_bad``       up to 10 flat indices (global when the caller passed ``region`` and
                        ``shape``): the violating values when there are violations, else
                        the values the cast changed beyond ``rtol`` (out of range, NaN/inf
                        into integers, rounded, clipped, unparseable); sorted.
    ``examples``        the source values at the first 5 of ``first_bad``, as text.
    """

    src: str
    dst: str
    policy: str = "value"
    rtol: float = 0.0
    count: int = 0
    out_of_range: int = 0
    nonzero_imag: int = 0
    nan_inf: int = 0
    nonfinite: int = 0
    rounded: int = 0
    beyond_rtol: int = 0
    clipped: int = 0
    unhandled_nan: int = 0
    parse_errors: int = 0
    coerced: int = 0
    violations: int = 0
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    first_bad: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    # examples for every entry of first_bad (None where unknown, after from_dict), so
    # merges keep examples aligned with first_bad
    _pool: list[str | None] = field(default_factory=list, repr=False, compare=False)

    _COUNTS = (
        "count",
        "out_of_range",
        "nonzero_imag",
        "nan_inf",
        "nonfinite",
        "rounded",
        "beyond_rtol",
        "clipped",
        "unhandled_nan",
        "parse_errors",
        "coerced",
        "violations",
    )

    @classmethod
    def empty(cls, src: Any, dst: Any, policy: str = "value", rtol: float = 0.0) -> CastReport:
        """A report of no values (``src``/``dst``: dtypes or their names)."""
        names = [v if isinstance(v, str) else _dtname(_as_dtype(v)) for v in (src, dst)]
        return cls(names[0], names[1], policy, float(rtol))

    @property
    def ok(self) -> bool:
        """True when the policy accepts every value seen so far."""
        return self.violations == 0

    def _set_bad(self, indices: Sequence[int], texts: Sequence[str | None]) -> None:
        pairs = sorted(dict(zip(indices, texts, strict=True)).items())[:MAX_FIRST_BAD]
        self.first_bad = [int(i) for i, _ in pairs]
        self._pool = [t for _, t in pairs]
        self.examples = [t if t is not None else "?" for t in self._pool[:MAX_EXAMPLES]]

    def merge(self, other: CastReport) -> CastReport:
        """A new report covering both; ``first_bad`` keeps the smallest indices.

        Both must describe the same cast (src, dst, policy); a report of no values
        (``count == 0``, e.g. :meth:`empty`) merges with any policy.
        """
        same_policy = (self.policy, self.rtol) == (other.policy, other.rtol)
        if (self.src, self.dst) != (other.src, other.dst) or not (
            same_policy or self.count == 0 or other.count == 0
        ):
            raise InvalidArgument(
                f"cannot merge cast reports of {self.src}->{self.dst} ({self.policy}) and "
                f"{other.src}->{other.dst} ({other.policy})"
            )
        lead = other if self.count == 0 and other.count else self
        merged = CastReport(self.src, self.dst, lead.policy, lead.rtol)
        for name in self._COUNTS:
            setattr(merged, name, getattr(self, name) + getattr(other, name))
        merged.max_abs_err = max(self.max_abs_err, other.max_abs_err)
        merged.max_rel_err = max(self.max_rel_err, other.max_rel_err)
        # violating indices win over merely changed ones
        sides = [r for r in (self, other) if r.violations] or [self, other]
        idx: list[int] = []
        texts: list[str | None] = []
        for r in sides:
            pool = r._pool if len(r._pool) == len(r.first_bad) else _pad(r)
            idx.extend(r.first_bad)
            texts.extend(pool)
        merged._set_bad(idx, texts)
        return merged

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (no private fields)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name[0] != "_"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CastReport:
        known = {f.name for f in fields(cls) if f.name[0] != "_"}
        report = cls(**{k: v for k, v in data.items() if k in known})
        report.first_bad = [int(i) for i in report.first_bad]
        report.examples = [str(e) for e in report.examples]
        report._pool = _pad(report)
        return report

    def summary(self) -> str:
        """One line naming the violations (or what the cast changed when none)."""
        parts = self._violation_parts() if self.violations else self._audit_parts()
        text = ", ".join(parts) if parts else "all values cast exactly"
        if self.first_bad:
            shown = ", ".join(self.examples)
            total = self.violations or self._changed()
            more = ", ..." if max(total, len(self.first_bad)) > len(self.examples) else ""
            text += f" (first at {self.first_bad}: {shown}{more})"
        return text

    def error_message(self, name: str | None = None) -> str:
        what = (
            f"cast of {name!r} {self.src} -> {self.dst}"
            if name
            else (f"cast {self.src} -> {self.dst}")
        )
        return f"{what} refused: {self.summary()}"

    # -- message parts -------------------------------------------------------------------

    def _changed(self) -> int:
        # clipped values are out of range or ±inf, so they are counted already
        return self.out_of_range + self.nan_inf + self.beyond_rtol + self.parse_errors

    def _violation_parts(self) -> list[str]:
        parts: list[str] = []
        if self.policy == "value":
            if self.out_of_range:
                text = _n(self.out_of_range, "value") + " out of range"
                if self.nonzero_imag:
                    text += f" ({self.nonzero_imag} with a non-zero imaginary part)"
                parts.append(text)
            if self.nan_inf:
                parts.append(f"{self.nan_inf} NaN/inf")
            if self.beyond_rtol:
                text = _n(self.beyond_rtol, "value") + " rounded"
                text += f" beyond rtol={self.rtol:g}" if self.rtol else ""
                text += f" (max rel err {self.max_rel_err:.3g})"
                parts.append(text)
        if self.policy == "clip" and self.unhandled_nan:
            parts.append(f"{self.unhandled_nan} NaN into an integer target (no nan_to given)")
        bad = self.parse_errors - self.coerced
        if bad:
            parts.append(_n(bad, "unparseable string"))
        return parts

    def _audit_parts(self) -> list[str]:
        parts: list[str] = []
        if self.out_of_range:
            parts.append(_n(self.out_of_range, "value") + " out of range")
        if self.clipped:
            parts.append(f"{self.clipped} clipped")
        if self.nan_inf:
            parts.append(f"{self.nan_inf} NaN/inf")
        if self.rounded:
            parts.append(
                f"{self.rounded} rounded (max abs err {self.max_abs_err:.3g}, "
                f"max rel err {self.max_rel_err:.3g})"
            )
        if self.parse_errors:
            parts.append(_n(self.parse_errors, "unparseable string"))
        return parts


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _pad(report: CastReport) -> list[str | None]:
    texts: list[str | None] = list(report.examples[: len(report.first_bad)])
    return texts + [None] * (len(report.first_bad) - len(texts))


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fmt(value: Any) -> str:
    """A source value as short text: ``300.5``, ``nan``, ``(1+2j)``, ``'abc'``."""
    if isinstance(value, bytes | str) or (
        isinstance(value, np.generic) and value.dtype.kind in "SU"
    ):
        text = repr(value.item() if isinstance(value, np.generic) else value)
        return text if len(text) <= 40 else text[:37] + "..."
    return str(value)
