"""Convex's JSON wire format (``convex_encoded_json``, spec 1.1) and its lossy
``json`` export format.

Wire form: JSON numbers are Float64 (always, even ``5``); an Int64 is
``{"$integer": base64(8 bytes little-endian)}``; NaN, ±inf and -0.0 are
``{"$float": base64(8 bytes little-endian)}``; bytes are ``{"$bytes": base64}``.
Object keys starting with ``$`` are reserved for these encodings.

``dumps``/``loads`` are on the hot path (every stored document goes through them):
both hand the common case to the C ``json`` module and fall back to a Python walk
only when the text or the value holds something that needs it.
"""

from __future__ import annotations

import binascii
import json
import math
import re
import struct
from collections.abc import Collection
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, Final

from gateway.errors import ConvexValueError
from gateway.values.core import UNSET, Int64, Value, as_basic_type, int_as_float

__all__ = [
    "decode_json",
    "dumps",
    "encode_clean_json",
    "encode_json",
    "loads",
]

_pack_f64 = struct.Struct("<d").pack
_unpack_f64 = struct.Struct("<d").unpack
_copysign = math.copysign
_INF: Final = math.inf


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _unb64(key: str, payload: object) -> bytes:
    if not isinstance(payload, str):
        raise ConvexValueError(
            f'{{"{key}": ...}} holds a {type(payload).__name__}; it must be a base64 string'
        )
    try:
        return binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ConvexValueError(
            f'{{"{key}": {_short(payload)}}} is not valid standard base64 ({exc})'
        ) from None


def _short(s: str) -> str:
    return repr(s) if len(s) <= 40 else repr(s[:40]) + "..."


def _is_special_float(v: float) -> bool:
    """NaN, ±inf and -0.0: the floats plain JSON cannot carry."""
    return v - v != 0.0 or (v == 0.0 and _copysign(1.0, v) < 0.0)


# --- encoding ---------------------------------------------------------------------------


def encode_json(value: Value) -> Any:
    """``value`` as a JSON-ready structure in Convex's wire encoding."""
    try:
        return _enc(value)
    except RecursionError:
        raise ConvexValueError(
            "value is too deeply nested (or contains a reference cycle) to encode"
        ) from None


def _enc(v: Any) -> Any:
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is float:
        if v - v != 0.0 or (v == 0.0 and _copysign(1.0, v) < 0.0):
            return {"$float": _b64(_pack_f64(v))}
        return v
    if t is dict:
        return {k: _enc(x) for k, x in v.items() if x is not UNSET}
    if t is list or t is tuple:
        return [_enc(x) for x in v]
    if t is Int64:
        return {"$integer": _b64(int.to_bytes(v, 8, "little", signed=True))}
    if t is int:
        return int_as_float(v)
    if t is bytes:
        return {"$bytes": _b64(v)}
    return _enc(_basic(v))


def encode_clean_json(value: Value) -> Any:
    """``value`` in Convex's lossy, human-readable ``json`` export format.

    Int64 as a decimal string, bytes as a base64 string, NaN/±inf as the strings
    ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; -0.0 stays the number -0.0.
    """
    try:
        return _clean(value)
    except RecursionError:
        raise ConvexValueError(
            "value is too deeply nested (or contains a reference cycle) to encode"
        ) from None


def _clean(v: Any) -> Any:
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is float:
        if v != v:
            return "NaN"
        if v == _INF:
            return "Infinity"
        if v == -_INF:
            return "-Infinity"
        return v
    if t is dict:
        return {k: _clean(x) for k, x in v.items() if x is not UNSET}
    if t is list or t is tuple:
        return [_clean(x) for x in v]
    if t is Int64:
        return str(int(v))
    if t is int:
        return int_as_float(v)
    if t is bytes:
        return _b64(v)
    return _clean(_basic(v))


def _basic(v: object) -> Value:
    return as_basic_type(
        v,
        unset_error=(
            "UNSET (undefined) cannot be encoded here: it is dropped as an object field "
            "value and not allowed inside an array or on its own; use None (null)"
        ),
        purpose="cannot be encoded",
    )


_plain_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
)
# The C encoder ``JSONEncoder.encode`` builds on every call, built once: half the time
# of a small document's ``dumps`` went to building it (every document stored is dumped).
_c_encoder: Any = (
    None
    if c_make_encoder is None
    else c_make_encoder(
        None, _plain_encoder.default, encode_basestring, None, ":", ",", False, False, False
    )
)


def _plain_encode(value: Any) -> str:
    """``_plain_encoder.encode(value)``; a test holds the two to the same text."""
    t = type(value)
    if _c_encoder is not None and (t is dict or t is list):
        return "".join(_c_encoder(value, 0))
    return _plain_encoder.encode(value)


_JSON_LEAVES: Final = frozenset({str, float, bool, type(None)})
_JSON_TYPES: Final = _JSON_LEAVES | {dict, list}
# -0.0 printed as a token of its own (the C encoder prints it as is).
_NEGATIVE_ZERO: Final = re.compile(r"[\[,:]-0\.0[,\]}]")


def _json_safe(v: dict[str, Any] | list[Any]) -> bool:
    """Whether the C encoder's output for ``v`` is already its wire form (no Int64,
    int, bytes or UNSET anywhere). The type sets are built in C, one per container."""
    vals: Collection[Any] = v.values() if isinstance(v, dict) else v
    types = set(map(type, vals))
    if types <= _JSON_LEAVES:
        return True
    if not types <= _JSON_TYPES:
        return False
    for x in vals:
        t = type(x)
        if (t is dict or t is list) and not _json_safe(x):
            return False
    return True


