"""The ``q`` of ``.filter(lambda q: ...)``: immutable expressions and their evaluation.

Semantics follow Convex's server (``Expression::eval`` in ``crates/common/src/query.rs``):

- ``field`` yields the value at a dotted path, or ``UNSET`` (``undefined``) when missing;
- comparisons use the total order over all values (``undefined`` < ``null`` < Int64 <
  Float64 < ...), so comparing a string to a number is legal and float equality is bitwise;
- arithmetic takes Int64 with Int64 or Float64 with Float64 only. Int64 division and
  remainder truncate toward zero (Rust ``/`` and ``%``); Float64 remainder is C ``fmod``;
  Float64 division by zero gives inf/NaN. Int64 overflow or division by zero is an
  ``EvalError`` (Rust panics there; Outpost reports it instead);
- ``and``/``or`` short-circuit and every operand they look at must be a Boolean; a filter
  whose result is not a Boolean is an ``EvalError`` too (``Filter`` calls ``into_boolean``).
"""

from __future__ import annotations

import base64
import json
import math
import operator
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from typing import Literal as TypingLiteral

from gateway.errors import QueryError
from gateway.schema.paths import get_field_path
from gateway.values import UNSET, Int64, compare_values, encode_key, to_convex

__all__ = [
    "MAX_EXPRESSION_DEPTH",
    "MAX_QUERY_OPERATORS",
    "And",
    "Arithmetic",
    "Compare",
    "EvalError",
    "Expression",
    "Field",
    "FilterBuilder",
    "Literal",
    "Negate",
    "Not",
    "Or",
    "check_operator_count",
    "compile_filter",
    "display_value",
    "evaluate",
    "filter_repr",
    "matches",
    "referenced_fields",
    "type_name",
]

#: Convex's ``MAX_QUERY_OPERATORS``: ``.filter()``/``.limit()`` operators on one query.
MAX_QUERY_OPERATORS = 256
#: Outpost's guard against runaway nesting (evaluation is recursive).
MAX_EXPRESSION_DEPTH = 128

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

CompareOp = TypingLiteral["eq", "neq", "lt", "lte", "gt", "gte"]
ArithmeticOp = TypingLiteral["add", "sub", "mul", "div", "mod"]
_VERB = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide", "mod": "mod"}


class EvalError(QueryError):
    """A filter expression failed while being evaluated against a document."""

    def __init__(self, message: str) -> None:
        super().__init__(f"EvalError: {message}")


# --- displaying values the way Convex's error messages do ---------------------------


_TYPE_NAMES: tuple[tuple[Any, str], ...] = (
    (type(None), "Null"),
    (bool, "Boolean"),
    (Int64, "Int64"),
    (float | int, "Float64"),  # a plain int is a Float64
    (str, "String"),
    (bytes | bytearray | memoryview, "Bytes"),
    (list | tuple, "Array"),
    (Mapping, "Object"),
)


def type_name(value: Any) -> str:
    """Convex's name for the type of ``value`` (``ConvexValue::type_name``)."""
    if value is UNSET:
        return "undefined"
    return next((n for t, n in _TYPE_NAMES if isinstance(value, t)), type(value).__name__)


