"""A safe expression language over numpy blocks: never Python ``eval``.

``compile_expr("log1p(abs(price)) * (qty > 0)", ["price", "qty"])`` parses the text once
with :func:`ast.parse` (``mode="eval"``), checks every node against a whitelist and builds
a small tree of picklable nodes; calling the result with ``{name: block}`` evaluates it
with numpy, a whole block per operation (no Python per element).

Allowed:

* numbers (``2``, ``1.5e3``, ``1j``), ``True``/``False`` and the constants ``pi``, ``e``,
  ``nan``, ``inf`` (a field or array of the same name takes precedence);
* names bound to blocks (the fields of an array, or whole arrays of a store);
* arithmetic ``+ - * / // % **``, unary ``-``/``+``, comparisons (chained:
  ``0 < x <= 1`` is ``(0 < x) & (x <= 1)``), ``& | ^ ~`` (numpy bitwise, i.e. logical on
  booleans), ``and``/``or``/``not`` (elementwise ``logical_and``/``or``/``not``),
  parentheses, ``a if cond else b`` (``np.where(cond, a, b)``);
* calls of the whitelisted functions in :data:`FUNCTIONS` by bare name (numpy ufuncs
  such as ``sqrt``, ``log1p``, ``minimum``; ``where``, ``clip``, ``round``; dtype casts
  such as ``float32(x)``/``int64(x)``, which cast like ``astype``).

Everything else — attributes, subscripts, lambdas, comprehensions, keyword or starred
arguments, strings, names containing ``__``, unknown names, unknown functions — is
refused with a one-line :class:`~arraystore.errors.InvalidArgument`.

Semantics are numpy's (NEP 50: Python number constants are "weak", so ``x_f4 * 2.5``
stays float32). Floating-point warnings are silenced (``np.errstate(all="ignore")``):
``log(0)`` is ``-inf`` and ``0/0`` is NaN without a warning, as in the stats kernels.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from arraystore.errors import InvalidArgument

__all__ = ["CONSTANTS", "FUNCTIONS", "Expr", "compile_expr", "evaluate", "names"]

MAX_LENGTH = 10_000
MAX_NODES = 2_000
MAX_DEPTH = 100
_INT_RANGE = (-(2**63), 2**64 - 1)

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "nan": math.nan, "inf": math.inf}

# fmt: off
_UFUNCS_1 = (
    "sqrt", "cbrt", "exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "absolute",
    "fabs", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "arcsinh", "arccosh", "arctanh", "floor", "ceil", "trunc", "rint", "isnan", "isfinite",
    "isinf", "sign", "signbit", "square", "negative", "positive", "deg2rad", "rad2deg",
    "logical_not",
)
_UFUNCS_2 = (
    "minimum", "maximum", "fmin", "fmax", "arctan2", "hypot", "power", "mod", "fmod",
    "copysign", "logaddexp", "logical_and", "logical_or", "logical_xor",
)
_CASTS = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)
# fmt: on


def _round(x: Any, decimals: Any = 0) -> Any:
    return np.round(x, int(decimals))


#: name -> (callable, min args, max args); casts are handled by :class:`_Cast`
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    **{n: (getattr(np, n), 1, 1) for n in _UFUNCS_1},
    **{n: (getattr(np, n), 2, 2) for n in _UFUNCS_2},
    "abs": (np.absolute, 1, 1),
    "where": (np.where, 3, 3),
    "clip": (np.clip, 3, 3),
    "round": (_round, 1, 2),
    "nan_to_num": (np.nan_to_num, 1, 1),
}

_BINOPS: dict[type, np.ufunc] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.remainder,
    ast.Pow: np.power,
    ast.BitAnd: np.bitwise_and,
    ast.BitOr: np.bitwise_or,
    ast.BitXor: np.bitwise_xor,
}
_UNARY: dict[type, np.ufunc] = {
    ast.USub: np.negative,
    ast.UAdd: np.positive,
    ast.Invert: np.invert,
    ast.Not: np.logical_not,
}
_COMPARE: dict[type, np.ufunc] = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
_PY_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
}
_OP_TEXT: dict[type, str] = {ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
_REFUSED: dict[type, str] = {
    ast.Attribute: "attribute access ('.')",
    ast.Subscript: "indexing ('[]')",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Set: "sets",
    ast.Dict: "dicts",
    ast.Starred: "starred arguments",
    ast.NamedExpr: "assignment (':=')",
    ast.JoinedStr: "strings",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "slices",
}


# --------------------------------------------------------------------- nodes
class _Node:
    """A compiled node: ``ev(env, out)`` returns a numpy array or a Python scalar.

    ``fresh``: the node's array result is a new temporary that nothing else references,
    so a parent ufunc may overwrite it. ``out`` is a hint: a ufunc node whose result has
    exactly ``out``'s shape and dtype writes it there (the caller checks identity).
    """

    __slots__ = ()
    fresh = False

    def ev(self, env: Mapping[str, Any], out: np.ndarray | None = None) -> Any:
        raise NotImplementedError


class _Const(_Node):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def ev(self, env: Mapping[str, Any], out: np.ndarray | None = None) -> Any:
        return self.value


class _Var(_Node):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def ev(self, env: Mapping[str, Any], out: np.ndarray | None = None) -> Any:
        return env[self.name]


def _dtype_of(v: Any) -> Any:
    if isinstance(v, (np.ndarray, np.generic)):
        return v.dtype
    if isinstance(v, bool):
        return np.dtype(bool)
    return type(v)  # a weak Python int/float/complex (NEP 50)


class _Call(_Node):
    """``fn(*args)``: a ufunc, an operator or a whitelisted numpy function.

    A ufunc writes into ``out`` or into a fresh temporary of one of its arguments when
    that has the result's exact shape and dtype, so ``a * 2 + b`` allocates nothing when
    given ``out`` and one temporary otherwise.
    """

    __slots__ = ("args", "fn", "ufunc")
    fresh = True

    def __init__(self, fn: Callable[..., Any], args: list[_Node]) -> None:
        self.fn = fn
        self.args = args
        self.ufunc = isinstance(fn, np.ufunc) and fn.nout == 1 and fn.nin == len(args)

    def ev(self, env: Mapping[str, Any], out: np.ndarray | None = None) -> Any:
        if not self.ufunc:
            return self.fn(*[a.ev(env) for a in self.args])
        vals = [a.ev(env, out if i == 0 else None) for i, a in enumerate(self.args)]
        targets = [out] if out is not None else []
        targets += [v for a, v in zip(self.args, vals, strict=True) if a.fresh]
        for t in targets:
            if isinstance(t, np.ndarray) and self._fits(vals, t):
                return self.fn(*vals, out=t)
        return self.fn(*vals)

    def _fits(self, vals: list[Any], target: np.ndarray) -> bool:
        try:
            if np.broadcast_shapes(*[np.shape(v) for v in vals]) != target.shape:
                return False
            resolve = self.fn.resolve_dtypes  # type: ignore[attr-defined]
            dtypes = resolve((*[_dtype_of(v) for v in vals], None))
        except (TypeError, ValueError):
            return False
        return bool(dtypes[-1] == target.dtype) and target.flags.writeable


class _Cast(_Node):
    __slots__ = ("arg", "dtype")
    fresh = True

    def __init__(self, dtype: np.dtype, arg: _Node) -> None:
        self.dtype = dtype
        self.arg = arg

    def ev(self, env: Mapping[str, Any], out: np.ndarray | None = None) -> Any:
        return np.asarray(self.arg.ev(env)).astype(self.dtype, copy=not self.arg.fresh)


class _Compare(_Node):
    """``a < b <= c``: each middle operand evaluated once, results and-ed."""

    __slots__ = ("first", "rest")
    fresh = True

    def __init__(self, first: _Node, rest: list[tuple[np.ufunc, _Node]]) -> None:
        self.first = first
        self.rest = rest

    def ev(self, env: Mapping[str, Any], out: np.ndarray | None = None) -> Any:
        left = self.first.ev(env)
        result = None
        for op, node in self.rest:
            right = node.ev(env)
            part = op(left, right)
            result = part if result is None else np.logical_and(result, part)
            left = right
        return result


class _BoolOp(_Node):
    __slots__ = ("op", "values")
    fresh = True

    def __init__(self, op: np.ufunc, values: list[_Node]) -> None:
        self.op = op
        self.values = values

    def ev(self, env: Mapping[str, Any], out: np.ndarray | None = None) -> Any:
        result = self.values[0].ev(env)
        for node in self.values[1:]:
            result = self.op(result, node.ev(env))
        return result


# ------------------------------------------------------------------ compiler
class Expr:
    """A compiled expression: ``expr({name: block, ...})`` evaluates it with numpy.

    ``text`` is the source, ``names`` the data names it reads (fields or arrays, in
    order of first use), ``nodes`` the number of operations (a bound on temporaries).
    Picklable (a tree of small objects), so process and cluster executors can ship it.
    """

    __slots__ = ("names", "nodes", "root", "text")

    def __init__(self, text: str, root: _Node, names: tuple[str, ...], nodes: int) -> None:
        self.text = text
        self.root = root
        self.names = names
        self.nodes = nodes

    def __call__(self, env: Mapping[str, Any], out: np.ndarray | None = None) -> Any:
        """Evaluate; with ``out``, the result may be written there (check ``res is out``)."""
        with np.errstate(all="ignore"):
            return self.root.ev(env, out)

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.text, self.root, self.names, self.nodes)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.text, self.root, self.names, self.nodes = state

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"


class _Compiler:
    def __init__(self, text: str, available: set[str] | None, what: str) -> None:
        self.text = text
        self.available = available
        self.what = what
        self.used: dict[str, None] = {}
        self.count = 0

    def fail(self, message: str, node: ast.AST | None = None, hint: str = "") -> InvalidArgument:
        col = getattr(node, "col_offset", None)
        where = f" at column {col + 1}" if col is not None else ""
        hint = f" ({hint})" if hint else ""
        return InvalidArgument(f"{message} in expression {_show(self.text)}{where}{hint}")

    def build(self, node: ast.AST, depth: int = 0) -> _Node:
        self.count += 1
        if depth > MAX_DEPTH or self.count > MAX_NODES:
            raise InvalidArgument(
                f"expression is too complex (more than {MAX_DEPTH} levels or "
                f"{MAX_NODES} operations)"
            )
        d = depth + 1
        if isinstance(node, ast.Constant):
            return _Const(self.constant(node))
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.fail(f"operator {type(node.op).__name__} is not allowed", node)
            args = [self.build(node.left, d), self.build(node.right, d)]
            return self.fold(node, type(node.op), args) or _Call(op, args)
        if isinstance(node, ast.UnaryOp):
            args = [self.build(node.operand, d)]
            return self.fold(node, type(node.op), args) or _Call(_UNARY[type(node.op)], args)
        if isinstance(node, ast.Compare):
            rest = []
            for op_node, right in zip(node.ops, node.comparators, strict=True):
                op = _COMPARE.get(type(op_node))
                if op is None:
                    name = _OP_TEXT.get(type(op_node), type(op_node).__name__)
                    raise self.fail(f"comparison {name!r} is not allowed", node)
                rest.append((op, self.build(right, d)))
            return _Compare(self.build(node.left, d), rest)
        if isinstance(node, ast.BoolOp):
            ufunc = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            return _BoolOp(ufunc, [self.build(v, d) for v in node.values])
        if isinstance(node, ast.IfExp):
            args = [self.build(node.test, d), self.build(node.body, d), self.build(node.orelse, d)]
            return _Call(np.where, args)
        if isinstance(node, ast.Call):
            return self.call(node, d)
        what = _REFUSED.get(type(node), type(node).__name__)
        raise self.fail(f"{what} not allowed", node)

    def fold(self, node: ast.AST, op: type, args: list[_Node]) -> _Node | None:
        """An operator on Python numbers gives a Python number, as it does in Python
        (``-1`` stays a "weak" int for numpy); guarded against huge integer powers."""
        if op not in _PY_OPS or not all(isinstance(a, _Const) for a in args):
            return None
        vals = [a.value for a in args]  # type: ignore[attr-defined]
        if op is ast.Invert and isinstance(vals[0], bool):
            return None  # ~True is deprecated in Python: numpy's invert
        big_pow = op is ast.Pow and all(isinstance(v, int) for v in vals)
        if big_pow and abs(vals[0]) > 1 and vals[1] > 64:
            raise self.fail("integer constant does not fit in 64 bits", node)
        try:
            value = _PY_OPS[op](*vals)
        except ZeroDivisionError:
            raise self.fail("division by zero in a constant", node) from None
        except OverflowError:
            return None  # float overflow: numpy gives inf
        if isinstance(value, int) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            raise self.fail(f"integer constant {value} does not fit in 64 bits", node)
        return _Const(value)

    def constant(self, node: ast.Constant) -> Any:
        value = node.value
        if isinstance(value, (str, bytes)):
            raise self.fail("strings are not allowed", node)
        if isinstance(value, (bool, float, complex)):
            return value
        if isinstance(value, int):
            if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
                raise self.fail(f"integer constant {value} does not fit in 64 bits", node)
            return value
        raise self.fail(f"constant {value!r} is not allowed", node)

    def name(self, node: ast.Name) -> _Node:
        ident = node.id
        if "__" in ident:
            raise self.fail(f"name {ident!r} is not allowed", node)
        if (self.available is None and ident not in CONSTANTS) or (
            self.available is not None and ident in self.available
        ):
            self.used[ident] = None
            return _Var(ident)
        if ident in CONSTANTS:
            return _Const(CONSTANTS[ident])
        assert self.available is not None
        known = ", ".join(sorted(self.available)) or "none"
        raise self.fail(f"unknown name {ident!r}", node, f"{self.what}: {known}")

    def call(self, node: ast.Call, depth: int) -> _Node:
        if not isinstance(node.func, ast.Name):
            raise self.fail("only calls of functions by bare name are allowed", node)
        fname = node.func.id
        if "__" in fname:
            raise self.fail(f"name {fname!r} is not allowed", node)
        if fname not in FUNCTIONS and fname not in _CASTS:
            allowed = ", ".join(sorted([*FUNCTIONS, *_CASTS]))
            raise self.fail(f"unknown function {fname!r}", node, f"allowed: {allowed}")
        if node.keywords:
            raise self.fail(f"keyword arguments are not allowed (in {fname}())", node)
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(f"starred arguments are not allowed (in {fname}())", node)
        n = len(node.args)
        if fname in _CASTS:
            if n != 1:
                raise self.fail(f"{fname}() takes 1 argument, got {n}", node)
            dtype = np.dtype(np.bool_ if fname == "bool" else fname)
            return _Cast(dtype, self.build(node.args[0], depth))
        fn, lo, hi = FUNCTIONS[fname]
        if not lo <= n <= hi:
            takes = str(lo) if lo == hi else f"{lo} to {hi}"
            plural = "" if hi == 1 else "s"
            raise self.fail(f"{fname}() takes {takes} argument{plural}, got {n}", node)
        if fname == "round" and n == 2:
            dec = node.args[1]
            if not (isinstance(dec, ast.Constant) and type(dec.value) is int):
                raise self.fail("round(): decimals must be an integer constant", node)
        return _Call(fn, [self.build(a, depth) for a in node.args])


def _parse(text: str) -> ast.Expression:
    if not isinstance(text, str):
        raise InvalidArgument(f"expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise InvalidArgument(f"expression is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise InvalidArgument("expression is empty")
    try:
        return ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        col = exc.offset if exc.offset is not None else 0
        reason = (exc.msg or "invalid syntax").split(" (")[0]
        raise InvalidArgument(
            f"syntax error in expression at column {col}: {reason} ({_show(text.strip())})"
        ) from None
    except (RecursionError, MemoryError):
        raise InvalidArgument("expression is too long or too deeply nested") from None
    except ValueError as exc:  # e.g. null bytes
        raise InvalidArgument(f"cannot parse expression: {exc}") from None


def _show(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def compile_expr(
    text: str | Expr, available: Iterable[str] | None = None, what: str = "fields"
) -> Expr:
    """Parse and check ``text`` once; ``available`` are the names it may read.

    With ``available=None`` every identifier (except the constants) is a data name, bound
    at evaluation time. ``what`` labels the names in errors ("fields", "arrays").
    """
    if isinstance(text, Expr):
        text = text.text
    tree = _parse(text)
    comp = _Compiler(text.strip(), None if available is None else set(available), what)
    try:
        root = comp.build(tree.body)
    except RecursionError:
        raise InvalidArgument("expression is too deeply nested") from None
    ops = sum(1 for n in _walk(root) if isinstance(n, (_Call, _Cast, _Compare, _BoolOp)))
    return Expr(text.strip(), root, tuple(comp.used), ops)


def _walk(node: _Node) -> list[_Node]:
    out, todo = [], [node]
    while todo:
        n = todo.pop()
        out.append(n)
        if isinstance(n, _Call):
            todo.extend(n.args)
        elif isinstance(n, _Cast):
            todo.append(n.arg)
        elif isinstance(n, _Compare):
            todo.extend([n.first, *(r for _, r in n.rest)])
        elif isinstance(n, _BoolOp):
            todo.extend(n.values)
    return out


def names(expr: str | Expr, available: Iterable[str] | None = None) -> tuple[str, ...]:
    """The data names an expression reads, in order of first use (validates it too).

    Without ``available``, every identifier that is not a constant (``pi``, ``e``,
    ``nan``, ``inf``) or a function name in call position counts.
    """
    if isinstance(expr, Expr) and available is None:
        return expr.names
    return compile_expr(expr, available).names


def evaluate(text: str | Expr, env: Mapping[str, Any]) -> Any:
    """Compile ``text`` against the names of ``env`` and evaluate it once."""
    return compile_expr(text, list(env), "names")(env)