def dumps(value: Value) -> str:
    """Compact wire JSON text for ``value`` (``ensure_ascii=False``).

    Finite floats always print with a decimal point or an exponent, so any JSON
    parser reads them back as floats: ``5.0`` -> ``5.0``.
    """
    t = type(value)
    if t is dict or t is list:
        try:
            if _json_safe(value):
                # NaN and infinities raise (allow_nan=False); -0.0 is looked for.
                text: str = _plain_encode(value)
                if "-0.0" not in text or _NEGATIVE_ZERO.search(text) is None:
                    return text
        except (ValueError, RecursionError):
            pass
    elif t is str:
        return _plain_encode(value)
    return _plain_encode(encode_json(value))


def dumps_yielding(value: Value) -> str:
    """``dumps`` for a big value on a worker thread: the same text, built by the
    pure-Python encoder. The C encoder holds the GIL for the whole value (0.3 s for
    12 MB of floats), stalling the event loop as if it ran there; Python code lets the
    loop run every few milliseconds."""
    return "".join(_plain_encoder.iterencode(encode_json(value)))


# --- decoding ---------------------------------------------------------------------------


def _special(key: str, payload: object) -> Value:
    if key == "$integer":
        raw = _unb64(key, payload)
        if len(raw) != 8:
            raise ConvexValueError(
                f'{{"$integer": ...}} decodes to {len(raw)} bytes; an Int64 must be exactly 8'
            )
        return Int64(int.from_bytes(raw, "little", signed=True))
    if key == "$float":
        raw = _unb64(key, payload)
        if len(raw) != 8:
            raise ConvexValueError(
                f'{{"$float": ...}} decodes to {len(raw)} bytes; a Float64 must be exactly 8'
            )
        f: float = _unpack_f64(raw)[0]
        if f - f == 0.0 and f != 0.0:
            raise ConvexValueError(
                f'{{"$float": ...}} holds {f!r}, which must be sent as a plain JSON number '
                "($float is only for NaN, Infinity, -Infinity and -0)"
            )
        return f
    if key == "$bytes":
        return _unb64(key, payload)
    raise ConvexValueError(
        f'unknown encoding {{"{key}": ...}}: object keys starting with "$" are reserved '
        "($integer, $float, $bytes); rename the field"
    )


def _dollar_key_error(d: dict[str, Any]) -> ConvexValueError:
    keys = [k for k in d if k[:1] == "$"]
    return ConvexValueError(
        f"object field {keys[0]!r} starts with '$', which is reserved for Convex's "
        "encodings ($integer, $float, $bytes: each alone in its object); rename the field"
    )


def _object_hook(d: dict[str, Any]) -> Any:
    if len(d) == 1:
        for k in d:
            if k[:1] == "$":
                return _special(k, d[k])
        return d
    for k in d:
        if k[:1] == "$":
            raise _dollar_key_error(d)
    return d


def _reject_constant(name: str) -> float:
    raise ConvexValueError(
        f'{name} is not JSON; send NaN and infinities as {{"$float": base64(8 bytes LE)}}'
    )


_fast_decode = json.JSONDecoder(parse_int=float, parse_constant=_reject_constant).decode
_walk_decode = json.JSONDecoder(
    parse_int=float, parse_constant=_reject_constant, object_hook=_object_hook
).decode


def loads(text: str | bytes) -> Value:
    """Parse wire JSON text into a Convex value (every JSON number becomes a float)."""
    if isinstance(text, bytes | bytearray):
        special = b'"$' in text or b"\\u0024" in text
        try:
            s = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConvexValueError(f"JSON text is not valid UTF-8 ({exc})") from None
    else:
        s = text
        special = '"$' in s or "\\u0024" in s
    try:
        return (_walk_decode if special else _fast_decode)(s)
    except json.JSONDecodeError as exc:
        raise ConvexValueError(f"not valid JSON: {exc}") from None


def decode_json(obj: Any) -> Value:
    """Turn an already-parsed JSON structure into a Convex value.

    Checks the ``$`` encodings only; run ``to_convex`` on untrusted input for the
    shape and size limits.
    """
    try:
        return _dec(obj)
    except RecursionError:
        raise ConvexValueError("JSON value is too deeply nested to decode") from None


def _dec(o: Any) -> Value:
    t = type(o)
    if t is str or t is float or t is bool or o is None:
        return o
    if t is dict:
        if len(o) == 1:
            for k, x in o.items():
                if type(k) is str and k[:1] == "$":
                    return _special(k, x)
        out: dict[str, Value] = {}
        for k, x in o.items():
            if type(k) is not str:
                raise ConvexValueError(f"JSON object key {k!r} is not a string")
            if k[:1] == "$":
                raise _dollar_key_error(o)
            out[k] = _dec(x)
        return out
    if t is list:
        return [_dec(x) for x in o]
    if t is int:
        try:
            return float(o)
        except OverflowError:
            raise ConvexValueError(
                f"the JSON number {o} is too large for a Float64; "
                'send it as {"$integer": ...} or a string'
            ) from None
    raise ConvexValueError(
        f"decode_json() got a {type(o).__name__}, which is not parsed JSON "
        "(expected dict, list, str, float, int, bool or None)"
    )
