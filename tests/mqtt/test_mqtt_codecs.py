"""MQTT payload codecs: JSON, CBOR, raw, auto; the scalar rule; seq/boot; refusals."""

from __future__ import annotations

import gc
import json
import math

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import PayloadError
from gateway.mqtt.codecs import MAX_PAYLOAD_BYTES, Decoded, decode_payload


def _cbor(value: object) -> bytes:
    return cbor2.dumps(value)


def test_json_object_fields_become_args_with_integers_as_floats() -> None:
    got = decode_payload("json", b'{"t": 21, "tags": [1, {"n": -2}], "ok": true, "s": "x"}')
    assert got == Decoded({"t": 21.0, "tags": [1.0, {"n": -2.0}], "ok": True, "s": "x"})
    assert type(got.args["t"]) is float and type(got.args["tags"][1]["n"]) is float


def test_cbor_object_fields_become_args_with_integers_as_floats_and_bytes_kept() -> None:
    got = decode_payload("cbor", _cbor({"t": 21, "raw": b"\x00\x01", "f": 1.5, "n": None}))
    assert got.args == {"t": 21.0, "raw": b"\x00\x01", "f": 1.5, "n": None}
    assert type(got.args["t"]) is float


@pytest.mark.parametrize("codec", ["json", "cbor", "auto"])
@pytest.mark.parametrize(("value", "expected"), [(5, 5.0), ("hi", "hi"), ([1, 2], [1.0, 2.0])])
def test_a_non_object_payload_arrives_as_value(codec: str, value: object, expected: object) -> None:
    payload = json.dumps(value).encode() if codec != "cbor" else _cbor(value)
    assert decode_payload(codec, payload) == Decoded({"value": expected})


def test_raw_is_the_bytes_whatever_they_hold() -> None:
    for payload in (b"", b"{}", b"\xff\x00", _cbor({"seq": 1})):
        assert decode_payload("raw", payload) == Decoded({"value": payload})


@pytest.mark.parametrize("codec", ["json", "cbor"])
def test_seq_and_boot_are_taken_out_of_the_args(codec: str) -> None:
    obj = {"t": 1, "seq": 42, "boot": 3}
    payload = json.dumps(obj).encode() if codec == "json" else _cbor(obj)
    assert decode_payload(codec, payload) == Decoded({"t": 1.0}, seq=42, boot=3)
    only_seq = json.dumps({"seq": 0}).encode() if codec == "json" else _cbor({"seq": 0})
    assert decode_payload(codec, only_seq) == Decoded({}, seq=0, boot=None)


def test_counters_beyond_float_precision_are_kept_exactly() -> None:
    big = 2**63 - 1
    assert decode_payload("cbor", _cbor({"seq": big, "boot": 2**53 + 1})).seq == big
    assert decode_payload("json", b'{"seq": 7.0}').seq == 7  # an integral JSON float


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None, [1], 2**63, math.inf, {"n": 1}])
@pytest.mark.parametrize("field", ["seq", "boot"])
def test_bad_counters_are_refused(field: str, bad: object) -> None:
    with pytest.raises(PayloadError, match=f"^{field} must be an integer"):
        decode_payload("cbor", _cbor({field: bad, "t": 1}))