def _display_float(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = repr(x)
    if "e" in text:  # Python "1e+16" / "1.5e-07" -> Rust Debug "1e16" / "1.5e-7"
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text


_STR_ESCAPES = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n", '"': '\\"', "\\": "\\\\"}


def _display_char(ch: str) -> str:
    if ch in _STR_ESCAPES:
        return _STR_ESCAPES[ch]
    if ch != " " and unicodedata.category(ch)[0] in "CZ":  # not printable: Rust escapes it
        return f"\\u{{{ord(ch):x}}}"
    return ch


def _display_str(s: str) -> str:
    return '"' + "".join(_display_char(ch) for ch in s) + '"'


def display_value(value: Any) -> str:
    """``value`` as Convex's ``Display`` prints it in error messages (``1.0``, ``"a"``...)."""
    if value is UNSET:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Int64):
        return str(int(value))
    if isinstance(value, float):
        return _display_float(value)
    if isinstance(value, int):
        return _display_float(float(value))
    if isinstance(value, str):
        return _display_str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return 'b"' + base64.b64encode(bytes(value)).decode("ascii") + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(display_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ", ".join(f"{k}: {display_value(v)}" for k, v in items) + "}"
    return repr(value)


def _described(value: Any) -> str:
    return f"{display_value(value)} (type {type_name(value)})"


# --- expressions ---------------------------------------------------------------------


class Expression:
    """An immutable filter expression. Build them with :class:`FilterBuilder`.

    Python's ``==``, ``<``, ``and``, ``not``... are refused on expressions: they cannot
    mean what they look like, so ``q.field("a") == 1`` raises instead of being ``False``.
    Compare expressions structurally with ``a.canonical() == b.canonical()``.
    """

    __slots__ = ()

    @property
    def depth(self) -> int:
        return 1

    def children(self) -> tuple[Expression, ...]:
        return ()

    def canonical(self) -> str:
        """A stable, unambiguous text form (bitwise for floats), used in fingerprints."""
        return json.dumps(_to_json(self), separators=(",", ":"), sort_keys=True)

    def __bool__(self) -> bool:
        raise _refuse("`and`/`or`/`not`/`if`", "q.and_(), q.or_(), q.not_()")

    def __eq__(self, other: object) -> bool:
        raise _refuse("==", "q.eq()")

    def __ne__(self, other: object) -> bool:
        raise _refuse("!=", "q.neq()")

    def __lt__(self, other: object) -> bool:
        raise _refuse("<, <=, >, >=", "q.lt(), q.lte(), q.gt(), q.gte()")

    __le__ = __gt__ = __ge__ = __lt__
    __hash__ = object.__hash__


def _refuse(what: str, use: str) -> QueryError:
    return QueryError(
        f"A filter expression cannot be used with Python's {what}; use {use} "
        '(for example q.eq(q.field("a"), 1))'
    )


@dataclass(frozen=True, eq=False, slots=True)
class Literal(Expression):
    """A constant Convex value (``UNSET`` = ``undefined``)."""

    value: Any


@dataclass(frozen=True, eq=False, slots=True)
class Field(Expression):
    """The value at a dotted field path of the document, ``UNSET`` if missing."""

    path: str


@dataclass(frozen=True, eq=False, slots=True)
class _Node(Expression):
    _depth: int = field(init=False, repr=False)

    @property
    def depth(self) -> int:
        return self._depth

    def __post_init__(self) -> None:
        depth = 1 + max((c.depth for c in self.children()), default=0)
        if depth > MAX_EXPRESSION_DEPTH:
            raise QueryError(
                f"Filter expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep"
            )
        object.__setattr__(self, "_depth", depth)


@dataclass(frozen=True, eq=False, slots=True)
class Compare(_Node):
    op: CompareOp
    left: Expression
    right: Expression

    def children(self) -> tuple[Expression, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, eq=False, slots=True)
class Arithmetic(_Node):
    op: ArithmeticOp
    left: Expression
    right: Expression

    def children(self) -> tuple[Expression, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, eq=False, slots=True)
class Negate(_Node):
    operand: Expression

    def children(self) -> tuple[Expression, ...]:
        return (self.operand,)


@dataclass(frozen=True, eq=False, slots=True)
class Not(_Node):
    operand: Expression

    def children(self) -> tuple[Expression, ...]:
        return (self.operand,)


@dataclass(frozen=True, eq=False, slots=True)
class And(_Node):
    operands: tuple[Expression, ...]

    def children(self) -> tuple[Expression, ...]:
        return self.operands


@dataclass(frozen=True, eq=False, slots=True)
class Or(_Node):
    operands: tuple[Expression, ...]

    def children(self) -> tuple[Expression, ...]:
        return self.operands


_TAGS: dict[type[Expression], str] = {Negate: "neg", Not: "not", And: "and", Or: "or"}


def _to_json(expr: Expression) -> Any:
    if isinstance(expr, Literal):
        return {"$literal": "undefined" if expr.value is UNSET else encode_key(expr.value).hex()}
    if isinstance(expr, Field):
        return {"$field": expr.path}
    tag = expr.op if isinstance(expr, Compare | Arithmetic) else _TAGS[type(expr)]
    return {f"${tag}": [_to_json(c) for c in expr.children()]}


def _operand(x: Any) -> Expression:
    if isinstance(x, Expression):
        return x
    if x is UNSET:
        return Literal(UNSET)
    return Literal(to_convex(x, what="filter operand"))


class FilterBuilder:
    """The ``q`` handed to ``.filter(lambda q: ...)``. Operands are expressions or values.

    ``eq neq lt lte gt gte`` compare in Convex's total order over all values;
    ``add sub mul div mod neg`` take Int64 with Int64 or Float64 with Float64;
    ``and_ or_ not_`` take Booleans; ``field("a.b")`` reads the document.
    """

    __slots__ = ()

    def field(self, path: str) -> Expression:
        """The value at ``path`` (dotted, through objects only), ``UNSET`` if missing."""
        if not isinstance(path, str) or not path.strip("."):
            raise QueryError(f'q.field() takes a field path such as "a.b", got {path!r}')
        return Field(path.strip("."))

    def eq(self, left: Any, right: Any) -> Expression:
        return Compare("eq", _operand(left), _operand(right))

    def neq(self, left: Any, right: Any) -> Expression:
        return Compare("neq", _operand(left), _operand(right))

    def lt(self, left: Any, right: Any) -> Expression:
        return Compare("lt", _operand(left), _operand(right))

    def lte(self, left: Any, right: Any) -> Expression:
        return Compare("lte", _operand(left), _operand(right))

    def gt(self, left: Any, right: Any) -> Expression:
        return Compare("gt", _operand(left), _operand(right))

    def gte(self, left: Any, right: Any) -> Expression:
        return Compare("gte", _operand(left), _operand(right))

    def add(self, left: Any, right: Any) -> Expression:
        return Arithmetic("add", _operand(left), _operand(right))

    def sub(self, left: Any, right: Any) -> Expression:
        return Arithmetic("sub", _operand(left), _operand(right))

    def mul(self, left: Any, right: Any) -> Expression:
        return Arithmetic("mul", _operand(left), _operand(right))

    def div(self, left: Any, right: Any) -> Expression:
        return Arithmetic("div", _operand(left), _operand(right))

    def mod(self, left: Any, right: Any) -> Expression:
        return Arithmetic("mod", _operand(left), _operand(right))

    def neg(self, x: Any) -> Expression:
        return Negate(_operand(x))

    def and_(self, *xs: Any) -> Expression:
        """All operands true (``and_()`` with none is ``true``, as in Convex)."""
        return And(tuple(_operand(x) for x in xs))

    def or_(self, *xs: Any) -> Expression:
        """Any operand true (``or_()`` with none is ``false``, as in Convex)."""
        return Or(tuple(_operand(x) for x in xs))

    def not_(self, x: Any) -> Expression:
        return Not(_operand(x))


def check_operator_count(existing: int) -> None:
    """Refuse a query's operator beyond Convex's limit (``.filter()``/``.limit()``)."""
    if existing >= MAX_QUERY_OPERATORS:
        raise QueryError(f"Can't construct query with more than {MAX_QUERY_OPERATORS} operators")


def compile_filter(
    fn: Callable[[FilterBuilder], Any], *, existing_operators: int = 0
) -> Expression:
    """Run the user's predicate with a builder; return its expression.

    ``existing_operators`` is how many operators the query already has; the 257th is
    refused like Convex's client does. A bare value returned is a literal expression.
    """
    check_operator_count(existing_operators)
    if not callable(fn):
        raise QueryError(f"filter() takes a function of q, got {type(fn).__name__}")
    result = fn(FilterBuilder())
    if isinstance(result, Expression):
        return result
    if hasattr(result, "__await__"):
        close = getattr(result, "close", None)
        if callable(close):
            close()
        raise QueryError("The filter() predicate must not be async: return q.eq(...) etc.")
    try:
        return Literal(UNSET) if result is UNSET else Literal(to_convex(result, what="result"))
    except ValueError as exc:
        raise QueryError(
            "The filter() predicate must return an expression built with q "
            f"(or a Convex value), got {type(result).__name__}: {exc}"
        ) from exc


def filter_repr(expressions: Iterable[Expression]) -> str:
    """Canonical text for a query's chain of filters (for query fingerprints)."""
    return "[" + ",".join(e.canonical() for e in expressions) + "]"


def referenced_fields(expr: Expression) -> set[str]:
    """The field paths an expression reads."""
    if isinstance(expr, Field):
        return {expr.path}
    return set().union(*(referenced_fields(c) for c in expr.children()))


# --- evaluation ----------------------------------------------------------------------


def _compare(a: Any, b: Any) -> int:
    if a is UNSET or b is UNSET:
        return (a is not UNSET) - (b is not UNSET)
    return compare_values(a, b)


_COMPARE: dict[str, Callable[[int], bool]] = {
    "eq": lambda c: c == 0,
    "neq": lambda c: c != 0,
    "lt": lambda c: c < 0,
    "lte": lambda c: c <= 0,
    "gt": lambda c: c > 0,
    "gte": lambda c: c >= 0,
}


def _numeric(v: Any) -> Any:
    """Int64 stays Int64; a plain int (not normalised yet) is a Float64; else unchanged."""
    if isinstance(v, int) and not isinstance(v, bool | Int64):
        return float(v)
    return v


_PLAIN_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
}


