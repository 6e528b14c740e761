"""The safe expression evaluator (``arraystore.core.expr``), without any store.

* Safety: everything outside the whitelist (attributes, subscripts, lambdas,
  comprehensions, strings, dunder names, unknown names and functions, keywords...) is
  refused at compile time with a one-line ``InvalidArgument``; nothing is ever evaluated
  by Python.
* Semantics: results equal the same expression written with numpy (hypothesis over
  random expression trees, evaluated by Python on numpy arrays as the oracle), also when
  the result is written into an ``out`` buffer (the in-place path).
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arraystore.core.expr import FUNCTIONS, Expr, compile_expr, evaluate, names
from arraystore.errors import InvalidArgument

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS = ["price", "qty", "flags"]


# ================================================================ 1. safety
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("__import__('os')", r"name '__import__' is not allowed"),
        ("().__class__", r"attribute access"),
        ("lambda: 1", r"lambda not allowed"),
        ("price.__class__", r"attribute access"),
        ("price.sum()", r"only calls of functions by bare name"),
        ("[x for x in y]", r"comprehensions not allowed"),
        ("(x for x in price)", r"comprehensions not allowed"),
        ("{k: 1 for k in price}", r"comprehensions not allowed"),
        ("open('x')", r"unknown function 'open'"),
        ("eval('1')", r"unknown function 'eval'"),
        ("exec", r"unknown name 'exec'"),
        ('"a"', r"strings are not allowed"),
        ("b'a'", r"strings are not allowed"),
        ("f'{price}'", r"strings not allowed"),
        ("price[0]", r"indexing"),
        ("price[::2]", r"indexing"),
        ("[price, qty]", r"lists not allowed"),
        ("(price, qty)", r"tuples not allowed"),
        ("{price}", r"sets not allowed"),
        ("{1: price}", r"dicts not allowed"),
        ("sqrt(*price)", r"starred arguments"),
        ("clip(price, lo=0, hi=1)", r"keyword arguments are not allowed"),
        ("(y := price)", r"assignment"),
        ("None", r"constant None is not allowed"),
        ("...", r"constant Ellipsis is not allowed"),
        ("price in qty", r"comparison 'in' is not allowed"),
        ("price is not qty", r"comparison 'is not' is not allowed"),
        ("foo + 1", r"unknown name 'foo' in expression 'foo \+ 1' at column 1 \(fields: "),
        ("price.__class__.__bases__[0].__subclasses__()", r"only calls|attribute"),
        ("__builtins__", r"name '__builtins__' is not allowed"),
        ("sqrt(price, qty)", r"sqrt\(\) takes 1 argument, got 2"),
        ("where(price > 0, 1)", r"where\(\) takes 3 arguments, got 2"),
        ("round(price, qty)", r"decimals must be an integer constant"),
        ("float32(price, qty)", r"float32\(\) takes 1 argument"),
        ("price @ qty", r"operator MatMult is not allowed"),
        ("price << 2", r"operator LShift is not allowed"),
        ("99999999999999999999999", r"does not fit in 64 bits"),
        ("price * * qty", r"syntax error in expression at column 9"),
        ("price +", r"syntax error in expression at column"),
        ("import os", r"syntax error in expression at column 1"),
        ("price = 1", r"syntax error in expression at column"),
        ("", r"expression is empty"),
        ("   ", r"expression is empty"),
        ("a\0b", r"cannot parse expression|syntax error"),
        ("x" * 20_000, r"longer than 10000 characters"),
        ("(" * 300 + "price" + ")" * 300, r"syntax error|too deeply nested"),
        ("+".join(["p"] * 3000), r"too long or too deeply nested|too complex"),
        ("-" * 500 + "price", r"too complex|too deeply nested"),
    ],
)
def test_unsafe_or_invalid_expressions_are_refused(text: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match) as info:
        compile_expr(text, FIELDS)
    assert "\n" not in str(info.value)  # one line for the CLI
    assert len(str(info.value)) < 1000 or "allowed:" in str(info.value)


def test_refused_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling never calls builtins: a refused expression has no side effect."""
    calls: list[Any] = []
    monkeypatch.setattr("builtins.open", lambda *a, **k: calls.append(a))
    monkeypatch.setattr("builtins.__import__", lambda *a, **k: calls.append(a))
    for text in ("open('x')", "__import__('os')", "price.__class__"):
        with pytest.raises(InvalidArgument):
            compile_expr(text, FIELDS)
    assert calls == []


def test_unknown_name_lists_what_is_available() -> None:
    with pytest.raises(InvalidArgument) as info:
        compile_expr("prcie * qty", ["price", "qty"])
    assert str(info.value) == (
        "unknown name 'prcie' in expression 'prcie * qty' at column 1 (fields: price, qty)"
    )
    with pytest.raises(InvalidArgument, match=r"\(arrays: a, b\)"):
        compile_expr("a + c", ["a", "b"], what="arrays")


