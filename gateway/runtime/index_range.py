"""The ``q`` of ``.with_index("by_x", lambda q: ...)`` and its compilation to a key range.

Rules and error texts follow Convex's server (``IndexRange::compile`` / ``split`` in
``crates/common/src/query.rs``): any number of ``eq`` (each field once), at most one lower
bound (``gt``/``gte``) and one upper bound (``lt``/``lte``), both on the same field, which
must not also have an ``eq``; the fields used, with the equalities put in index order and
the bounded field last, must be a prefix of the index's effective key. Equalities may be
given in any order.

A :class:`KeyRange` is half-open over ``encode_index_key`` bytes, so a scan is
``key >= start AND key < end`` (no ``end`` = unbounded). With ``P`` the key of the
equalities' values (in index order) and ``K(v) = encode_index_key((*eq values, v))``:
no bound gives ``[P, P+FF)`` (``[b"", None)`` when ``P`` is empty); ``gte v`` starts at
``K(v)``, ``gt v`` at ``K(v)+FF``; ``lt v`` ends at ``K(v)``, ``lte v`` at ``K(v)+FF``;
without an upper bound the end is ``P+FF`` (``None`` when ``P`` is empty). See
:func:`_block_end` for why ``+FF``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from typing import Literal as TypingLiteral

from gateway.errors import QueryError
from gateway.runtime.filters import display_value
from gateway.values import UNSET, encode_index_key, key_successor, to_convex

__all__ = [
    "FULL_RANGE",
    "AlreadyDefinedBoundError",
    "BoundsOnMultipleFieldsError",
    "FieldNotInIndexError",
    "IndexRangeBuilder",
    "InvalidIndexRangeError",
    "KeyRange",
    "RangeExpression",
    "compile_index_range",
    "resolve_range",
]

_DOCS = "https://docs.convex.dev/using/indexes"

RangeOp = TypingLiteral["eq", "gt", "gte", "lt", "lte"]
_COMPARATOR = {"eq": "==", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class InvalidIndexRangeError(QueryError):
    """The fields of a ``with_index`` range are not a prefix of the index, in order."""


class FieldNotInIndexError(QueryError):
    """A ``with_index`` range compares a field the index does not contain."""


class BoundsOnMultipleFieldsError(QueryError):
    """Lower and upper bounds of a ``with_index`` range are on different fields."""


class AlreadyDefinedBoundError(QueryError):
    """A ``with_index`` range repeats an ``eq``, a bound, or bounds an ``eq`` field."""


@dataclass(frozen=True, slots=True)
class RangeExpression:
    """One ``eq``/``gt``/``gte``/``lt``/``lte`` call; ``value`` is normalised."""

    op: RangeOp
    field: str
    value: Any


class IndexRangeBuilder:
    """The ``q`` handed to ``with_index``. Immutable: every call returns a new builder."""

    __slots__ = ("_expressions",)

    def __init__(self, expressions: Sequence[RangeExpression] = ()) -> None:
        self._expressions: tuple[RangeExpression, ...] = tuple(expressions)

    @property
    def expressions(self) -> tuple[RangeExpression, ...]:
        return self._expressions

    def _add(self, op: RangeOp, field: str, value: Any) -> IndexRangeBuilder:
        if not isinstance(field, str) or not field.strip("."):
            raise QueryError(f"with_index range: q.{op}() takes a field name first, got {field!r}")
        what = f"with_index value for {field!r}"
        normalised = UNSET if value is UNSET else to_convex(value, what=what)
        expression = RangeExpression(op, field.strip("."), normalised)
        return IndexRangeBuilder((*self._expressions, expression))

    def eq(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._add("eq", field, value)

    def gt(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._add("gt", field, value)

    def gte(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._add("gte", field, value)

    def lt(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._add("lt", field, value)

    def lte(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._add("lte", field, value)

    def __repr__(self) -> str:
        calls = "".join(
            f".{e.op}({e.field!r}, {display_value(e.value)})" for e in self._expressions
        )
        return f"q{calls}"


def compile_index_range(
    fn: Callable[[IndexRangeBuilder], Any] | None,
) -> IndexRangeBuilder | None:
    """Run the user's range function (``None`` = whole index); check what it returned."""
    if fn is None:
        return None
    if not callable(fn):
        raise QueryError(f"with_index() takes a function of q, got {type(fn).__name__}")
    result = fn(IndexRangeBuilder())
    if not isinstance(result, IndexRangeBuilder):
        raise QueryError(
            "The with_index() range function must return the q it was given, extended "
            f"with .eq()/.gt()/.gte()/.lt()/.lte(), got {type(result).__name__}"
        )
    return result


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Half-open byte range ``[start, end)``; ``end=None`` means unbounded."""

    start: bytes
    end: bytes | None

    @property
    def is_empty(self) -> bool:
        return self.end is not None and self.start >= self.end

    def contains(self, key: bytes) -> bool:
        return self.start <= key and (self.end is None or key < self.end)

    def intersect(self, other: KeyRange) -> KeyRange | None:
        """The overlap of two ranges, or ``None`` when they share no key."""
        start = max(self.start, other.start)
        if self.end is None:
            end = other.end
        elif other.end is None:
            end = self.end
        else:
            end = min(self.end, other.end)
        if end is not None and start >= end:
            return None
        return KeyRange(start, end)

    def overlaps(self, other: KeyRange) -> bool:
        return self.intersect(other) is not None


FULL_RANGE = KeyRange(b"", None)


def _quoted(path: str) -> str:
    return f'"{path}"'


def _fields_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join(_quoted(p) for p in paths) + "]"


def _already_defined(kind: str, field: str, comparator: str, value: Any) -> QueryError:
    return AlreadyDefinedBoundError(
        f"AlreadyDefinedBound: Already defined {kind} bound in index range. Can't add "
        f"{_quoted(field)} {comparator} {display_value(value)}."
    )


def _block_end(key: bytes) -> bytes:
    """The first key after every index key whose leading values encode to ``key``.

    ``key_successor`` is ``key + FF``, not the byte-wise successor: a string value
    escapes NUL as ``00 FF``, so ``"x\\x00y"`` encodes to ``key("x") + FF ...``; after a
    whole value the next byte is otherwise a tag (at most 0x15) or nothing. (Convex's
    own ranges use the byte-wise successor and so include ``"x\\x00..."`` in
    ``eq("f", "x")``; Outpost keeps the exact set.)
    """
    return key_successor(key)


def _path_key(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def resolve_range(
    builder: IndexRangeBuilder | None,
    *,
    table: str,
    index_name: str,
    index_fields: tuple[str, ...],
) -> KeyRange:
    """Check a range against the index's effective key and turn it into a :class:`KeyRange`.

    ``index_fields`` is the effective key: declared fields, ``_creationTime``, ``_id``
    (``("_creationTime", "_id")`` for ``by_creation_time``, ``("_id",)`` for ``by_id``).
    """
    name = f"{table}.{index_name}"
    # Convex lists the index's fields without the implicit trailing `_id`.
    shown = index_fields[:-1] if index_fields and index_fields[-1] == "_id" else index_fields
    expressions = builder.expressions if builder is not None else ()

    # --- split into equalities and one inequality (order of checks as in Convex) ----
    equalities: dict[str, Any] = {}
    bound_field: str | None = None
    lower: RangeExpression | None = None
    upper: RangeExpression | None = None
    for e in expressions:
        path = e.field
        if e.op == "eq":
            if path in equalities:
                raise _already_defined("equality", path, "==", equalities[path])
            equalities[path] = e.value
            continue
        is_upper = e.op in ("lt", "lte")
        if (upper if is_upper else lower) is not None:
            kind = "upper" if is_upper else "lower"
            raise _already_defined(kind, path, _COMPARATOR[e.op], e.value)
        if bound_field is not None and bound_field != path:
            raise BoundsOnMultipleFieldsError(
                "BoundsOnMultipleFields: Upper and lower bounds in `range` can only be "
                f"applied to a single index field. This query against index {name} "
                f"attempted to set a range bound on both {_quoted(bound_field)} and "
                f"{_quoted(path)}. Consider using `filter` instead. See {_DOCS} for more "
                "info."
            )
        bound_field = path
        if is_upper:
            upper = RangeExpression(e.op, path, e.value)
        else:
            lower = RangeExpression(e.op, path, e.value)
    if bound_field is not None and bound_field in equalities:
        raise _already_defined("inequality", bound_field, "==", equalities[bound_field])

    # --- every field must be in the index; then they must form a prefix of it -------
    rank = {f: i for i, f in enumerate(index_fields)}
    not_indexed = sorted((p for p in equalities if p not in rank), key=_path_key)
    if bound_field is not None and bound_field not in rank:
        not_indexed.append(bound_field)
    if not_indexed:
        raise FieldNotInIndexError(
            f"FieldNotInIndex: The index range included a comparison with "
            f"{_quoted(not_indexed[0])}, but {name} with fields {_fields_list(shown)} "
            f"doesn't index this field. For more information see {_DOCS}."
        )
    used = sorted(equalities, key=lambda p: rank[p])
    if bound_field is not None:
        used.append(bound_field)
    for i, path in enumerate(used):
        if i >= len(index_fields) or index_fields[i] != path:
            raise InvalidIndexRangeError(
                f"InvalidIndexRange: Tried to query index {name} but the query didn't use "
                "the index fields in order.\n"
                f"Index fields: {_fields_list(shown)}\n"
                f"Query fields: {_fields_list(used)}\n"
                f"First incorrect field: {_quoted(path)}\n"
                f"For more information see {_DOCS}."
            )

    # --- the byte range --------------------------------------------------------------
    prefix_values = tuple(equalities[p] for p in used[: len(equalities)])
    prefix = encode_index_key(prefix_values)

    def block(value: Any) -> bytes:
        return encode_index_key((*prefix_values, value))

    if lower is None:
        start = prefix
    elif lower.op == "gte":
        start = block(lower.value)
    else:
        start = _block_end(block(lower.value))
    if upper is None:
        end = _block_end(prefix) if prefix else None
    elif upper.op == "lte":
        end = _block_end(block(upper.value))
    else:
        end = block(upper.value)
    return KeyRange(start, end)
