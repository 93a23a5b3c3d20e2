"""with_index ranges: builder rules, Convex's error texts, and the half-open byte ranges.

The byte ranges are checked against SQLite itself: documents' real index keys go into an
in-memory table, and ``key >= start AND key < end`` must select exactly the documents a
naive Python predicate (Convex's total order, field by field) selects.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from gateway.errors import QueryError
from gateway.runtime.index_range import (
    FULL_RANGE,
    AlreadyDefinedBoundError,
    BoundsOnMultipleFieldsError,
    FieldNotInIndexError,
    IndexRangeBuilder,
    InvalidIndexRangeError,
    KeyRange,
    RangeExpression,
    compile_index_range,
    resolve_range,
)
from gateway.values import UNSET, Int64, compare_values, encode_index_key

q = IndexRangeBuilder()
FIELDS_AB = ("a", "b", "_creationTime", "_id")
BY_CREATION = ("_creationTime", "_id")
BY_ID = ("_id",)
DOCS = "https://docs.convex.dev/using/indexes"


def resolve(
    builder: IndexRangeBuilder | None,
    fields: tuple[str, ...] = FIELDS_AB,
    index: str = "by_a_b",
) -> KeyRange:
    return resolve_range(builder, table="msgs", index_name=index, index_fields=fields)


def error_of(builder: IndexRangeBuilder, fields: tuple[str, ...] = FIELDS_AB) -> QueryError:
    with pytest.raises(QueryError) as info:
        resolve(builder, fields)
    return info.value


# --- the builder -------------------------------------------------------------------------


def test_builder_is_immutable_and_normalises_values() -> None:
    b1 = q.eq("floor", 2)
    b2 = b1.gt("b", Int64(3))
    assert q.expressions == ()
    assert b1.expressions == (RangeExpression("eq", "floor", 2.0),)
    assert type(b1.expressions[0].value) is float  # plain int -> Float64
    assert b2.expressions[1] == RangeExpression("gt", "b", Int64(3))
    assert type(b2.expressions[1].value) is Int64
    assert q.eq("a", UNSET).expressions[0].value is UNSET
    assert q.lte(".a.", (1, 2)).expressions[0] == RangeExpression("lte", "a", [1.0, 2.0])
    assert repr(b2) == "q.eq('floor', 2.0).gt('b', 3)"


def test_builder_refuses_bad_fields_and_values() -> None:
    with pytest.raises(QueryError) as info:
        q.eq(3, 1)  # type: ignore[arg-type]
    assert str(info.value) == "with_index range: q.eq() takes a field name first, got 3"
    with pytest.raises(QueryError):
        q.gt("", 1)
    with pytest.raises(ValueError):
        q.eq("a", object())


def test_compile_index_range() -> None:
    assert compile_index_range(None) is None
    built = compile_index_range(lambda q: q.eq("a", 1))
    assert built is not None and built.expressions == (RangeExpression("eq", "a", 1.0),)
    with pytest.raises(QueryError) as info:
        compile_index_range(lambda q: None)
    assert str(info.value) == (
        "The with_index() range function must return the q it was given, extended with "
        ".eq()/.gt()/.gte()/.lt()/.lte(), got NoneType"
    )
    with pytest.raises(QueryError) as info:
        compile_index_range("by_a")  # type: ignore[arg-type]
    assert str(info.value) == "with_index() takes a function of q, got str"


# --- rules and error texts ---------------------------------------------------------------


def test_duplicate_equality() -> None:
    err = error_of(q.eq("a", 1).eq("a", 2))
    assert isinstance(err, AlreadyDefinedBoundError)
    # Convex shows the value that was there first.
    assert str(err) == (
        'AlreadyDefinedBound: Already defined equality bound in index range. Can\'t add "a" == 1.0.'
    )


@pytest.mark.parametrize(
    ("builder", "text"),
    [
        (q.gt("a", 1).gte("a", 2), 'lower bound in index range. Can\'t add "a" >= 2.0.'),
        (q.gte("a", 1).gt("a", "x"), 'lower bound in index range. Can\'t add "a" > "x".'),
        (q.lt("a", 1).lte("a", None), 'upper bound in index range. Can\'t add "a" <= null.'),
        (q.lte("a", 1).lt("a", Int64(4)), 'upper bound in index range. Can\'t add "a" < 4.'),
        # The repeated bound is found before the second field is looked at.
        (q.gt("a", 1).gt("b", 2), 'lower bound in index range. Can\'t add "b" > 2.0.'),
        (q.eq("a", 1).gt("a", 2), 'inequality bound in index range. Can\'t add "a" == 1.0.'),
        (
            q.lt("a", 5).eq("a", UNSET),
            'inequality bound in index range. Can\'t add "a" == undefined.',
        ),
    ],
)
def test_already_defined_bound(builder: IndexRangeBuilder, text: str) -> None:
    err = error_of(builder)
    assert isinstance(err, AlreadyDefinedBoundError)
    assert str(err) == f"AlreadyDefinedBound: Already defined {text}"


def test_bounds_on_multiple_fields() -> None:
    err = error_of(q.gt("a", 1).lt("b", 2))
    assert isinstance(err, BoundsOnMultipleFieldsError)
    assert str(err) == (
        "BoundsOnMultipleFields: Upper and lower bounds in `range` can only be applied to a "
        "single index field. This query against index msgs.by_a_b attempted to set a range "
        'bound on both "a" and "b". Consider using `filter` instead. See '
        f"{DOCS} for more info."
    )


@pytest.mark.parametrize(
    ("builder", "fields", "field"),
    [
        (q.eq("x", 1), FIELDS_AB, "x"),
        (q.eq("a", 1).gt("zz", 2), FIELDS_AB, "zz"),
        (q.eq("z", 1).eq("y", 2).eq("a", 3), FIELDS_AB, "y"),  # first in field-path order
        (q.eq("a.b", 1), FIELDS_AB, "a.b"),
    ],
)
def test_field_not_in_index(
    builder: IndexRangeBuilder, fields: tuple[str, ...], field: str
) -> None:
    err = error_of(builder, fields)
    assert isinstance(err, FieldNotInIndexError)
    assert str(err) == (
        f'FieldNotInIndex: The index range included a comparison with "{field}", but '
        'msgs.by_a_b with fields ["a", "b", "_creationTime"] doesn\'t index this field. '
        f"For more information see {DOCS}."
    )


def test_field_not_in_builtin_indexes() -> None:
    with pytest.raises(FieldNotInIndexError) as info:
        resolve(q.eq("a", 1), BY_ID, "by_id")
    assert str(info.value) == (
        'FieldNotInIndex: The index range included a comparison with "a", but msgs.by_id '
        f"with fields [] doesn't index this field. For more information see {DOCS}."
    )
    with pytest.raises(FieldNotInIndexError) as info:
        resolve(q.gt("a", 1), BY_CREATION, "by_creation_time")
    assert str(info.value) == (
        'FieldNotInIndex: The index range included a comparison with "a", but '
        'msgs.by_creation_time with fields ["_creationTime"] doesn\'t index this field. '
        f"For more information see {DOCS}."
    )


@pytest.mark.parametrize(
    ("builder", "query_fields", "first_bad"),
    [
        (q.eq("b", 1), '["b"]', "b"),
        (q.gt("b", 1), '["b"]', "b"),
        (q.eq("a", 1).gt("_creationTime", 5), '["a", "_creationTime"]', "_creationTime"),
        (q.lt("_id", "x"), '["_id"]', "_id"),
        (q.eq("b", 1).eq("_creationTime", 2.0), '["b", "_creationTime"]', "b"),
        (q.eq("_creationTime", 2.0).eq("a", 1), '["a", "_creationTime"]', "_creationTime"),
    ],
)
def test_invalid_index_range(builder: IndexRangeBuilder, query_fields: str, first_bad: str) -> None:
    err = error_of(builder)
    assert isinstance(err, InvalidIndexRangeError)
    assert str(err) == (
        "InvalidIndexRange: Tried to query index msgs.by_a_b but the query didn't use the "
        "index fields in order.\n"
        'Index fields: ["a", "b", "_creationTime"]\n'
        f"Query fields: {query_fields}\n"
        f'First incorrect field: "{first_bad}"\n'
        f"For more information see {DOCS}."
    )


def test_every_error_is_a_query_error() -> None:
    for cls in (
        AlreadyDefinedBoundError,
        BoundsOnMultipleFieldsError,
        FieldNotInIndexError,
        InvalidIndexRangeError,
    ):
        assert issubclass(cls, QueryError)


def test_equalities_in_any_order_and_eq_after_bound() -> None:
    in_order = resolve(q.eq("a", 1).eq("b", "x").gt("_creationTime", 5))
    assert resolve(q.eq("b", "x").eq("a", 1).gt("_creationTime", 5)) == in_order
    assert resolve(q.gt("_creationTime", 5).eq("b", "x").eq("a", 1)) == in_order


def test_system_fields_after_declared_ones() -> None:
    full = resolve(q.eq("a", 1).eq("b", 2).eq("_creationTime", 3.0).eq("_id", "i"))
    key = encode_index_key((1.0, 2.0, 3.0, "i"))
    assert full == KeyRange(key, key + b"\xff")
    assert resolve(q.eq("_id", "i"), BY_ID, "by_id").contains(encode_index_key(("i",)))
    by_time = resolve(q.gte("_creationTime", 10.0).lt("_creationTime", 20.0), BY_CREATION)
    assert by_time.contains(encode_index_key((10.0, "id")))
    assert not by_time.contains(encode_index_key((20.0, "id")))


# --- the byte ranges ---------------------------------------------------------------------


def test_no_range_is_the_whole_index() -> None:
    assert resolve(None) == FULL_RANGE == KeyRange(b"", None)
    assert resolve(q) == FULL_RANGE
    assert resolve(None, BY_CREATION, "by_creation_time") == FULL_RANGE


def test_range_formulas() -> None:
    p = encode_index_key((1.0,))
    pv = encode_index_key((1.0, "v"))
    ff = b"\xff"
    assert resolve(q.eq("a", 1)) == KeyRange(p, p + ff)
    assert resolve(q.eq("a", 1).gte("b", "v")) == KeyRange(pv, p + ff)
    assert resolve(q.eq("a", 1).gt("b", "v")) == KeyRange(pv + ff, p + ff)
    assert resolve(q.eq("a", 1).lte("b", "v")) == KeyRange(p, pv + ff)
    assert resolve(q.eq("a", 1).lt("b", "v")) == KeyRange(p, pv)
    v = encode_index_key(("v",))
    assert resolve(q.gte("a", "v")) == KeyRange(v, None)
    assert resolve(q.gt("a", "v")) == KeyRange(v + ff, None)
    assert resolve(q.lt("a", "v")) == KeyRange(b"", v)
    assert resolve(q.lte("a", "v")) == KeyRange(b"", v + ff)
    assert resolve(q.eq("a", UNSET)) == KeyRange(b"\x01", b"\x01\xff")


def _key(a: Any, b: Any = None) -> bytes:
    return encode_index_key((a, b, 1.0, "id"))


def test_strings_with_nul_are_not_confused_with_their_prefix() -> None:
    # "x\0y" encodes as key("x") + FF ...: a plain successor of key("x") would wrongly
    # put it inside eq("a", "x") and lte("a", "x"), and outside gt("a", "x").
    for x, longer in (("x", "x\x00y"), ("", "\x00"), (b"x", b"x\x00"), (b"", b"\x00\x00")):
        assert encode_index_key((longer,)).startswith(encode_index_key((x,)))
        assert resolve(q.eq("a", x)).contains(_key(x))
        assert not resolve(q.eq("a", x)).contains(_key(longer))
        assert resolve(q.eq("a", longer)).contains(_key(longer))
        assert not resolve(q.lte("a", x)).contains(_key(longer))
        assert resolve(q.gt("a", x)).contains(_key(longer))
        assert not resolve(q.gt("a", x)).contains(_key(x))
        assert resolve(q.eq("a", 1).eq("b", x)).contains(encode_index_key((1.0, x, 1.0, "i")))
        assert not resolve(q.eq("a", 1).eq("b", x)).contains(
            encode_index_key((1.0, longer, 1.0, "i"))
        )


def test_contradictory_bounds_give_an_empty_range() -> None:
    r = resolve(q.gt("a", 5).lt("a", 3))
    assert r.is_empty
    assert not r.contains(encode_index_key((4.0,)))
    assert not resolve(q.eq("a", 1)).is_empty


def test_key_range_contains() -> None:
    r = KeyRange(b"b", b"d")
    assert [r.contains(k) for k in (b"a", b"b", b"c", b"cz", b"d", b"e")] == [
        False,
        True,
        True,
        True,
        False,
        False,
    ]
    assert KeyRange(b"b", None).contains(b"\xff\xff")
    assert KeyRange(b"", None).contains(b"")


def test_key_range_intersect() -> None:
    r = KeyRange(b"b", b"f")
    assert r.intersect(KeyRange(b"d", b"z")) == KeyRange(b"d", b"f")
    assert r.intersect(KeyRange(b"a", b"c")) == KeyRange(b"b", b"c")
    assert r.intersect(KeyRange(b"c", None)) == KeyRange(b"c", b"f")
    assert KeyRange(b"c", None).intersect(r) == KeyRange(b"c", b"f")
    assert KeyRange(b"a", None).intersect(KeyRange(b"c", None)) == KeyRange(b"c", None)
    assert r.intersect(KeyRange(b"f", b"g")) is None  # half-open: touching is disjoint
    assert r.intersect(KeyRange(b"x", None)) is None
    assert r.overlaps(KeyRange(b"e", b"z")) and not r.overlaps(KeyRange(b"a", b"b"))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(st.binary(max_size=3), min_size=4, max_size=4),
    st.booleans(),
    st.booleans(),
    st.binary(max_size=4),
)
def test_key_range_algebra(bounds: list[bytes], open_a: bool, open_b: bool, key: bytes) -> None:
    a = KeyRange(min(bounds[0], bounds[1]), None if open_a else max(bounds[0], bounds[1]))
    b = KeyRange(min(bounds[2], bounds[3]), None if open_b else max(bounds[2], bounds[3]))
    both = a.intersect(b)
    assert (both is not None and both.contains(key)) == (a.contains(key) and b.contains(key))
    assert (both is None) == (not a.overlaps(b))


# --- SQLite proves the ranges select exactly the right documents -------------------------

POOL: list[Any] = [
    UNSET,
    None,
    Int64(-3),
    Int64(0),
    Int64(200),
    -math.inf,
    -1.0,
    -0.0,
    0.0,
    2.0,
    2.5,
    math.nan,
    False,
    True,
    "",
    "a",
    "a\x00",
    "b",
    b"",
    b"\x00",
    [],
    [0.0],
    {"k": 1.0},
]
values = st.sampled_from(POOL)


def cmp(a: Any, b: Any) -> int:
    return compare_values(a, b)


def field_of(doc: dict[str, Any], field: str) -> Any:
    return doc.get(field, UNSET)


@st.composite
def documents(draw: st.DrawFn) -> list[dict[str, Any]]:
    times = st.sampled_from([1.0, 2.0, 3.0])
    rows = draw(st.lists(st.tuples(values, values, times), min_size=1, max_size=25))
    docs = []
    for n, (a, b, t) in enumerate(rows):
        doc: dict[str, Any] = {"_id": f"id{n:03d}", "_creationTime": t}
        if a is not UNSET:
            doc["a"] = a
        if b is not UNSET:
            doc["b"] = b
        docs.append(doc)
    return docs


@st.composite
def ranges(draw: st.DrawFn, docs: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    """A valid range: eqs on a prefix of the index, then bounds on the next field.

    Values are often taken from one of the documents, so that ranges select something.
    """
    model = draw(st.sampled_from(docs)) if draw(st.integers(0, 3)) > 0 else None

    def value_for(field: str) -> Any:
        if model is not None and draw(st.integers(0, 3)) > 0:
            return field_of(model, field)
        if field == "_creationTime":
            return draw(st.sampled_from([1.0, 1.5, 2.0, 3.0, UNSET]))
        if field == "_id":
            return draw(st.sampled_from(["id003", "id010", "id0", "", "j", None]))
        return draw(st.sampled_from([*POOL, 1.5]))

    k = draw(st.integers(0, 3))
    exprs: list[tuple[str, str, Any]] = [("eq", f, value_for(f)) for f in FIELDS_AB[:k]]
    field = FIELDS_AB[k]
    lower = draw(st.sampled_from([None, "gt", "gte"]))
    upper = draw(st.sampled_from([None, "lt", "lte"]))
    if lower:
        exprs.append((lower, field, value_for(field)))
    if upper:
        exprs.append((upper, field, value_for(field)))
    return draw(st.permutations(exprs))


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[tuple[str, str, Any]]]:
    docs = draw(documents())
    return docs, draw(ranges(docs))


OPS = {
    "eq": lambda c: c == 0,
    "gt": lambda c: c > 0,
    "gte": lambda c: c >= 0,
    "lt": lambda c: c < 0,
    "lte": lambda c: c <= 0,
}


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE idx (k BLOB PRIMARY KEY, id TEXT NOT NULL) WITHOUT ROWID")
    yield conn
    conn.close()


@settings(max_examples=300, deadline=None, derandomize=True)
@given(cases())
def test_sqlite_range_selects_what_the_predicate_selects(
    db: sqlite3.Connection,
    case: tuple[list[dict[str, Any]], list[tuple[str, str, Any]]],
) -> None:
    docs, spec = case
    db.execute("DELETE FROM idx")
    db.executemany(
        "INSERT INTO idx VALUES (?, ?)",
        [(encode_index_key(tuple(field_of(d, f) for f in FIELDS_AB)), d["_id"]) for d in docs],
    )
    builder = q
    for op, field, value in spec:
        builder = getattr(builder, op)(field, value)
    r = resolve(builder)
    if r.end is None:
        rows = db.execute("SELECT id FROM idx WHERE k >= ? ORDER BY k", (r.start,))
    else:
        rows = db.execute("SELECT id FROM idx WHERE k >= ? AND k < ? ORDER BY k", (r.start, r.end))
    selected = [row[0] for row in rows]

    def keep(doc: dict[str, Any]) -> bool:
        return all(OPS[op](cmp(field_of(doc, f), v)) for op, f, v in spec)

    expected = [d["_id"] for d in docs if keep(d)]
    assert sorted(selected) == sorted(expected)
    event(f"selected {'none' if not expected else 'all' if len(expected) == len(docs) else 'some'}")
    for d in docs:
        key = encode_index_key(tuple(field_of(d, f) for f in FIELDS_AB))
        assert r.contains(key) == keep(d)
