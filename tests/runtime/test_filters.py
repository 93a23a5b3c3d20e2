"""Filter expressions: the builder, evaluation semantics and Convex's error texts."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import QueryError
from gateway.runtime.filters import (
    MAX_EXPRESSION_DEPTH,
    MAX_QUERY_OPERATORS,
    And,
    Arithmetic,
    Compare,
    EvalError,
    Expression,
    Field,
    FilterBuilder,
    Literal,
    Negate,
    Not,
    Or,
    check_operator_count,
    compile_filter,
    display_value,
    evaluate,
    filter_repr,
    matches,
    referenced_fields,
    type_name,
)
from gateway.values import UNSET, Int64

q = FilterBuilder()
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
PROPS = settings(max_examples=150, deadline=None, derandomize=True)


def ev(expr: Expression, doc: dict[str, Any] | None = None) -> Any:
    return evaluate(expr, doc or {})


def bits(x: float) -> int:
    return int(struct.unpack(">Q", struct.pack(">d", x))[0])


def same(a: Any, b: Any) -> bool:
    """Equality that is bitwise for floats and type-strict for Int64 vs float."""
    if isinstance(a, float) and isinstance(b, float):
        return bits(a) == bits(b) or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


# --- the builder -------------------------------------------------------------------------


def test_builder_makes_immutable_nodes() -> None:
    e = q.eq(q.field("a.b"), 1)
    assert isinstance(e, Compare) and e.op == "eq"
    assert isinstance(e.left, Field) and e.left.path == "a.b"
    assert isinstance(e.right, Literal) and same(e.right.value, 1.0)  # plain int -> Float64
    with pytest.raises(AttributeError):
        e.op = "neq"  # type: ignore[misc]
    for name, cls in [
        ("add", Arithmetic),
        ("sub", Arithmetic),
        ("mul", Arithmetic),
        ("div", Arithmetic),
        ("mod", Arithmetic),
    ]:
        node = getattr(q, name)(1.0, 2.0)
        assert isinstance(node, cls) and node.op == name
    for name in ["eq", "neq", "lt", "lte", "gt", "gte"]:
        node = getattr(q, name)(1.0, 2.0)
        assert isinstance(node, Compare) and node.op == name
    assert isinstance(q.neg(1.0), Negate)
    assert isinstance(q.not_(True), Not)
    assert isinstance(q.and_(True), And) and isinstance(q.or_(True, False), Or)


def test_literals_are_normalised_and_unset_is_allowed() -> None:
    lit = q.eq(UNSET, (1, "x"))
    assert isinstance(lit, Compare)
    assert isinstance(lit.left, Literal) and lit.left.value is UNSET
    assert isinstance(lit.right, Literal) and lit.right.value == [1.0, "x"]
    assert type(lit.right.value[0]) is float
    big = q.eq(Int64(7), 1.5)
    assert isinstance(big, Compare) and isinstance(big.left, Literal)
    assert type(big.left.value) is Int64


def test_non_convex_literal_is_refused() -> None:
    with pytest.raises(ValueError):
        q.eq(q.field("a"), object())
    with pytest.raises(ValueError):
        q.eq(q.field("a"), 2**60)  # a plain int beyond 2^53 is not a Float64


def test_field_path_is_checked_and_trimmed() -> None:
    f = q.field(".a.b.")
    assert isinstance(f, Field) and f.path == "a.b"
    for bad in ["", "...", 3]:
        with pytest.raises(QueryError) as info:
            q.field(bad)  # type: ignore[arg-type]
        assert str(info.value) == f'q.field() takes a field path such as "a.b", got {bad!r}'


@pytest.mark.parametrize(
    ("action", "what", "use"),
    [
        (lambda e: e == 1, "==", "q.eq()"),
        (lambda e: e != 1, "!=", "q.neq()"),
        (lambda e: e < 1, "<, <=, >, >=", "q.lt(), q.lte(), q.gt(), q.gte()"),
        (lambda e: e <= 1, "<, <=, >, >=", "q.lt(), q.lte(), q.gt(), q.gte()"),
        (lambda e: e > 1, "<, <=, >, >=", "q.lt(), q.lte(), q.gt(), q.gte()"),
        (lambda e: e >= 1, "<, <=, >, >=", "q.lt(), q.lte(), q.gt(), q.gte()"),
        (lambda e: bool(e), "`and`/`or`/`not`/`if`", "q.and_(), q.or_(), q.not_()"),
        (lambda e: e and True, "`and`/`or`/`not`/`if`", "q.and_(), q.or_(), q.not_()"),
    ],
)
def test_python_operators_on_expressions_are_refused(action: Any, what: str, use: str) -> None:
    with pytest.raises(QueryError) as info:
        action(q.field("a"))
    assert str(info.value) == (
        f"A filter expression cannot be used with Python's {what}; use {use} "
        '(for example q.eq(q.field("a"), 1))'
    )


def test_expressions_are_hashable_by_identity() -> None:
    e = q.field("a")
    assert e in {e}


def test_canonical_form_is_structural_and_bitwise() -> None:
    assert q.eq(q.field("a"), 1).canonical() == q.eq(q.field("a"), 1.0).canonical()
    assert q.eq(q.field("a"), 0.0).canonical() != q.eq(q.field("a"), -0.0).canonical()
    assert q.eq(q.field("a"), 1.0).canonical() != q.eq(q.field("a"), Int64(1)).canonical()
    assert q.eq(q.field("a"), UNSET).canonical() != q.eq(q.field("a"), None).canonical()
    assert q.eq(q.field("a"), 1.0).canonical() != q.eq(1.0, q.field("a")).canonical()
    assert q.eq(q.field("a"), UNSET).canonical() == (
        '{"$eq":[{"$field":"a"},{"$literal":"undefined"}]}'
    )
    assert filter_repr([]) == "[]"
    two = filter_repr([q.lt(q.field("x"), 1.0), q.not_(q.field("y"))])
    assert two.startswith('[{"$lt":') and two.count("$field") == 2


def test_referenced_fields() -> None:
    e = q.and_(
        q.eq(q.field("a"), 1),
        q.or_(q.gt(q.add(q.field("b.c"), q.neg(q.field("d"))), 2), q.not_(q.field("a"))),
    )
    assert referenced_fields(e) == {"a", "b.c", "d"}
    assert referenced_fields(q.eq(1, 2)) == set()


def test_depth_limit() -> None:
    e: Expression = q.field("a")
    for _ in range(MAX_EXPRESSION_DEPTH - 1):
        e = q.not_(e)
    assert e.depth == MAX_EXPRESSION_DEPTH
    with pytest.raises(QueryError) as info:
        q.not_(e)
    assert str(info.value) == (
        f"Filter expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep"
    )


# --- compile_filter ----------------------------------------------------------------------


def test_compile_filter_returns_the_expression() -> None:
    e = compile_filter(lambda q: q.gt(q.field("celsius"), 30.0))
    assert isinstance(e, Compare)
    assert matches(e, {"celsius": 31.0}) is True
    assert matches(e, {"celsius": 30.0}) is False


def test_compile_filter_accepts_a_bare_literal() -> None:
    e = compile_filter(lambda q: True)
    assert isinstance(e, Literal) and e.value is True
    assert matches(e, {}) is True
    e = compile_filter(lambda q: UNSET)
    assert isinstance(e, Literal) and e.value is UNSET
    # A predicate that forgot to return gives null, which Convex refuses as a Boolean.
    e = compile_filter(lambda q: None)
    with pytest.raises(EvalError) as info:
        matches(e, {})
    assert str(info.value) == "EvalError: Cannot use value null (type Null) as a Boolean"


def test_compile_filter_refuses_bad_predicates() -> None:
    with pytest.raises(QueryError) as info:
        compile_filter(42)  # type: ignore[arg-type]
    assert str(info.value) == "filter() takes a function of q, got int"

    async def predicate(q: FilterBuilder) -> Expression:
        return q.eq(1, 1)

    with pytest.raises(QueryError) as info:
        compile_filter(predicate)
    assert str(info.value) == "The filter() predicate must not be async: return q.eq(...) etc."

    with pytest.raises(QueryError) as info:
        compile_filter(lambda q: object())
    assert str(info.value).startswith(
        "The filter() predicate must return an expression built with q (or a Convex "
        "value), got object: "
    )


def test_operator_limit() -> None:
    assert MAX_QUERY_OPERATORS == 256
    compile_filter(lambda q: True, existing_operators=255)
    check_operator_count(0)
    for n in (256, 300):
        with pytest.raises(QueryError) as info:
            compile_filter(lambda q: True, existing_operators=n)
        assert str(info.value) == "Can't construct query with more than 256 operators"


# --- comparisons -------------------------------------------------------------------------

# One representative per step of Convex's total order, ascending.
ORDERED: list[Any] = [
    UNSET,
    None,
    Int64(I64_MIN),
    Int64(-1),
    Int64(0),
    Int64(5),
    Int64(I64_MAX),
    -math.nan,
    -math.inf,
    -1.5,
    -0.0,
    0.0,
    5e-324,
    1.0,
    math.inf,
    math.nan,
    False,
    True,
    "",
    "A",
    "a",
    "ab",
    "é",
    b"",
    b"\x00",
    b"\x01",
    [],
    [None],
    [1.0],
    [1.0, 2.0],
    {},
    {"a": 1.0},
    {"a": 1.0, "b": 1.0},
    {"b": 0.0},
]


@pytest.mark.parametrize("i", range(len(ORDERED)))
def test_comparisons_follow_the_total_order(i: int) -> None:
    for j in range(len(ORDERED)):
        a, b = ORDERED[i], ORDERED[j]
        expected = {
            "eq": i == j,
            "neq": i != j,
            "lt": i < j,
            "lte": i <= j,
            "gt": i > j,
            "gte": i >= j,
        }
        for op, want in expected.items():
            got = ev(getattr(q, op)(a, b))
            assert got is want, (op, a, b)


def test_bitwise_float_equality() -> None:
    assert ev(q.eq(-0.0, 0.0)) is False
    assert ev(q.neq(-0.0, 0.0)) is True
    assert ev(q.lt(-0.0, 0.0)) is True
    assert ev(q.eq(math.nan, math.nan)) is True
    assert ev(q.eq(q.field("x"), math.nan), {"x": math.nan}) is True
    assert ev(q.eq(math.nan, -math.nan)) is False
    assert ev(q.eq(1.0, Int64(1))) is False  # different types never equal
    assert ev(q.lt(Int64(I64_MAX), -math.inf)) is True  # every Int64 < every Float64


def test_cross_type_comparisons_are_legal() -> None:
    assert ev(q.lt(q.field("s"), 3.0), {"s": "text"}) is False
    assert ev(q.gt(q.field("s"), 3.0), {"s": "text"}) is True
    assert ev(q.lt(True, "")) is True


def test_missing_fields_are_undefined() -> None:
    doc = {"a": None, "n": {"x": 1.0}, "arr": [{"x": 1.0}]}
    assert ev(q.field("missing"), doc) is UNSET
    assert ev(q.eq(q.field("missing"), UNSET), doc) is True
    assert ev(q.eq(q.field("missing"), None), doc) is False
    assert ev(q.lt(q.field("missing"), None), doc) is True
    assert ev(q.eq(q.field("a"), None), doc) is True
    assert ev(q.eq(q.field("a"), UNSET), doc) is False
    assert ev(q.neq(q.field("missing"), 2.0), doc) is True
    assert same(ev(q.field("n.x"), doc), 1.0)
    assert ev(q.field("n.y"), doc) is UNSET
    assert ev(q.field("a.x"), doc) is UNSET  # through null
    assert ev(q.field("arr.x"), doc) is UNSET  # arrays are not traversed
    assert ev(q.gt(q.field("missing"), UNSET), doc) is False


def test_system_fields_are_fields() -> None:
    doc = {"_id": "abc", "_creationTime": 1700.0, "v": 1.0}
    assert ev(q.eq(q.field("_id"), "abc"), doc) is True
    assert ev(q.gt(q.field("_creationTime"), 1000), doc) is True


@PROPS
@given(st.floats(allow_nan=True), st.floats(allow_nan=True))
def test_float_comparisons_match_ieee_total_order(a: float, b: float) -> None:
    def key(x: float) -> int:
        n = bits(x)
        return n ^ (2**64 - 1) if n >> 63 else n | (1 << 63)

    assert ev(q.eq(a, b)) is (bits(a) == bits(b))
    assert ev(q.lt(a, b)) is (key(a) < key(b))
    assert ev(q.gte(a, b)) is (key(a) >= key(b))


# --- arithmetic --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        (q.add(1.5, 2.0), 3.5),
        (q.sub(1.0, 3.0), -2.0),
        (q.mul(-2.0, 0.0), -0.0),
        (q.div(7.0, 2.0), 3.5),
        (q.div(1.0, 0.0), math.inf),
        (q.div(-1.0, 0.0), -math.inf),
        (q.div(1.0, -0.0), -math.inf),
        (q.div(-1.0, -0.0), math.inf),
        (q.div(0.0, 0.0), math.nan),
        (q.div(math.nan, 0.0), math.nan),
        (q.mod(7.0, 3.0), 1.0),
        (q.mod(-7.0, 3.0), -1.0),  # fmod: sign of the dividend (not Python's %)
        (q.mod(7.0, -3.0), 1.0),
        (q.mod(-0.0, 3.0), -0.0),
        (q.mod(5.5, 2.0), 1.5),
        (q.mod(1.0, 0.0), math.nan),
        (q.mod(math.inf, 2.0), math.nan),
        (q.mod(1.0, math.inf), 1.0),
        (q.mod(-1.0, -math.inf), -1.0),
        (q.add(math.inf, -math.inf), math.nan),
        (q.mul(1e308, 10.0), math.inf),
        (q.neg(0.0), -0.0),
        (q.neg(-2.5), 2.5),
        (q.add(Int64(2), Int64(3)), Int64(5)),
        (q.sub(Int64(2), Int64(3)), Int64(-1)),
        (q.mul(Int64(-4), Int64(3)), Int64(-12)),
        (q.div(Int64(7), Int64(2)), Int64(3)),
        (q.div(Int64(-7), Int64(2)), Int64(-3)),  # truncates toward zero
        (q.div(Int64(7), Int64(-2)), Int64(-3)),
        (q.div(Int64(-7), Int64(-2)), Int64(3)),
        (q.mod(Int64(-7), Int64(2)), Int64(-1)),  # sign of the dividend
        (q.mod(Int64(7), Int64(-2)), Int64(1)),
        (q.mod(Int64(-7), Int64(-2)), Int64(-1)),
        (q.add(Int64(I64_MAX - 1), Int64(1)), Int64(I64_MAX)),
        (q.sub(Int64(I64_MIN + 1), Int64(1)), Int64(I64_MIN)),
        (q.div(Int64(I64_MIN), Int64(1)), Int64(I64_MIN)),
        (q.neg(Int64(I64_MAX)), Int64(-I64_MAX)),
        (q.neg(Int64(5)), Int64(-5)),
        (q.add(1, 2), 3.0),  # plain ints are Float64
        (q.div(1, 3), 1 / 3),
        # Convex's own worked example: -(3*5 + (5 - 11 % 3)) / 3 == -6
        (
            q.div(
                q.neg(
                    q.add(q.mul(Int64(3), Int64(5)), q.sub(Int64(5), q.mod(Int64(11), Int64(3))))
                ),
                Int64(3),
            ),
            Int64(-6),
        ),
    ],
)
def test_arithmetic(expr: Expression, want: Any) -> None:
    assert same(ev(expr), want)


def test_arithmetic_on_fields() -> None:
    doc = {"a": 2.0, "b": Int64(10), "c": Int64(3)}
    assert same(ev(q.mul(q.field("a"), 4), doc), 8.0)
    assert same(ev(q.mod(q.field("b"), q.field("c")), doc), Int64(1))
    assert ev(q.eq(q.mod(q.field("b"), Int64(2)), Int64(0)), doc) is True


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (q.add(Int64(1), 1.0), "Cannot add 1 (type Int64) and 1.0 (type Float64)"),
        (q.sub(2.5, Int64(1)), "Cannot subtract 2.5 (type Float64) and 1 (type Int64)"),
        (q.mul("a", 2), 'Cannot multiply "a" (type String) and 2.0 (type Float64)'),
        (q.div(None, 2.0), "Cannot divide null (type Null) and 2.0 (type Float64)"),
        (q.mod(True, 2.0), "Cannot mod true (type Boolean) and 2.0 (type Float64)"),
        (
            q.add(q.field("missing"), 1.0),
            "Cannot add undefined (type undefined) and 1.0 (type Float64)",
        ),
        (
            q.add([1.0], {"k": b"\x00\x01"}),
            'Cannot add [1.0] (type Array) and {k: b"AAE="} (type Object)',
        ),
        (q.neg("x"), 'Cannot negate "x" (type String)'),
        (q.neg(q.field("missing")), "Cannot negate undefined (type undefined)"),
        (
            q.add(Int64(I64_MAX), Int64(1)),
            f"Cannot add {I64_MAX} (type Int64) and 1 (type Int64): the result overflows Int64",
        ),
        (
            q.sub(Int64(I64_MIN), Int64(1)),
            f"Cannot subtract {I64_MIN} (type Int64) and 1 (type Int64): the result "
            "overflows Int64",
        ),
        (
            q.mul(Int64(2**32), Int64(2**31)),
            f"Cannot multiply {2**32} (type Int64) and {2**31} (type Int64): the result "
            "overflows Int64",
        ),
        (
            q.div(Int64(I64_MIN), Int64(-1)),
            f"Cannot divide {I64_MIN} (type Int64) and -1 (type Int64): the result overflows Int64",
        ),
        (
            q.mod(Int64(I64_MIN), Int64(-1)),
            f"Cannot mod {I64_MIN} (type Int64) and -1 (type Int64): the result overflows Int64",
        ),
        (
            q.neg(Int64(I64_MIN)),
            f"Cannot negate {I64_MIN} (type Int64): the result overflows Int64",
        ),
        (q.div(Int64(1), Int64(0)), "Cannot divide 1 (type Int64) by zero"),
        (q.mod(Int64(-5), Int64(0)), "Cannot mod -5 (type Int64) by zero"),
    ],
)
def test_arithmetic_errors(expr: Expression, message: str) -> None:
    with pytest.raises(EvalError) as info:
        ev(expr)
    assert str(info.value) == f"EvalError: {message}"
    assert isinstance(info.value, QueryError)


@PROPS
@given(st.integers(I64_MIN, I64_MAX), st.integers(I64_MIN, I64_MAX))
def test_int64_division_identity(a: int, b: int) -> None:
    if b == 0 or (a == I64_MIN and b == -1):
        with pytest.raises(EvalError):
            ev(q.div(Int64(a), Int64(b)))
        return
    quotient = ev(q.div(Int64(a), Int64(b)))
    remainder = ev(q.mod(Int64(a), Int64(b)))
    assert type(quotient) is Int64 and type(remainder) is Int64
    assert quotient * b + remainder == a
    assert abs(remainder) < abs(b)
    assert remainder == 0 or (remainder < 0) == (a < 0)


@PROPS
@given(st.integers(I64_MIN, I64_MAX), st.integers(I64_MIN, I64_MAX))
def test_int64_add_mul_overflow(a: int, b: int) -> None:
    for op, exact in (("add", a + b), ("sub", a - b), ("mul", a * b)):
        expr = getattr(q, op)(Int64(a), Int64(b))
        if I64_MIN <= exact <= I64_MAX:
            assert same(ev(expr), Int64(exact))
        else:
            with pytest.raises(EvalError):
                ev(expr)


# --- logic -------------------------------------------------------------------------------


@pytest.mark.parametrize("a", [False, True])
@pytest.mark.parametrize("b", [False, True])
@pytest.mark.parametrize("c", [False, True])
def test_logic_truth_tables(a: bool, b: bool, c: bool) -> None:
    assert ev(q.and_(a, b, c)) is (a and b and c)
    assert ev(q.or_(a, b, c)) is (a or b or c)
    assert ev(q.not_(a)) is (not a)
    assert ev(q.and_(a)) is a and ev(q.or_(a)) is a


def test_empty_and_or() -> None:
    assert ev(q.and_()) is True
    assert ev(q.or_()) is False


@pytest.mark.parametrize(
    ("expr", "shown"),
    [
        (q.and_(True, 1), "1.0 (type Float64)"),
        (q.or_(False, "yes"), '"yes" (type String)'),
        (q.not_(q.field("missing")), "undefined (type undefined)"),
        (q.not_(Int64(0)), "0 (type Int64)"),
        (q.and_(None), "null (type Null)"),
        (q.or_([True]), "[true] (type Array)"),
    ],
)
def test_logic_needs_booleans(expr: Expression, shown: str) -> None:
    with pytest.raises(EvalError) as info:
        ev(expr)
    assert str(info.value) == f"EvalError: Cannot use value {shown} as a Boolean"


def test_logic_short_circuits_like_convex() -> None:
    assert ev(q.and_(False, 1.0)) is False
    assert ev(q.or_(True, "x")) is True
    assert ev(q.and_(False, q.div(Int64(1), Int64(0)))) is False


def test_matches_requires_a_boolean_result() -> None:
    e = compile_filter(lambda q: q.field("done"))
    assert matches(e, {"done": True}) is True
    assert matches(e, {"done": False}) is False
    with pytest.raises(EvalError) as info:
        matches(e, {})
    assert str(info.value) == "EvalError: Cannot use value undefined (type undefined) as a Boolean"
    with pytest.raises(EvalError) as info:
        matches(compile_filter(lambda q: q.add(1, 2)), {})
    assert str(info.value) == "EvalError: Cannot use value 3.0 (type Float64) as a Boolean"


def test_realistic_filter() -> None:
    e = compile_filter(
        lambda q: q.and_(
            q.eq(q.field("device"), "pump-1"),
            q.or_(q.gt(q.field("celsius"), 30), q.eq(q.field("alarm"), True)),
            q.neq(q.field("archived"), True),
        )
    )
    docs: list[dict[str, Any]] = [
        {"device": "pump-1", "celsius": 31.0},
        {"device": "pump-1", "celsius": 20.0, "alarm": True},
        {"device": "pump-1", "celsius": 20.0},
        {"device": "pump-2", "celsius": 40.0},
        {"device": "pump-1", "celsius": 40.0, "archived": True},
        {"device": "pump-1", "celsius": "hot"},  # a String sorts after every number
    ]
    assert [matches(e, d) for d in docs] == [True, True, False, False, False, True]


# --- how values are shown ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown", "type_"),
    [
        (UNSET, "undefined", "undefined"),
        (None, "null", "Null"),
        (True, "true", "Boolean"),
        (False, "false", "Boolean"),
        (Int64(-42), "-42", "Int64"),
        (5.0, "5.0", "Float64"),
        (3, "3.0", "Float64"),
        (-0.0, "-0.0", "Float64"),
        (0.1, "0.1", "Float64"),
        (1e16, "1e16", "Float64"),
        (1.5e16, "1.5e16", "Float64"),
        (1e15, "1000000000000000.0", "Float64"),
        (1.5e-7, "1.5e-7", "Float64"),
        (0.0001, "0.0001", "Float64"),
        (math.nan, "NaN", "Float64"),
        (math.inf, "inf", "Float64"),
        (-math.inf, "-inf", "Float64"),
        ('a"b\\c\n\t\x01é', '"a\\"b\\\\c\\n\\t\\u{1}é"', "String"),
        (b"\x00\x01", 'b"AAE="', "Bytes"),
        ([1.0, "x", None], '[1.0, "x", null]', "Array"),
        ({"b": Int64(1), "a": [True]}, "{a: [true], b: 1}", "Object"),
    ],
)
def test_display_value(value: Any, shown: str, type_: str) -> None:
    assert display_value(value) == shown
    assert type_name(value) == type_
