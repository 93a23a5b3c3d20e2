"""Document ids in Convex's format (spec 1.2, DESIGN decision 5).

Binary layout, then lower-case Crockford base32 (``base32``)::

    VInt(table_number) | internal id (16 bytes) | footer (2 bytes)

- VInt: LEB128, seven bits per byte, least significant group first, 0x80 set on
  every byte but the last; 1 to 5 bytes for table numbers 1 .. 2^32-1.
- footer: Fletcher-16 with modulus 256 over the bytes before it (``c0`` = running
  byte sum, ``c1`` = running sum of ``c0``; checksum ``c1 << 8 | c0``), XOR the
  format version 0, stored little-endian (``c0`` first).

So an id is 31 characters for tables 1-127 and 32 for 128-16383. Decoding is
strict: only the canonical spelling of an id is accepted (shortest VInt, zero
padding bits), so one document has exactly one id string.

Outpost's internal ids start with a 48-bit big-endian millisecond time: ids of one
table sort by creation time as strings, and inserts append to B-trees.
"""

from __future__ import annotations

import os
import re
import threading
from itertools import accumulate
from typing import Final, Protocol

from gateway.errors import InvalidIdError
from gateway.values import base32

__all__ = [
    "ID_MAX_LENGTH",
    "ID_MIN_LENGTH",
    "INTERNAL_ID_LENGTH",
    "MAX_TABLE_NUMBER",
    "MIN_TABLE_NUMBER",
    "IdGenerator",
    "RandomSource",
    "decode_id",
    "encode_id",
    "fletcher16",
    "is_id",
]

INTERNAL_ID_LENGTH: Final = 16
MIN_TABLE_NUMBER: Final = 1
MAX_TABLE_NUMBER: Final = (1 << 32) - 1
_VERSION: Final = 0
ID_MIN_LENGTH: Final = base32.encoded_length(1 + INTERNAL_ID_LENGTH + 2)  # 31
ID_MAX_LENGTH: Final = base32.encoded_length(5 + INTERNAL_ID_LENGTH + 2)  # 37
_ID_SHAPE: Final = re.compile(f"[{base32.ALPHABET}]{{{ID_MIN_LENGTH},{ID_MAX_LENGTH}}}")


def fletcher16(data: bytes) -> int:
    """Fletcher-16 checksum with modulus 256, as ``c1 << 8 | c0``.

    ``c0`` is the byte sum; ``c1`` the sum of the running sums: both summed in C
    (``itertools.accumulate``) instead of a loop in Python, as every id decoded or made
    runs it. A test holds it to the running-sum loop on random input."""
    return (sum(accumulate(data)) & 0xFF) << 8 | sum(data) & 0xFF


def _vint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _check_table_number(table_number: int) -> None:
    if isinstance(table_number, bool) or not isinstance(table_number, int):
        raise InvalidIdError(f"a table number is an int, not {type(table_number).__name__}")
    if not MIN_TABLE_NUMBER <= table_number <= MAX_TABLE_NUMBER:
        raise InvalidIdError(
            f"table number {table_number} is out of range ({MIN_TABLE_NUMBER} to 2^32-1)"
        )


def encode_id(table_number: int, internal: bytes) -> str:
    """The id string of document ``internal`` (16 bytes) in table ``table_number``."""
    _check_table_number(table_number)
    if len(internal) != INTERNAL_ID_LENGTH:
        raise InvalidIdError(f"an internal id is {INTERNAL_ID_LENGTH} bytes, not {len(internal)}")
    body = _vint(table_number) + bytes(internal)
    footer = fletcher16(body) ^ _VERSION
    text = base32.encode(body + footer.to_bytes(2, "little"))
    _remember(text, (table_number, bytes(internal)))
    return text


def _invalid(s: object, reason: str) -> InvalidIdError:
    shown = repr(s) if not isinstance(s, str) or len(s) <= 48 else repr(s[:48]) + "..."
    return InvalidIdError(f"{shown} is not a document id: {reason}")


# Ids are decoded far more often than made (every v.id check, every db.get): remember
# recent ones, including each id this process just minted.
_DECODED: dict[str, tuple[int, bytes]] = {}
_DECODED_MAX = 4096


def _remember(s: str, decoded: tuple[int, bytes]) -> None:
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.clear()
    _DECODED[s] = decoded


def decode_id(s: str) -> tuple[int, bytes]:
    """``(table_number, internal id)`` of an id string; ``InvalidIdError`` if it is not one."""
    hit = _DECODED.get(s) if isinstance(s, str) else None
    if hit is not None:
        return hit
    decoded = _decode_id(s)
    _remember(s, decoded)
    return decoded


def _decode_id(s: str) -> tuple[int, bytes]:
    if type(s) is str and len(s) == ID_MIN_LENGTH:
        decoded = _decode_short_id(s)
        if decoded is not None:
            return decoded
    return _decode_any_id(s)


_SHORT_ID_BYTES: Final = 1 + INTERNAL_ID_LENGTH + 2
_SHORT_ID_PAD_BITS: Final = ID_MIN_LENGTH * 5 - _SHORT_ID_BYTES * 8


