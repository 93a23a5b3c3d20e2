"""Crockford base32 in lower case, as Convex ids use it.

Alphabet ``0123456789abcdefghjkmnpqrstvwxyz`` (no i, l, o, u), bits packed most
significant first, five input bytes to eight characters, no padding characters: a
trailing partial character carries zero bits. The alphabet is in ascending ASCII
order, so comparing encodings of equal length compares the bytes.

The bit packing is RFC 4648's. Both directions go through one big integer: decoding
parses the digits translated to ``int``'s own base-32 digits, encoding (every new
document id) uses a table of two-character pairs; both are several times faster than
``base64``'s base32 functions (Python loops in CPython 3.11).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["ALPHABET", "decode", "encode", "encoded_length", "to_int"]

ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"
_INT_DIGITS: Final = "0123456789abcdefghijklmnopqrstuv"
_VALID: Final = re.compile(f"[{ALPHABET}]*")


def _byte_digits() -> bytes:
    """A byte table: alphabet characters to ``int``'s base-32 digits, every other byte
    to ``!`` (which ``int`` refuses, as it does not whitespace, signs and ``_``)."""
    table = bytearray(b"!" * 256)
    for char, digit in zip(ALPHABET, _INT_DIGITS, strict=True):
        table[ord(char)] = ord(digit)
    return bytes(table)


_TO_INT_DIGITS: Final = _byte_digits()
# characters used by a trailing group of 0..4 input bytes
_TAIL_CHARS: Final = (0, 2, 4, 5, 7)
# every 10-bit group as its two characters
_PAIRS: Final = tuple(a + b for a in ALPHABET for b in ALPHABET)


def encoded_length(n_bytes: int) -> int:
    """Characters needed for ``n_bytes`` bytes."""
    return n_bytes // 5 * 8 + _TAIL_CHARS[n_bytes % 5]


def encode(data: bytes) -> str:
    n = len(data)
    chars = n // 5 * 8 + _TAIL_CHARS[n % 5]
    pairs = (chars + 1) >> 1
    # Left-align the bits on a whole number of 10-bit groups: the padding bits are zero.
    value = int.from_bytes(data, "big") << (pairs * 10 - n * 8)
    text = "".join([_PAIRS[value >> shift & 0x3FF] for shift in range(pairs * 10 - 10, -1, -10)])
    return text[:chars] if chars & 1 else text


def decode(text: str) -> bytes:
    """Decode strictly: only alphabet characters, a length some byte count encodes to,
    and zero bits in a trailing partial character. Raises ``ValueError``.

    The digits are translated to ``int``'s base-32 digits and parsed in one C call
    (every document id a replication hub stores is decoded: ``base64.b32decode`` is a
    Python loop in CPython 3.11); a test holds it to ``base64.b32decode`` on random
    input."""
    tail = len(text) % 8
    if tail not in _TAIL_CHARS:
        _check_alphabet(text)
        raise ValueError(f"{len(text)} characters is not the length of any base32 encoding")
    if not text:
        return b""
    n_bytes = len(text) // 8 * 5 + _TAIL_CHARS.index(tail)
    unused_bits = len(text) * 5 - n_bytes * 8
    try:  # translated as bytes: a third of the time of ``str.translate``
        value = to_int(text)
    except ValueError:  # UnicodeEncodeError included
        _check_alphabet(text)
        raise
    if value & ((1 << unused_bits) - 1):
        raise ValueError("the last character carries non-zero padding bits")
    return (value >> unused_bits).to_bytes(n_bytes, "big")


def to_int(text: str) -> int:
    """The digits of ``text`` as one big integer, most significant first (no length or
    padding checks: ``decode`` makes them). ``ValueError`` for a character outside the
    alphabet."""
    return int(text.encode("ascii").translate(_TO_INT_DIGITS), 32)


def _check_alphabet(text: str) -> None:
    if not _VALID.fullmatch(text):
        bad = next(c for c in text if c not in ALPHABET)
        raise ValueError(f"character {bad!r} is not in the base32 alphabet {ALPHABET}")
