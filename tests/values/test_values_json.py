from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from values_strategies import float_from_bits, values

from gateway.errors import ConvexValueError
from gateway.values import (
    INT64_MAX,
    INT64_MIN,
    UNSET,
    Int64,
    compare_values,
    decode_json,
    dumps,
    encode_clean_json,
    encode_json,
    json_codec,
    loads,
)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _bits(f: float) -> int:
    bits: int = struct.unpack("<Q", struct.pack("<d", f))[0]
    return bits


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and compare_values(a, b) == 0


def test_encode_json_forms() -> None:
    assert encode_json(Int64(1)) == {"$integer": _b64((1).to_bytes(8, "little"))}
    assert encode_json(Int64(-1)) == {"$integer": "//////////8="}
    assert encode_json(b"\x00\xff") == {"$bytes": "AP8="}
    assert encode_json(float("nan")) == {"$float": _b64(struct.pack("<d", float("nan")))}
    assert encode_json(float("inf")) == {"$float": "AAAAAAAA8H8="}
    assert encode_json(float("-inf")) == {"$float": "AAAAAAAA8P8="}
    assert encode_json(-0.0) == {"$float": "AAAAAAAAAIA="}
    assert encode_json(0.0) == 0.0
    assert encode_json(5) == 5.0 and type(encode_json(5)) is float
    assert encode_json({"a": UNSET, "b": [None, True, "s"]}) == {"b": [None, True, "s"]}


def test_dumps_prints_floats_as_floats() -> None:
    assert dumps(5.0) == "5.0"
    assert dumps({"a": 5.0, "b": [1e300, -2.5]}) == '{"a":5.0,"b":[1e+300,-2.5]}'
    assert json.loads(dumps([5.0]))[0] == 5.0 and type(json.loads(dumps([5.0]))[0]) is float
    assert dumps([5]) == "[5.0]"
    assert dumps({"n": Int64(5)}) == '{"n":{"$integer":"BQAAAAAAAAA="}}'
    assert dumps("é\U0001f600") == '"é\U0001f600"'  # ensure_ascii=False
    assert dumps({"a": UNSET}) == "{}"
    assert dumps([-0.0, -0.05]) == '[{"$float":"AAAAAAAAAIA="},-0.05]'
    assert dumps({"s": "[1,2]", "x": 1.0}) == '{"s":"[1,2]","x":1.0}'


def test_dumps_equals_json_of_encode_json() -> None:
    value = {"a": [Int64(INT64_MIN), b"\x00", float("nan"), -0.0], "b": {"c": 1.5}}
    assert dumps(value) == json.dumps(encode_json(value), separators=(",", ":"))


def test_loads_numbers_are_always_floats() -> None:
    out = loads('{"a": 5, "b": [-0, 1e400, 12345678901234567890]}')
    assert type(out["a"]) is float and out["a"] == 5.0
    assert math.copysign(1.0, out["b"][0]) < 0
    assert out["b"][1] == float("inf")
    assert type(out["b"][2]) is float
    assert loads(b"7") == 7.0 and type(loads(b"7")) is float
    assert decode_json(5) == 5.0 and type(decode_json(5)) is float
    assert decode_json({"a": [1, True, None]}) == {"a": [1.0, True, None]}


@pytest.mark.parametrize("n", [INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX])
def test_int64_round_trip(n: int) -> None:
    for out in (loads(dumps(Int64(n))), decode_json(encode_json(Int64(n)))):
        assert type(out) is Int64 and out == n


def test_nan_payloads_survive_bitwise() -> None:
    for bits in (0x7FF8000000000000, 0x7FF0000000000001, 0xFFF8000000000000, 0xFFFFFFFFFFFFFFFF):
        f = float_from_bits(bits)
        assert _bits(loads(dumps([f]))[0]) == bits
        assert _bits(decode_json(encode_json(f))) == bits


def test_negative_zero_and_infinities_round_trip() -> None:
    out = loads(dumps({"z": -0.0, "p": float("inf"), "n": float("-inf"), "zero": 0.0}))
    assert math.copysign(1.0, out["z"]) < 0
    assert out["p"] == float("inf") and out["n"] == float("-inf")
    assert math.copysign(1.0, out["zero"]) > 0