def _decode_short_id(s: str) -> tuple[int, bytes] | None:
    """``_decode_id`` of a valid 31-character id (tables 1-127: nearly every app's) in
    a few C calls; ``None`` for anything else, and ``_decode_any_id`` then finds out
    why. Every document a replication hub stores has its id decoded; a test holds this
    to ``_decode_any_id`` on random input."""
    try:
        value = base32.to_int(s)
    except ValueError:  # UnicodeEncodeError included
        return None
    if value & ((1 << _SHORT_ID_PAD_BITS) - 1):
        return None
    raw = (value >> _SHORT_ID_PAD_BITS).to_bytes(_SHORT_ID_BYTES, "big")
    if not MIN_TABLE_NUMBER <= raw[0] < 0x80:
        return None
    # The footer, ``fletcher16(body) ^ _VERSION`` little-endian: c0 ^ low, c1 ^ high.
    body = raw[:-2]
    if raw[-2] != (sum(body) & 0xFF) ^ (_VERSION & 0xFF):
        return None
    if raw[-1] != (sum(accumulate(body)) & 0xFF) ^ (_VERSION >> 8):
        return None
    return raw[0], raw[1:-2]


def _decode_any_id(s: str) -> tuple[int, bytes]:
    """``_decode_id`` step by step, each failure with its reason."""
    if not isinstance(s, str):
        raise _invalid(s, f"ids are strings, not {type(s).__name__}")
    if not ID_MIN_LENGTH <= len(s) <= ID_MAX_LENGTH:
        raise _invalid(s, f"{len(s)} characters, but ids are {ID_MIN_LENGTH} to {ID_MAX_LENGTH}")
    try:
        raw = base32.decode(s)
    except ValueError as exc:
        raise _invalid(s, str(exc)) from None
    if raw[0] < 0x80:  # tables 1-127: one VInt byte, its own shortest form
        table_number, pos = raw[0], 1
    else:
        table_number, pos = _long_vint(s, raw)
    if len(raw) != pos + INTERNAL_ID_LENGTH + 2:
        raise _invalid(s, "its length does not match its table number")
    if not MIN_TABLE_NUMBER <= table_number <= MAX_TABLE_NUMBER:
        raise _invalid(s, f"table number {table_number} is out of range")
    body = raw[: pos + INTERNAL_ID_LENGTH]
    footer = int.from_bytes(raw[-2:], "little")
    if footer != fletcher16(body) ^ _VERSION:
        raise _invalid(s, "the checksum does not match (a mistyped or truncated id?)")
    if pos > 1 and _vint(table_number) != raw[:pos]:
        raise _invalid(s, "the table number is not in its shortest form")
    return table_number, raw[pos : pos + INTERNAL_ID_LENGTH]


def _long_vint(s: str, raw: bytes) -> tuple[int, int]:
    """(table number, bytes it takes) of a VInt of two bytes or more."""
    table_number = 0
    for pos in range(5):
        byte = raw[pos]
        table_number |= (byte & 0x7F) << (7 * pos)
        if byte < 0x80:
            return table_number, pos + 1
    raise _invalid(s, "the table number does not fit in 32 bits")


def is_id(s: object) -> bool:
    """Whether ``s`` is a well-formed id string (of any table)."""
    if not isinstance(s, str) or not _ID_SHAPE.fullmatch(s):
        return False
    try:
        decode_id(s)
    except InvalidIdError:
        return False
    return True


class RandomSource(Protocol):
    """What ``IdGenerator`` needs of a ``random.Random``."""

    def getrandbits(self, k: int, /) -> int: ...


_TIME_BITS: Final = 48
_RANDOM_BITS: Final = 80
_MAX_MS: Final = (1 << _TIME_BITS) - 1
_MAX_STEP_BITS: Final = 24


class UrandomPool:
    """``getrandbits`` from the operating system's randomness, read 4 KiB at a time.

    As unpredictable as ``random.SystemRandom`` (ids name stored files in URLs), without
    its ``os.urandom`` call per draw: a profile of the replication hub showed 4% of its
    time there. Not thread-safe: ``IdGenerator`` draws under its lock.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._buf = b""
        self._pos = 0

    def getrandbits(self, k: int) -> int:
        n = (k + 7) // 8
        if self._pos + n > len(self._buf):
            self._buf, self._pos = os.urandom(max(self._size, n)), 0
        chunk = self._buf[self._pos : self._pos + n]
        self._pos += n
        return int.from_bytes(chunk, "big") >> (n * 8 - k)


class IdGenerator:
    """Makes time-ordered internal ids: 48-bit big-endian milliseconds, 80 random bits.

    Within one millisecond (or if the clock steps back) each id is the previous one
    plus a random step of 1 to 2^24, ULID-monotonic style: ids from one generator
    strictly increase, so they never collide in-process and append to B-trees. If
    the 80 bits run over, the carry moves the time prefix on by one millisecond.
    Thread-safe. ``rng`` defaults to the operating system's randomness.
    """

    def __init__(self, rng: RandomSource | None = None) -> None:
        self._rng: RandomSource = rng if rng is not None else UrandomPool()
        self._last = -1
        self._lock = threading.Lock()

    def new_internal_id(self, now_ms: int) -> bytes:
        if isinstance(now_ms, bool) or not isinstance(now_ms, int):
            raise TypeError(f"now_ms is an int of milliseconds, not {type(now_ms).__name__}")
        if not 0 <= now_ms <= _MAX_MS:
            raise ValueError(f"now_ms {now_ms} is outside 0 .. 2^48-1 milliseconds")
        with self._lock:
            last = self._last
            if now_ms > last >> _RANDOM_BITS:
                value = now_ms << _RANDOM_BITS | self._rng.getrandbits(_RANDOM_BITS)
            else:
                value = last + 1 + self._rng.getrandbits(_MAX_STEP_BITS)
                if value >> (_TIME_BITS + _RANDOM_BITS):
                    raise OverflowError("internal id space exhausted")  # pragma: no cover
            self._last = value
        return value.to_bytes(INTERNAL_ID_LENGTH, "big")

    def new_id(self, table_number: int, now_ms: int) -> str:
        """A new document id string for ``table_number``."""
        return encode_id(table_number, self.new_internal_id(now_ms))
