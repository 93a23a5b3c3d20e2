"""The one-pass check of flat objects agrees with the full check whenever it answers.

``gateway.schema.flat`` may decline any value (the caller then runs the full check),
but when it accepts one, the full check must accept it too and give the very same
value, and its size must be ``convex_size`` of that value.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from schema_helpers import IDS, MESSAGE_ID, USER_ID

from gateway.errors import OutpostError
from gateway.schema import v
from gateway.schema.args import validate_args
from gateway.schema.compound import ObjectValidator
from gateway.schema.flat import plain_document
from gateway.values import (
    MAX_DOCUMENT_BYTES,
    Int64,
    check_document_fields,
    convex_size,
    dumps,
    to_convex,
)

SCALARS = {
    "string": v.string,
    "float64": v.float64,
    "int64": v.int64,
    "boolean": v.boolean,
    "null": v.null,
    "bytes": v.bytes,
    "id": lambda: v.id("users"),
}
NAMES = ["a", "b", "celsius", "device", "n2"]

values = st.one_of(
    st.floats(allow_nan=True),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=2),
    st.binary(max_size=8),
    st.builds(Int64, st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.sampled_from([USER_ID, MESSAGE_ID, "notanid"]),
    st.lists(st.floats(), max_size=2),
    st.dictionaries(st.sampled_from(NAMES), st.floats(), max_size=2),
)

TYPED = {
    "string": st.text(st.characters(max_codepoint=127), max_size=8),
    "float64": st.floats(allow_nan=True),
    "int64": st.builds(Int64, st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    "boolean": st.booleans(),
    "null": st.none(),
    "bytes": st.binary(max_size=8),
    "id": st.sampled_from([USER_ID, USER_ID, MESSAGE_ID]),
}


@st.composite
def validator_and_value(draw: st.DrawFn) -> tuple[ObjectValidator, dict[str, Any]]:
    declared = draw(st.dictionaries(st.sampled_from(NAMES), st.sampled_from(list(SCALARS))))
    optional = draw(st.sets(st.sampled_from(NAMES)))
    fields = {
        name: v.optional(SCALARS[kind]()) if name in optional else SCALARS[kind]()
        for name, kind in declared.items()
    }
    validator = v.object(fields)
    keys = st.sampled_from([*NAMES, "_id", "extra"])
    if draw(st.integers(0, 3)) == 0:
        return validator, draw(st.dictionaries(keys, values, max_size=6))
    # Mostly well-typed: each declared field gets a value of its kind (or now and then
    # anything), optional ones may be left out, and an extra key may join.
    value = {}
    for name, kind in declared.items():
        if name in optional and draw(st.booleans()):
            continue
        odd = draw(st.integers(0, 7)) == 0
        value[name] = draw(values if odd else TYPED[kind])
    if draw(st.integers(0, 9)) == 0:
        value[draw(keys)] = draw(values)
    return validator, value


def full_check(validator: ObjectValidator, value: dict[str, Any]) -> Any:
    return to_convex(validate_args(validator, value, IDS))


def same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and (a == b or a != a and b != b)
    return bool(a == b)


@settings(max_examples=1500, deadline=None)
@given(validator_and_value())
def test_an_accepted_value_is_exactly_what_the_full_check_gives(
    case: tuple[ObjectValidator, dict[str, Any]],
) -> None:
    validator, value = case
    assert validator.flat is not None
    fast = validator.flat(value, IDS)
    if fast is None:
        return
    checked, size = fast
    full = full_check(validator, value)  # must not raise
    assert same(checked, full), (checked, full)
    assert size == convex_size(full)
    assert dumps(checked) == dumps(full)


def test_the_common_shapes_take_the_fast_path() -> None:
    reading = v.object(
        {"device": v.string(), "celsius": v.float64(), "ok": v.boolean(), "n": v.int64()}
    )
    assert reading.flat is not None
    value = {"device": "s-1", "celsius": 21.5, "ok": True, "n": Int64(3)}
    assert reading.flat(value, IDS) == (value, convex_size(value))
    with_id = v.object({"user": v.id("users"), "note": v.optional(v.string())})
    assert with_id.flat is not None
    assert with_id.flat({"user": USER_ID}, IDS) == (
        {"user": USER_ID},
        convex_size({"user": USER_ID}),
    )


def test_it_declines_what_needs_normalising_or_an_error_message() -> None:
    reading = v.object({"device": v.string(), "celsius": v.float64()})
    assert reading.flat is not None
    declined = [
        {"device": "s", "celsius": 21},  # a plain int becomes a float
        {"device": "s"},  # missing field: the full check words the error
        {"device": "s", "celsius": 1.0, "x": 1.0},  # extra field
        {"device": "é", "celsius": 1.0},  # non-ASCII: the full check looks for surrogates
        {"device": 5.0, "celsius": 1.0},
        ["not", "an", "object"],
    ]
    for value in declined:
        assert reading.flat(value, IDS) is None, value
    assert v.object({"user": v.id("users")}).flat({"user": MESSAGE_ID}, IDS) is None  # type: ignore[union-attr]


def test_objects_with_nested_or_union_fields_have_no_fast_path() -> None:
    assert v.object({"tags": v.array(v.string())}).flat is None
    assert v.object({"x": v.union(v.string(), v.null())}).flat is None
    assert v.object({"x": v.any()}).flat is None


def test_a_refused_value_still_gets_the_full_checks_message() -> None:
    reading = v.object({"device": v.string(), "celsius": v.float64()})
    try:
        full_check(reading, {"device": "s"})
    except OutpostError as exc:
        assert "celsius" in str(exc)
    else:
        raise AssertionError("a missing field passed")


# --- documents in their stored form (what a replication hub receives) ---------------------

SYSTEM_PREFIXES = st.sampled_from(
    [
        {"_id": USER_ID, "_creationTime": 1_700_000_000_000.5},  # the stored form
        {"_id": USER_ID, "_creationTime": 1_700_000_000_000},  # an int time
        {"_creationTime": 1.5, "_id": USER_ID},  # another order
        {"_id": 5.0, "_creationTime": 1.5},
        {"_id": USER_ID},
        {},
    ]
)


def _body(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: x for k, x in doc.items() if k not in ("_id", "_creationTime")}


def _stored_form_checks(doc: dict[str, Any]) -> None:
    assert list(doc)[:2] == ["_id", "_creationTime"]
    assert type(doc["_id"]) is str and type(doc["_creationTime"]) is float


@settings(max_examples=1500, deadline=None)
@given(validator_and_value(), SYSTEM_PREFIXES)
def test_a_document_taken_as_stored_is_exactly_what_the_full_check_gives(
    case: tuple[ObjectValidator, dict[str, Any]], prefix: dict[str, Any]
) -> None:
    validator, value = case
    assert validator.flat is not None
    doc = {**prefix, **value}
    if not validator.flat.document(doc, IDS):
        return
    _stored_form_checks(doc)
    full = full_check(validator, _body(doc))  # must not raise
    assert same(full, _body(doc)), (full, doc)


DOC_NAMES = st.sampled_from(["a", "device", "_x", "$a", "", "é", "a b", "_id"])


@settings(max_examples=1500, deadline=None)
@given(SYSTEM_PREFIXES, st.dictionaries(DOC_NAMES, values, max_size=4))
def test_a_schemaless_document_taken_as_stored_is_a_value_as_it_is(
    prefix: dict[str, Any], fields: dict[str, Any]
) -> None:
    doc = {**prefix, **fields}
    if not plain_document(doc):
        return
    _stored_form_checks(doc)
    body = _body(doc)
    check_document_fields(body)  # must not raise
    assert same(to_convex(body), body)
    assert convex_size(doc) <= MAX_DOCUMENT_BYTES


def test_a_flat_reading_in_stored_form_takes_the_fast_path() -> None:
    reading = v.object({"device": v.string(), "n": v.float64()})
    assert reading.flat is not None
    doc = {"_id": USER_ID, "_creationTime": 1.5, "device": "s-1", "n": 2.0}
    assert reading.flat.document(doc, IDS)
    assert plain_document(doc)
    assert not reading.flat.document({**doc, "n": 2}, IDS)  # a plain int: converted
    assert not plain_document({**doc, "n": {"$integer": "AQAAAAAAAAA="}})  # JSON: decoded
