"""How Convex prints values inside its validation messages.

The server formats a value with Rust's ``Display`` for ``ConvexValue``
(``crates/value/src/lib.rs`` and friends), and these functions reproduce it:

- ``null``, ``true``/``false``;
- Int64 as a bare decimal (``5``), Float64 with Rust's ``{:?}`` (``5.0``, ``1e16``,
  ``1.5e-7``, ``NaN``, ``inf``, ``-0.0``), so the two stay distinguishable;
- strings with Rust's ``{:?}``: double quotes, ``\\"``, ``\\\\``, ``\\n``... and
  ``\\u{hex}`` for characters that are not printable;
- bytes as ``b"<base64>"``;
- arrays as ``[a, b]`` and objects as ``{a: 1.0, b: "x"}`` with fields sorted by name.

A plain Python ``int`` is a Float64 (DESIGN decision 6) and prints as one.
"""

from __future__ import annotations

import base64
import json
import math
import unicodedata
from decimal import Decimal

from gateway.values import UNSET, Int64

__all__ = [
    "char_debug",
    "display_value",
    "float_debug",
    "float_json",
    "json_str",
    "str_debug",
]

_SAFE_INT = 1 << 53

_STR_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\0": "\\0",
}


def _needs_unicode_escape(ch: str) -> bool:
    # Rust escapes what is not printable (the same categories as str.isprintable:
    # Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs other than space) and grapheme extenders.
    return not ch.isprintable() or unicodedata.category(ch) in ("Mn", "Me")


def str_debug(s: str) -> str:
    """``s`` as Rust's ``{:?}`` prints a ``str``."""
    out = ['"']
    for ch in s:
        esc = _STR_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif _needs_unicode_escape(ch):
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def char_debug(ch: str) -> str:
    """``ch`` as Rust's ``{:?}`` prints a ``char`` (``'a'``, ``'\\n'``, ``'\\u{10}'``)."""
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    esc = _STR_ESCAPES.get(ch)
    if esc is not None:
        return f"'{esc}'"
    if _needs_unicode_escape(ch):
        return f"'\\u{{{ord(ch):x}}}'"
    return f"'{ch}'"


def float_debug(f: float) -> str:
    """``f`` as Rust's ``{:?}`` prints an ``f64``.

    Shortest round-trip digits; exponent form below 1e-4 and from 1e16 on (the same
    thresholds as Python's ``repr``, which only spells the exponent differently).
    """
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    a = abs(f)
    text = repr(f)
    if a == 0.0 or 1e-4 <= a < 1e16:
        return text
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}"


def float_json(f: float) -> str:
    """A finite ``f`` as serde_json (ryu) writes it: ``5.0``, ``0.00001``, ``1e-6``, ``1e16``."""
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    a = abs(f)
    if a == 0.0:
        return f"{sign}0.0"
    parts = Decimal(repr(a)).as_tuple()
    all_digits = "".join(str(d) for d in parts.digits)
    digits = all_digits.rstrip("0")
    assert isinstance(parts.exponent, int)
    exp = parts.exponent + (len(all_digits) - len(digits))
    n = len(digits)
    kk = n + exp  # position of the decimal point relative to the digits
    if exp >= 0 and kk <= 16:
        text = digits + "0" * exp + ".0"
    elif 0 < kk <= 16:
        text = f"{digits[:kk]}.{digits[kk:]}"
    elif -5 < kk <= 0:
        text = "0." + "0" * (-kk) + digits
    elif n == 1:
        text = f"{digits}e{kk - 1}"
    else:
        text = f"{digits[0]}.{digits[1:]}e{kk - 1}"
    return sign + text


def json_str(s: str) -> str:
    """``s`` as a JSON string (serde_json: non-ASCII kept, controls escaped)."""
    return json.dumps(s, ensure_ascii=False)


def _display_plain_int(i: int) -> str:
    if -_SAFE_INT <= i <= _SAFE_INT:
        return float_debug(float(i))
    return str(i)  # not a storable value anyway; show it as written


def display_value(value: object) -> str:
    """``value`` as Convex prints a value in an error message."""
    if value is None:
        return "null"
    if value is UNSET:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Int64):
        return str(int(value))
    if isinstance(value, int):
        return _display_plain_int(value)
    if isinstance(value, float):
        return float_debug(value)
    if isinstance(value, str):
        return str_debug(value)
    if isinstance(value, bytes):
        return 'b"' + base64.b64encode(value).decode("ascii") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(display_value(x) for x in value) + "]"
    if isinstance(value, dict):
        items = sorted(
            (
                ((k if isinstance(k, str) else repr(k)), x)
                for k, x in value.items()
                if x is not UNSET
            ),
            key=lambda item: item[0],
        )
        return "{" + ", ".join(f"{k}: {display_value(x)}" for k, x in items) + "}"
    return repr(value)
