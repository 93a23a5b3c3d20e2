"""Pagination cursors: round trips, tampering, replay against another query, fingerprints."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ConfigError, InvalidCursorError, QueryError
from gateway.runtime.cursors import CURSOR_VERSION, CursorCodec, query_fingerprint
from gateway.runtime.index_range import FULL_RANGE, KeyRange
from gateway.values import encode_index_key

SECRET = bytes(range(32))
codec = CursorCodec(SECRET)
FP = query_fingerprint("msgs", "by_creation_time", FULL_RANGE, "asc", "[]")
OTHER_FP = query_fingerprint("msgs", "by_creation_time", FULL_RANGE, "desc", "[]")
KEY = encode_index_key((1700000000000.5, "k57abc"))
PROPS = settings(max_examples=150, deadline=None, derandomize=True)

FOREIGN = (
    "InvalidCursor: this cursor was made for a different query (or was altered); "
    "start from cursor null"
)
MALFORMED = (
    "InvalidCursor: this is not a pagination cursor issued by this server (it is "
    "malformed); start from cursor null"
)


def raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def spell(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode_error(cursor: object, fingerprint: str = FP, c: CursorCodec = codec) -> str:
    with pytest.raises(InvalidCursorError) as info:
        c.decode(cursor, fingerprint)  # type: ignore[arg-type]
    return str(info.value)


# --- round trips -------------------------------------------------------------------------


def test_round_trip_position_and_end() -> None:
    assert codec.decode(codec.encode(FP, KEY), FP) == KEY
    assert codec.decode(codec.encode(FP, None), FP) is None
    assert codec.decode(codec.encode(FP, b""), FP) == b""  # not confused with the end


@PROPS
@given(st.binary(max_size=300), st.text(min_size=1, max_size=70))
def test_round_trip_any_position(position: bytes, fingerprint: str) -> None:
    cursor = codec.encode(fingerprint, position)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)  # URL-safe, no padding
    assert codec.decode(cursor, fingerprint) == position


def test_cursor_layout() -> None:
    cursor = codec.encode(FP, KEY)
    data = raw(cursor)
    assert data[0] == CURSOR_VERSION == 1
    assert data[1] == 1  # "after this position"
    assert data[2:-16] == KEY
    assert len(data) == 2 + len(KEY) + 16
    assert FP.encode() not in data and bytes.fromhex(FP) not in data
    end = raw(codec.encode(FP, None))
    assert end[:2] == bytes((1, 2)) and len(end) == 18


def test_cursors_are_deterministic() -> None:
    assert codec.encode(FP, KEY) == CursorCodec(SECRET).encode(FP, KEY)
    assert codec.encode(FP, KEY) != codec.encode(OTHER_FP, KEY)


# --- rejection ---------------------------------------------------------------------------


def test_cursor_from_another_query_is_refused() -> None:
    assert decode_error(codec.encode(OTHER_FP, KEY)) == FOREIGN
    assert decode_error(codec.encode(OTHER_FP, None)) == FOREIGN
    assert issubclass(InvalidCursorError, QueryError)


def test_cursor_from_another_secret_is_refused() -> None:
    other = CursorCodec(b"another secret of 32 bytes......")
    assert decode_error(other.encode(FP, KEY)) == FOREIGN


@PROPS
@given(st.data())
def test_any_altered_byte_is_refused(data: st.DataObject) -> None:
    position = data.draw(st.binary(max_size=40))
    good = raw(codec.encode(FP, position))
    i = data.draw(st.integers(0, len(good) - 1))
    flip = data.draw(st.integers(1, 255))
    bad = bytearray(good)
    bad[i] ^= flip
    assert decode_error(spell(bytes(bad))) in (FOREIGN, MALFORMED)


def test_truncated_or_extended_cursors_are_refused() -> None:
    good = raw(codec.encode(FP, KEY))
    for bad in (good[:-1], good[1:], good + b"\x00", good[:-16], good[:17]):
        assert decode_error(spell(bad)) in (FOREIGN, MALFORMED)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!!",
        "abc=",
        "a",  # impossible base64 length
        "AAAA",  # too short to hold a MAC
        "é" * 30,
        None,
        123,
        b"bytes",
    ],
)
def test_malformed_cursors(cursor: object) -> None:
    assert decode_error(cursor) == MALFORMED


def test_non_canonical_spelling_is_refused() -> None:
    cursor = codec.encode(FP, b"k")  # 19 bytes -> 26 characters, the last holds 4 spare bits
    last = cursor[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = alphabet[alphabet.index(last) ^ 1]
    assert decode_error(cursor[:-1] + sibling) == MALFORMED
    assert decode_error(cursor + "==") == MALFORMED


def _forge(version: int, kind: int, position: bytes) -> str:
    """A cursor with a valid MAC but unexpected header (the documented MAC layout)."""
    body = bytes((version, kind)) + position
    fingerprint = FP.encode()
    message = b"outpost/cursor\x00" + len(fingerprint).to_bytes(4, "big") + fingerprint + body
    mac = hmac.new(SECRET, message, hashlib.sha256).digest()[:16]
    return spell(body + mac)


def test_mac_layout_is_as_documented() -> None:
    assert _forge(1, 1, KEY) == codec.encode(FP, KEY)
    assert _forge(1, 2, b"") == codec.encode(FP, None)


@pytest.mark.parametrize(
    ("version", "kind", "position"),
    [(2, 1, b"k"), (0, 2, b""), (1, 3, b"k"), (1, 2, b"trailing"), (1, 0, b"")],
)
def test_unknown_versions_and_kinds_are_refused(version: int, kind: int, position: bytes) -> None:
    assert decode_error(_forge(version, kind, position)) == MALFORMED


def test_secret_must_be_long_enough() -> None:
    for bad in (b"", b"short", "a string of enough length......"):
        with pytest.raises(ConfigError) as info:
            CursorCodec(bad)  # type: ignore[arg-type]
        assert str(info.value) == "The cursor secret must be at least 16 random bytes"
    CursorCodec(b"x" * 16)


# --- fingerprints ------------------------------------------------------------------------


def test_fingerprint_is_stable() -> None:
    # Do not change: cursors in clients' hands depend on fingerprints staying the same.
    assert query_fingerprint("msgs", "by_creation_time", KeyRange(b"", None), "asc", "[]") == FP
    assert re.fullmatch(r"[0-9a-f]{64}", FP)
    assert (
        hashlib.sha256(
            b'{"end":null,"filters":"[]","index":"by_creation_time","indexFields":[],'
            b'"order":"asc","start":"","table":"msgs","v":1}'
        ).hexdigest()
        == FP
    )


def test_fingerprint_changes_with_every_part() -> None:
    base = ("msgs", "by_a", KeyRange(b"\x10a\x00", b"\x10b"), "asc", "[]")
    variants = [
        ("other", "by_a", KeyRange(b"\x10a\x00", b"\x10b"), "asc", "[]"),
        ("msgs", "by_b", KeyRange(b"\x10a\x00", b"\x10b"), "asc", "[]"),
        ("msgs", "by_a", KeyRange(b"\x10a\x00", None), "asc", "[]"),
        ("msgs", "by_a", KeyRange(b"\x10a", b"\x10b"), "asc", "[]"),
        ("msgs", "by_a", KeyRange(b"\x10a\x00", b"\x10b"), "desc", "[]"),
        ("msgs", "by_a", KeyRange(b"\x10a\x00", b"\x10b"), "asc", '[{"$literal":"0f"}]'),
    ]
    prints = {query_fingerprint(*base)} | {query_fingerprint(*v) for v in variants}
    prints.add(query_fingerprint(*base, index_fields=("a", "_creationTime", "_id")))
    assert len(prints) == len(variants) + 2
