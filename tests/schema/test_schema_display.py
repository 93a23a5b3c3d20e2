"""Values and literals are printed as Convex's Rust server prints them."""

from __future__ import annotations

import pytest

from gateway.schema import display_value
from gateway.schema.display import char_debug, float_debug, float_json, str_debug
from gateway.values import UNSET, Int64


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (Int64(5), "5"),
        (Int64(-(1 << 63)), "-9223372036854775808"),
        (5.0, "5.0"),
        (5, "5.0"),  # a plain int is a Float64
        (-3, "-3.0"),
        ("hi", '"hi"'),
        (b"\x01\x02\x03", 'b"AQID"'),
        (b"", 'b""'),
        ([], "[]"),
        ([1, "x", None], '[1.0, "x", null]'),
        ({}, "{}"),
        ({"b": 1.5, "a": [Int64(2)]}, "{a: [2], b: 1.5}"),
        ({"a": {"c": False}}, "{a: {c: false}}"),
        ({"a": UNSET, "b": 1.0}, "{b: 1.0}"),
        (UNSET, "undefined"),
    ],
)
def test_display_value(value: object, text: str) -> None:
    assert display_value(value) == text


@pytest.mark.parametrize(
    ("f", "text"),
    [
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (0.1, "0.1"),
        (1.5, "1.5"),
        (1e15, "1000000000000000.0"),
        (9999999999999998.0, "9999999999999998.0"),
        (1e16, "1e16"),
        (1.5e16, "1.5e16"),
        (1.2345678901234568e20, "1.2345678901234568e20"),
        (0.0001, "0.0001"),
        (0.00001, "1e-5"),
        (1.5e-7, "1.5e-7"),
        (-2.5e-300, "-2.5e-300"),
        (float("nan"), "NaN"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
    ],
)
def test_float_debug_matches_rust(f: float, text: str) -> None:
    assert float_debug(f) == text


@pytest.mark.parametrize(
    ("f", "text"),
    [
        (5.0, "5.0"),
        (-0.0, "-0.0"),
        (0.5, "0.5"),
        (12.34, "12.34"),
        (1e15, "1000000000000000.0"),
        (1e16, "1e16"),
        (1.5e17, "1.5e17"),
        (0.00001, "0.00001"),
        (0.000001, "1e-6"),
        (1.25e-7, "1.25e-7"),
    ],
)
def test_float_json_matches_serde_json(f: float, text: str) -> None:
    assert float_json(f) == text


def test_str_debug_escapes_like_rust() -> None:
    assert str_debug('a"b\\c') == '"a\\"b\\\\c"'
    assert str_debug("\n\r\t\0") == '"\\n\\r\\t\\0"'
    assert str_debug("\x01\x7f") == '"\\u{1}\\u{7f}"'
    assert str_debug("it's") == '"it\'s"'
    assert str_debug("é日本😀") == '"é日本😀"'
    assert str_debug("e\u0301") == '"e\\u{301}"'  # a combining mark is escaped
    assert str_debug("\u200b") == '"\\u{200b}"'  # a format character is escaped


def test_char_debug_like_rust() -> None:
    assert char_debug("@") == "'@'"
    assert char_debug("\n") == "'\\n'"
    assert char_debug("\x10") == "'\\u{10}'"
    assert char_debug("'") == "'\\''"
    assert char_debug('"') == "'\"'"