def _int64_op(op: str, a: int, b: int) -> Int64:
    if op in _PLAIN_OPS:
        r = _PLAIN_OPS[op](a, b)
    else:
        if b == 0:
            raise EvalError(f"Cannot {_VERB[op]} {a} (type Int64) by zero")
        q = abs(a) // abs(b)
        if (a < 0) != (b < 0):
            q = -q
        r = q if op == "div" else a - b * q  # truncating, like Rust's / and %
        if a == _INT64_MIN and b == -1:
            r = 2**63  # Rust overflows here for both / and %
    if not _INT64_MIN <= r <= _INT64_MAX:
        raise EvalError(
            f"Cannot {_VERB[op]} {a} (type Int64) and {b} (type Int64): the result overflows Int64"
        )
    return Int64(r)


def _float_op(op: str, a: float, b: float) -> float:
    if op in _PLAIN_OPS:
        return float(_PLAIN_OPS[op](a, b))
    if op == "div":
        if b == 0.0:
            if a == 0.0 or math.isnan(a):
                return math.nan
            negative = (math.copysign(1.0, a) < 0) != (math.copysign(1.0, b) < 0)
            return -math.inf if negative else math.inf
        return a / b
    # mod: C fmod semantics (result has the dividend's sign), as Rust's f64 %.
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or b == 0.0:
        return math.nan
    if math.isinf(b):
        return a
    return math.fmod(a, b)