def test_unknown_function_lists_the_whitelist() -> None:
    with pytest.raises(InvalidArgument, match=r"unknown function 'system'.*allowed: abs, "):
        compile_expr("system(price)", FIELDS)


# ================================================================ 2. names
def test_names_in_order_of_first_use_without_constants_or_functions() -> None:
    assert names("sqrt(qty) + price * qty - pi") == ("qty", "price")
    assert names("where(flags > 0, price, nan) * e") == ("flags", "price")
    x = compile_expr("log1p(abs(price))", FIELDS)
    assert x.names == ("price",) and names(x) == ("price",)
    # a field named like a constant shadows the constant
    assert names("e * 2", ["e"]) == ("e",)
    assert compile_expr("e * 2", ["e"])({"e": np.array([1.0])}).tolist() == [2.0]
    assert compile_expr("e * 2", ["x"])({}) == pytest.approx(2 * np.e)
    with pytest.raises(InvalidArgument, match="unknown name"):
        names("a + b", ["a"])


# ============================================================ 3. semantics
RNG = np.random.default_rng(0)
ENV = {
    "price": RNG.normal(size=50) * 10,
    "qty": RNG.integers(-5, 20, size=50).astype("i4"),
    "flags": RNG.integers(0, 4, size=50).astype("u1"),
    "small": RNG.normal(size=50).astype("f4"),
}


def check(text: str, expected: Any) -> None:
    got = evaluate(text, ENV)
    expected = np.asarray(expected)
    assert np.asarray(got).dtype == expected.dtype, (text, np.asarray(got).dtype, expected.dtype)
    np.testing.assert_array_equal(got, expected, strict=False)