def test_bytes_and_strings_round_trip() -> None:
    value = {"b": b"\x00\x00\xff", "e": b"", "s": "a\x00b\U0010ffff\U0001f600", "$": "$x"}
    del value["$"]
    value["d"] = "$dollar value"
    assert loads(dumps(value)) == value
    assert loads(dumps(value).encode()) == value


def test_decode_strict_special_objects() -> None:
    eight = _b64(bytes(8))
    with pytest.raises(ConvexValueError, match="exactly 8"):
        loads(json.dumps({"$integer": _b64(bytes(7))}))
    with pytest.raises(ConvexValueError, match="exactly 8"):
        decode_json({"$float": _b64(bytes(9))})
    with pytest.raises(ConvexValueError, match="not valid standard base64"):
        loads('{"$bytes": "not base64!"}')
    with pytest.raises(ConvexValueError, match="must be a base64 string"):
        decode_json({"$integer": 5})
    with pytest.raises(ConvexValueError, match="'\\$integer' starts with '\\$'"):
        loads(json.dumps({"$integer": eight, "x": 1}))
    with pytest.raises(ConvexValueError, match="'\\$integer' starts with '\\$'"):
        decode_json({"$integer": eight, "x": 1})
    with pytest.raises(ConvexValueError, match="unknown encoding"):
        loads('{"a": {"$set": []}}')
    with pytest.raises(ConvexValueError, match="unknown encoding"):
        decode_json({"$undefined": None})
    with pytest.raises(ConvexValueError, match="plain JSON number"):
        loads(json.dumps({"$float": _b64(struct.pack("<d", 1.5))}))
    # An escaped "$" is still a "$".
    with pytest.raises(ConvexValueError, match="unknown encoding"):
        loads('{"\\u0024ref": "x"}')
    assert loads(json.dumps({"$float": eight})) == 0.0


def test_loads_rejects_non_json() -> None:
    with pytest.raises(ConvexValueError, match="NaN is not JSON"):
        loads("[NaN]")
    with pytest.raises(ConvexValueError, match="not valid JSON"):
        loads("{")
    with pytest.raises(ConvexValueError, match="not valid UTF-8"):
        loads(b"\xff")
    with pytest.raises(ConvexValueError, match="not parsed JSON"):
        decode_json({1, 2})


def test_encode_rejects_non_values() -> None:
    with pytest.raises(ConvexValueError, match="not a Convex value"):
        dumps({"a": {1, 2}})
    with pytest.raises(ConvexValueError, match="UNSET"):
        dumps([UNSET])
    with pytest.raises(ConvexValueError, match="outside ±2\\^53"):
        dumps([2**60])


def test_clean_json() -> None:
    value = {
        "i": Int64(-5),
        "b": b"\x00\xff",
        "n": float("nan"),
        "p": float("inf"),
        "m": float("-inf"),
        "z": -0.0,
        "f": 1.5,
        "u": UNSET,
        "l": [None, True, "s", 3],
    }
    out = encode_clean_json(value)
    assert out == {
        "i": "-5",
        "b": "AP8=",
        "n": "NaN",
        "p": "Infinity",
        "m": "-Infinity",
        "z": -0.0,
        "f": 1.5,
        "l": [None, True, "s", 3.0],
    }
    assert math.copysign(1.0, out["z"]) < 0


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(values)
def test_round_trip_property(value: Any) -> None:
    text = dumps(value)
    assert text == json.dumps(encode_json(value), separators=(",", ":"), ensure_ascii=False)
    assert _same(loads(text), value)
    assert _same(decode_json(json.loads(text)), value)


JSON_LIKE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=6), st.integers()),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=1000)
@given(JSON_LIKE)
def test_the_prebuilt_c_encoder_writes_what_the_json_encoder_does(value: Any) -> None:
    try:
        expected: str | type = json_codec._plain_encoder.encode(value)
    except ValueError:  # NaN and infinities (allow_nan=False)
        expected = ValueError
    try:
        got: str | type = json_codec._plain_encode(value)
    except ValueError:
        got = ValueError
    assert got == expected
