"""Crockford base32 in lower case, as Convex ids use it.

Alphabet ``0123456789abcdefghjkmnpqrstvwxyz`` (no i, l, o, u), bits packed most
significant first, five input bytes to eight characters, no padding characters: a
trailing partial character carries zero bits. The alphabet is in ascending ASCII
order, so comparing encodings of equal length compares the bytes.

The bit packing is RFC 4648's: decoding is done by ``base64.b32decode`` with the
alphabet translated; encoding (every new document id) goes through one big integer
and a table of two-character pairs, which is several times faster than
``base64.b32encode`` (a Python loop in CPython 3.11).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

__all__ = ["ALPHABET", "decode", "encode", "encoded_length"]

ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"
_RFC4648: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_RFC4648: Final = str.maketrans(ALPHABET, _RFC4648)
_VALID: Final = re.compile(f"[{ALPHABET}]*")
_VALUE: Final = {c: i for i, c in enumerate(ALPHABET)}
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
    and zero bits in a trailing partial character. Raises ``ValueError``."""
    if not _VALID.fullmatch(text):
        bad = next(c for c in text if c not in ALPHABET)
        raise ValueError(f"character {bad!r} is not in the base32 alphabet {ALPHABET}")
    tail = len(text) % 8
    if tail not in _TAIL_CHARS:
        raise ValueError(f"{len(text)} characters is not the length of any base32 encoding")
    padded = text.translate(_TO_RFC4648) + "=" * ((8 - tail) % 8)
    try:
        data = base64.b32decode(padded)
    except binascii.Error as exc:  # pragma: no cover - ruled out by the checks above
        raise ValueError(f"not valid base32 ({exc})") from None
    if tail:
        unused_bits = tail * 5 - (len(data) % 5) * 8
        if _VALUE[text[-1]] & ((1 << unused_bits) - 1):
            raise ValueError("the last character carries non-zero padding bits")
    return data