def _arithmetic(op: str, a: Any, b: Any) -> Any:
    a, b = _numeric(a), _numeric(b)
    if isinstance(a, Int64) and isinstance(b, Int64):
        return _int64_op(op, int(a), int(b))
    if isinstance(a, float) and isinstance(b, float):
        return _float_op(op, a, b)
    raise EvalError(f"Cannot {_VERB[op]} {_described(a)} and {_described(b)}")


def _boolean(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise EvalError(f"Cannot use value {_described(v)} as a Boolean")


def evaluate(expr: Expression, doc: dict[str, Any]) -> Any:
    """The value of ``expr`` for document ``doc`` (``UNSET`` for ``undefined``)."""
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Field):
        return get_field_path(doc, expr.path)
    if isinstance(expr, Compare):
        return _COMPARE[expr.op](_compare(evaluate(expr.left, doc), evaluate(expr.right, doc)))
    if isinstance(expr, Arithmetic):
        return _arithmetic(expr.op, evaluate(expr.left, doc), evaluate(expr.right, doc))
    if isinstance(expr, Negate):
        x = _numeric(evaluate(expr.operand, doc))
        if isinstance(x, Int64):
            if int(x) == _INT64_MIN:
                raise EvalError(f"Cannot negate {x} (type Int64): the result overflows Int64")
            return Int64(-int(x))
        if isinstance(x, float):
            return -x
        raise EvalError(f"Cannot negate {_described(x)}")
    if isinstance(expr, And):
        return all(_boolean(evaluate(e, doc)) for e in expr.operands)
    if isinstance(expr, Or):
        return any(_boolean(evaluate(e, doc)) for e in expr.operands)
    if isinstance(expr, Not):
        return not _boolean(evaluate(expr.operand, doc))
    raise TypeError(f"not a filter expression: {expr!r}")


def matches(expr: Expression, doc: dict[str, Any]) -> bool:
    """Whether a filter keeps ``doc``: the result must be a Boolean, else ``EvalError``."""
    return _boolean(evaluate(expr, doc))
