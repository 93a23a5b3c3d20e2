from __future__ import annotations

import datetime
import decimal
from collections import OrderedDict
from enum import Enum, IntEnum
from typing import Any

import pytest

from gateway.errors import ConvexValueError
from gateway.values import (
    DOCUMENT_MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    UNSET,
    Int64,
    check_document_fields,
    check_field_name,
    to_convex,
)


def test_constants() -> None:
    assert DOCUMENT_MAX_DEPTH == 16
    assert MAX_DOCUMENT_BYTES == 1 << 20


def test_scalars() -> None:
    assert to_convex(None) is None
    assert to_convex(True) is True
    assert to_convex(False) is False
    assert to_convex("héllo \U0001f600") == "héllo \U0001f600"
    assert to_convex(b"\x00\xff") == b"\x00\xff"
    x = to_convex(Int64(5))
    assert type(x) is Int64 and x == 5


def test_plain_int_becomes_float() -> None:
    for n in (0, 5, -7, 2**53, -(2**53)):
        out = to_convex(n)
        assert type(out) is float and out == n


@pytest.mark.parametrize("n", [2**53 + 1, -(2**53) - 1, 10**20])
def test_plain_int_beyond_2_53_is_an_error(n: int) -> None:
    with pytest.raises(ConvexValueError) as info:
        to_convex({"count": n})
    msg = str(info.value)
    assert msg.startswith(f"value.count is {n}")
    assert "is outside ±2^53; use Int64(x) or a float" in msg


def test_bool_stays_bool_and_int_subclasses_become_floats() -> None:
    class Level(IntEnum):
        HIGH = 3

    assert to_convex([True, 1]) == [True, 1.0]
    assert type(to_convex([True])[0]) is bool
    assert type(to_convex(Level.HIGH)) is float


def test_special_floats_allowed() -> None:
    out = to_convex([float("nan"), float("inf"), float("-inf"), -0.0])
    assert out[0] != out[0]
    assert out[1:3] == [float("inf"), float("-inf")]
    assert str(out[3]) == "-0.0"


def test_lone_surrogate_is_an_error() -> None:
    with pytest.raises(
        ConvexValueError, match=r"value\.name is a string that is not valid Unicode"
    ):
        to_convex({"name": "ab\ud800"})
    with pytest.raises(ConvexValueError, match=r"lone surrogate '\\udc00' at index 1"):
        to_convex("x\udc00")
    # A proper pair of surrogates cannot exist in a Python str; non-BMP is fine.
    assert to_convex("\U0001f600") == "\U0001f600"


def test_bytes_like_become_bytes() -> None:
    for raw in (bytearray(b"\x00a"), memoryview(b"\x00a")):
        out = to_convex(raw)
        assert type(out) is bytes and out == b"\x00a"


def test_containers_are_new_and_normalised() -> None:
    src: dict[str, Any] = {"a": (1, 2), "b": [{"c": 3}], "d": OrderedDict(e=4)}
    out = to_convex(src)
    assert out == {"a": [1.0, 2.0], "b": [{"c": 3.0}], "d": {"e": 4.0}}
    assert type(out["a"]) is list and type(out["d"]) is dict
    assert out is not src and out["b"] is not src["b"]


def test_str_subclasses_become_plain_str() -> None:
    class Color(str, Enum):  # noqa: UP042 - str() of this kind is "Color.RED"
        RED = "red"

    out = to_convex({"c": Color.RED})
    assert out == {"c": "red"} and type(out["c"]) is str


def test_array_length_limit() -> None:
    assert len(to_convex([0.0] * 8192)) == 8192
    with pytest.raises(
        ConvexValueError, match=r"value\.xs is an array of 8193 elements; the limit is 8192"
    ):
        to_convex({"xs": [0.0] * 8193})


def test_unset_in_object_is_dropped() -> None:
    assert to_convex({"a": UNSET, "b": 1}) == {"b": 1.0}
    assert to_convex({"a": UNSET}) == {}


def test_unset_in_array_or_alone_is_an_error() -> None:
    with pytest.raises(ConvexValueError, match=r"value\.xs\[1\] is UNSET .* inside an array"):
        to_convex({"xs": [1, UNSET]})
    with pytest.raises(ConvexValueError, match=r"^args is UNSET"):
        to_convex(UNSET, what="args")