def test_operators_follow_numpy() -> None:
    p, q, f, s = ENV["price"], ENV["qty"], ENV["flags"], ENV["small"]
    with np.errstate(all="ignore"):
        check("price * qty + 1", p * q + 1)
        check("-price / qty", -p / q)
        check("qty // 3 % 2", q // 3 % 2)
        check("qty ** 2", q**2)
        check("abs(price) ** 0.5", np.abs(p) ** 0.5)
        check("+price", +p)
        check("small * 2.5", s * 2.5)  # NEP 50: stays float32
        check("flags & 1 | 2 ^ flags", f & 1 | 2 ^ f)
        check("~flags", ~f)
        check("~(price > 0)", ~(p > 0))
        check("0 < price <= 5", (p > 0) & (p <= 5))
        check("qty == 3", q == 3)
        check("qty != 3", q != 3)
        check("price > 0 and qty < 10", np.logical_and(p > 0, q < 10))
        check("price > 0 or qty < 10 or flags == 1", (p > 0) | (q < 10) | (f == 1))
        check("not price > 0", ~(p > 0))
        check("price if qty > 3 else -price", np.where(q > 3, p, -p))
        check("1.5 if qty > 3 else qty", np.where(q > 3, 1.5, q))
        check("True & (qty > 0)", q > 0)
        check("price * 1j", p * 1j)


def test_functions_follow_numpy() -> None:
    p, q = ENV["price"], ENV["qty"]
    with np.errstate(all="ignore"):
        check("log1p(abs(price))", np.log1p(np.abs(p)))
        check("sqrt(price)", np.sqrt(p))  # NaN without a warning (filterwarnings=error)
        check("log(0 * price)", np.log(0 * p))
        check("price / 0", p / 0)
        check("qty // 0", q // 0)
        check("minimum(price, qty)", np.minimum(p, q))
        check("maximum(price, 0)", np.maximum(p, 0))
        check("where(isnan(sqrt(price)), 0, price)", np.where(np.isnan(np.sqrt(p)), 0, p))
        check("clip(price, -1, 1)", np.clip(p, -1, 1))
        check("round(price, 2)", np.round(p, 2))
        check("round(price)", np.round(p))
        check("sign(price) * square(qty)", np.sign(p) * np.square(q))
        check("floor(price) + ceil(price)", np.floor(p) + np.ceil(p))
        check("arctan2(price, qty)", np.arctan2(p, q))
        check("isfinite(price / qty)", np.isfinite(p / q))
        check("float32(price)", p.astype("f4"))
        check("int16(round(price))", np.round(p).astype("i2"))
        check("bool(qty)", q.astype(bool))
        check("uint8(flags) + 1", ENV["flags"] + 1)
        check("pi * e + 0 * price", np.pi * np.e + 0 * p)
        check("nan_to_num(price / 0)", np.nan_to_num(p / 0))
    for name in ("sqrt", "exp", "log10", "sin", "arcsin", "tanh", "isinf", "trunc", "cbrt"):
        assert name in FUNCTIONS


def test_errors_of_numpy_surface_unchanged() -> None:
    with pytest.raises(TypeError):
        evaluate("~price", ENV)  # invert is not defined for floats
    with pytest.raises(ValueError, match="negative integer powers"):
        evaluate("qty ** -1", ENV)


def test_inputs_are_never_modified_in_place() -> None:
    env = {k: v.copy() for k, v in ENV.items()}
    x = compile_expr("(price + 1) * (price + 1) - price * 2 + sqrt(abs(price))", list(env))
    out = np.empty_like(env["price"])
    res = x(env, out)
    assert res is out  # the root wrote straight into out
    for k in env:
        np.testing.assert_array_equal(env[k], ENV[k])
    p = ENV["price"]
    np.testing.assert_array_equal(out, (p + 1) * (p + 1) - p * 2 + np.sqrt(np.abs(p)))


def test_out_of_another_dtype_is_left_alone() -> None:
    x = compile_expr("price * 2", ["price"])
    out = np.zeros(50, dtype="f4")
    res = x({"price": ENV["price"]}, out)
    assert res is not out and res.dtype == np.float64
    assert not out.any()


def test_expr_pickles() -> None:
    x = compile_expr("where(price > 0, log1p(price), -qty) + 0 < price <= 3", ["price", "qty"])
    y = pickle.loads(pickle.dumps(x))
    assert isinstance(y, Expr) and y.text == x.text and y.names == x.names
    np.testing.assert_array_equal(x(ENV), y(ENV))


# ------------------------------------------------ random expression trees
BIN = ["+", "-", "*", "/", "//", "%", "**"]
CMP = ["<", "<=", ">", ">=", "==", "!="]
UFUNC1 = ["sqrt", "abs", "log1p", "exp", "floor", "square", "sign", "negative", "tanh"]
UFUNC2 = ["minimum", "maximum", "hypot", "arctan2", "fmax"]
ARRAYS = {
    "a": np.linspace(-3, 3, 24).reshape(4, 6),
    "b": np.arange(6, dtype="i4") - 2,
    "c": np.linspace(0.5, 2, 24, dtype="f4").reshape(4, 6),
    "d": np.array([[1], [0], [3], [-2]], dtype="i8"),
}


def exprs() -> st.SearchStrategy[str]:
    leaf = st.one_of(
        st.sampled_from(sorted(ARRAYS)),
        st.integers(-3, 3).map(str),
        st.sampled_from(["0.5", "2.0", "1e-3"]),
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(BIN), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(UFUNC1), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(st.sampled_from(UFUNC2), inner, inner).map(
                lambda t: f"{t[0]}({t[1]}, {t[2]})"
            ),
            st.tuples(inner, st.sampled_from(CMP), inner, inner, inner).map(
                lambda t: f"where({t[0]} {t[1]} {t[2]}, {t[3]}, {t[4]})"
            ),
            inner.map(lambda t: f"(-{t})"),
        )

    return st.recursive(leaf, extend, max_leaves=8)


def oracle(text: str) -> Any:
    """Python's own evaluation of the *trusted, generated* text with numpy functions."""
    ns = {n: getattr(np, n) for n in UFUNC1 + UFUNC2 + ["where"]}
    ns["abs"] = np.absolute
    with np.errstate(all="ignore"):
        return eval(text, {"__builtins__": {}, **ns}, dict(ARRAYS))


@settings(SETTINGS, max_examples=150)
@given(text=exprs())
def test_random_expressions_equal_numpy_and_in_place_path(text: str) -> None:
    try:
        expected = np.asarray(oracle(text))
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        with pytest.raises((ValueError, TypeError, ZeroDivisionError, OverflowError)):
            evaluate(text, ARRAYS)
        return
    x = compile_expr(text, list(ARRAYS))
    got = np.asarray(x(ARRAYS))
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    if expected.ndim:  # through an out buffer of the right dtype: bit-for-bit the same
        out = np.full(expected.shape, 7, dtype=expected.dtype)
        res = x(ARRAYS, out)
        if res is not out:
            np.copyto(out, res)
        assert out.tobytes() == expected.tobytes()
    for v in ARRAYS.values():  # inputs untouched
        assert v.flags.writeable
    np.testing.assert_array_equal(ARRAYS["a"], np.linspace(-3, 3, 24).reshape(4, 6))


def test_constants_stay_python_numbers() -> None:
    """``-1``, ``2 * 0.5``, ``2 ** -1`` are Python numbers as in Python, so numpy treats
    them as "weak" (NEP 50) and they do not widen an int32 or float32 array."""
    env = {"b": np.arange(4, dtype="i4"), "s": np.ones(4, dtype="f4")}
    assert evaluate("minimum(b, -1)", env).dtype == np.int32
    assert evaluate("s * (2 * 0.5) + 2 ** -1", env).dtype == np.float32
    assert evaluate("s * -(1 + 1j)", env).dtype == np.complex64
    assert evaluate("s * sqrt(2)", env).dtype == np.float64  # a numpy scalar, like np.sqrt(2)
    for text, match in [
        ("9**9**9**9", "does not fit in 64 bits"),  # refused at once, never computed
        ("2**64 + b", "does not fit in 64 bits"),
        ("b / (1 // 0)", "division by zero in a constant"),
    ]:
        with pytest.raises(InvalidArgument, match=match):
            compile_expr(text, env)