def test_a_scalar_payload_has_no_counters() -> None:
    assert decode_payload("json", b"12") == Decoded({"value": 12.0}, None, None)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"NaN", "NaN is not JSON"),
        (b'{"a": Infinity}', "Infinity is not JSON"),
        (b'{"a": 1,}', "invalid JSON"),
        (b"", "invalid JSON"),
        (b'{"a": 1, "a": 2}', "appears twice"),
        (b'"\xff"', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, ""),
        (b'{"a": ' + b"9" * 30 + b"}", "outside ±2^53"),
        (b'{"$bad": 1}', "$bad"),
        (b'{"a": 1e400}', "overflows a Float64"),
    ],
)
def test_bad_json_is_refused(payload: bytes, words: str) -> None:
    # Garbage collected at the bottom of the deep payload's recursion would run other
    # tests' finalizers there, which then fail as "unraisable" (seen once in CI).
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(PayloadError) as info:
            decode_payload("json", payload)
    finally:
        gc.enable()
    assert words in str(info.value)
    assert len(str(info.value)) < 400  # a dead-letter reason, not a payload dump


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"\xa1", "invalid CBOR"),  # a map with its entry missing
        (b"", "invalid CBOR"),
        (b"\x01\x02", "1 bytes after the first item"),
        (_cbor({1: 2}), "key 1 of type int"),
        (_cbor({"a": 2**60}), "outside ±2^53"),
        (_cbor(-(2**70)), "outside ±2^53"),
        (_cbor(cbor2.CBORTag(99, 1)), "CBOR tag 99 is not supported"),
        (_cbor({"a": cbor2.CBORTag(40000, [1])}), "CBOR tag 40000"),
        (_cbor({"u": cbor2.undefined}), "payload.u"),
        (_cbor({"s": cbor2.CBORSimpleValue(99)}), "payload.s"),
        (b"\x81" * 1000 + b"\x01", ""),  # deeper than any Convex value
        (_cbor({"a": cbor2.CBORTag(1, 0)}), "datetime"),  # a known tag, not a Convex value
    ],
)
def test_bad_cbor_is_refused(payload: bytes, words: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode_payload("cbor", payload)
    assert words in str(info.value)
    assert len(str(info.value)) < 400


def test_oversize_payloads_are_refused_before_decoding() -> None:
    for codec in ("json", "cbor", "raw", "auto"):
        with pytest.raises(PayloadError, match=f"over the {MAX_PAYLOAD_BYTES} cap"):
            decode_payload(codec, b"0" * (MAX_PAYLOAD_BYTES + 1))
    assert decode_payload("raw", b"0" * MAX_PAYLOAD_BYTES).args["value"] == b"0" * MAX_PAYLOAD_BYTES


def test_an_unknown_codec_is_refused() -> None:
    with pytest.raises(PayloadError, match="unknown codec 'xml'"):
        decode_payload("xml", b"{}")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (_cbor({"t": 1, "seq": 2}), Decoded({"t": 1.0}, seq=2)),  # map: 0xa0..
        (_cbor([1, b"x"]), Decoded({"value": [1.0, b"x"]})),  # array: 0x80..
        (_cbor(1.5), Decoded({"value": 1.5})),  # float: 0xfb
        (_cbor(None), Decoded({"value": None})),  # null: 0xf6
        (b'{"t": 1}', Decoded({"t": 1.0})),
        (b' [1, "a"]', Decoded({"value": [1.0, "a"]})),
        (b"17", Decoded({"value": 17.0})),  # JSON, though also CBOR 0x31...: below 0x80
        (b"hello", Decoded({"value": b"hello"})),  # neither: raw
        (b"", Decoded({"value": b""})),
        (b"\xa1\x01", Decoded({"value": b"\xa1\x01"})),  # truncated CBOR, not JSON: raw
        (b"NaN", Decoded({"value": b"NaN"})),  # not strict JSON: raw
        (b"\x17", Decoded({"value": b"\x17"})),  # a small CBOR int is not auto-detected
    ],
)
def test_auto_detection_rule(payload: bytes, expected: Decoded) -> None:
    assert decode_payload("auto", payload) == expected


def test_auto_refuses_what_parsed_but_is_not_a_convex_value() -> None:
    with pytest.raises(PayloadError, match="key 1 of type int"):
        decode_payload("auto", _cbor({1: 2}))
    with pytest.raises(PayloadError, match=r"outside ±2\^53"):
        decode_payload("auto", b'{"a": 99999999999999999999}')


# --- round trips of random Convex values (no Int64: JSON and CBOR ints are Float64) ----

_KEYS = st.text(alphabet=st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.text(max_size=20),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=20,
)


def _as_floats(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, list):
        return [_as_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_floats(v) for k, v in value.items()}
    return value


def _expected(value: object) -> Decoded:
    floats = _as_floats(value)
    if isinstance(floats, dict):
        return Decoded(floats)
    return Decoded({"value": floats})


def _without_counters(value: object) -> object:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("seq", "boot")}
    return value


@settings(max_examples=200, deadline=None)
@given(value=_VALUES.map(_without_counters))
def test_json_round_trip(value: object) -> None:
    assert decode_payload("json", json.dumps(value).encode()) == _expected(value)


@settings(max_examples=200, deadline=None)
@given(value=_VALUES.map(_without_counters), blob=st.binary(max_size=16))
def test_cbor_round_trip_with_bytes(value: object, blob: bytes) -> None:
    wrapped = {"v": value, "b": blob}
    assert decode_payload("cbor", _cbor(wrapped)) == Decoded({"v": _as_floats(value), "b": blob})
    assert decode_payload("auto", _cbor(wrapped)) == Decoded({"v": _as_floats(value), "b": blob})