def test_object_field_limit() -> None:
    ok = {f"f{i}": 1 for i in range(1024)}
    assert len(to_convex(ok)) == 1024
    with pytest.raises(ConvexValueError, match="object with 1025 fields; the limit is 1024"):
        to_convex({f"f{i}": 1 for i in range(1025)})
    # Dropped UNSET fields do not count.
    assert len(to_convex({**ok, "extra": UNSET})) == 1024


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "is empty"),
        ("$ref", 'starts with "$"'),
        ("tab\there", "outside printable ASCII"),
        ("café", "outside printable ASCII"),
        ("del\x7f", "outside printable ASCII"),
        ("x" * 1025, "1025 characters long; the limit is 1024"),
    ],
)
def test_bad_field_names(name: str, fragment: str) -> None:
    with pytest.raises(ConvexValueError) as info:
        to_convex({"outer": {name: 1}})
    assert str(info.value).startswith("value.outer has a field name")
    assert fragment in str(info.value)
    with pytest.raises(ConvexValueError, match="field name"):
        check_field_name(name)


def test_good_field_names() -> None:
    names = [" ", "a b", "~", "_x", "x$", "A" * 1024, "!#%&'()*+,-./:;<=>?@[\\]^`{|}"]
    assert list(to_convex(dict.fromkeys(names, 1))) == names
    for n in names:
        check_field_name(n)


def test_non_str_key_is_an_error() -> None:
    with pytest.raises(
        ConvexValueError, match=r"value\.m has a key 1 of type int; object keys must be str"
    ):
        to_convex({"m": {1: "a"}})
    with pytest.raises(ConvexValueError, match="object keys must be str"):
        check_field_name(3)


@pytest.mark.parametrize(
    ("bad", "type_name", "hint"),
    [
        ({1, 2}, "set", "use a list"),
        (frozenset(), "frozenset", "use a list"),
        (datetime.datetime(2024, 1, 1), "datetime.datetime", "milliseconds since the epoch"),
        (decimal.Decimal("1.5"), "decimal.Decimal", "float(x)"),
        (object(), "object", "convert it to a dict, list"),
        (range(3), "range", "list(x)"),
        (1 + 2j, "complex", "not a Convex value"),
    ],
)
def test_unsupported_types_name_type_and_path(bad: object, type_name: str, hint: str) -> None:
    with pytest.raises(ConvexValueError) as info:
        to_convex({"readings": [0, 1, 2, {"x": bad}]}, what="args")
    msg = str(info.value)
    assert msg.startswith(f"args.readings[3].x is a {type_name}, which is not a Convex value; ")
    assert hint in msg


def test_path_quotes_odd_names() -> None:
    with pytest.raises(ConvexValueError, match=r"^value\['a b'\]\[0\] is a set"):
        to_convex({"a b": [{1}]})


def test_class_instance_is_rejected() -> None:
    class Reading:
        pass

    with pytest.raises(
        ConvexValueError, match=r"^value is a .*Reading, which is not a Convex value"
    ):
        to_convex(Reading())


def _nest(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = [v]
    return v


def test_depth_limit() -> None:
    assert to_convex(_nest(64)) is not None
    with pytest.raises(ConvexValueError, match="nested more than 64 levels deep"):
        to_convex(_nest(65))
    doc: Any = {"a": 1}
    for _ in range(DOCUMENT_MAX_DEPTH - 1):
        doc = {"a": doc}
    to_convex(doc, max_depth=DOCUMENT_MAX_DEPTH, what="document")
    with pytest.raises(ConvexValueError, match=r"^document\.a\.a.* nested more than 16 levels"):
        to_convex({"a": doc}, max_depth=DOCUMENT_MAX_DEPTH, what="document")


def test_cycle_is_caught_by_the_depth_limit() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ConvexValueError, match="reference cycle"):
        to_convex(loop)


def test_check_document_fields() -> None:
    check_document_fields({"_id": "x", "_creationTime": 1.0, "a": 1, "a_b": 2})
    with pytest.raises(
        ConvexValueError, match="'_secret' starts with '_'.*only _id and _creationTime"
    ):
        check_document_fields({"_secret": 1})
