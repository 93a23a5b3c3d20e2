"""MQTT payloads -> a mutation's arguments, and the rules that decide them.

``decode_payload(codec, payload)`` returns ``Decoded(args, seq, boot)`` or raises
``PayloadError``, whose message is a dead-letter ``reason`` (what was wrong, at most
~80 bytes of the payload quoted).

- Size: a payload over ``MAX_PAYLOAD_BYTES`` (256 KiB) is refused before decoding.
  Sensor readings are bytes to a few kB; the cap bounds the bridge's memory per
  in-flight message (times the Receive Maximum) and keeps an ingest far under
  Convex's 16 MiB argument and 1 MiB document limits.
- ``json``: strict UTF-8 JSON (no NaN/Infinity, nor a number that overflows to
  infinity; no duplicate keys). Integers are Float64 as everywhere (DESIGN
  decision 6).
- ``cbor`` (cbor2): one complete data item, nothing after it. Integers are Float64
  too. An integer outside ±2^53 is **refused**, not made an ``Int64``: CBOR does not
  say whether a device meant a count or a measurement, and a field that is a float
  in one message and an Int64 in the next would break the app's validators; a
  silent rounding would be worse. A device that needs 64-bit counters sends them as
  strings. Byte strings become ``bytes``; tags are refused except the bignums
  (2/3, which are integers and follow the integer rule); CBOR ``undefined``, simple
  values, sets, dates and decimals are not Convex values and are refused.
- ``raw``: ``{"value": payload}`` as ``bytes``, whatever it holds.
- ``auto``: empty -> raw. A first byte >= 0x80 (CBOR arrays, maps, tags, true,
  false, null, floats; never the start of JSON text) that parses as CBOR -> cbor.
  Otherwise UTF-8 that parses as strict JSON -> json. Otherwise raw. Once a payload
  parses, a value it holds that Convex refuses is an error, not a fallback to raw.
  A bare small CBOR integer or text string starts below 0x80 and is therefore
  not auto-detected: declare ``payload="cbor"`` for those.

An object payload's fields become the args; any other value arrives as
``{"value": x}``. The fields ``seq`` and ``boot`` are taken out of an object payload
and returned apart: non-negative integers below 2^63 (an integral float is
accepted, as JSON numbers from some devices are floats).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

import cbor2

from gateway.errors import ConvexValueError, PayloadError
from gateway.values import to_convex

MAX_PAYLOAD_BYTES = 256 * 1024
INGEST_CODECS = ("auto", "cbor", "json", "raw")
PUBLISH_CODECS = ("cbor", "json", "raw")
COUNTER_FIELDS = ("seq", "boot")
_COUNTER_MAX = 2**63 - 1  # stored as SQLite INTEGER
_QUOTE_BYTES = 48  # enough to recognise a payload in a dead letter, too little to dump it


@dataclass(frozen=True, slots=True)
class Decoded:
    """A payload as mutation args, with the dedupe counters taken out (None if absent)."""

    args: dict[str, Any]
    seq: int | None = None
    boot: int | None = None


class _NotCbor(Exception):
    """``auto`` only: the bytes are not CBOR, try the next codec."""


class _NotJson(Exception):
    """``auto`` only: the bytes are not JSON, fall back to raw."""


def decode_payload(codec: str, payload: bytes) -> Decoded:
    """Decode ``payload`` with ``codec`` into mutation args; ``PayloadError`` if it cannot."""
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES} cap")
    if codec == "raw":
        return Decoded({"value": payload})
    if codec == "auto":
        return _decode_auto(payload)
    try:
        if codec == "json":
            return _to_args(_parse_json(payload))
        if codec == "cbor":
            return _to_args(_parse_cbor(payload))
    except (_NotCbor, _NotJson) as exc:
        raise PayloadError(f"{exc} in payload {_quote(payload)}") from None
    raise PayloadError(f"unknown codec {codec!r}; use one of {', '.join(INGEST_CODECS)}")


def _decode_auto(payload: bytes) -> Decoded:
    if not payload:
        return Decoded({"value": payload})
    if payload[0] >= 0x80:
        try:
            return _to_args(_parse_cbor(payload))
        except _NotCbor:
            pass
    try:
        return _to_args(_parse_json(payload))
    except _NotJson:
        return Decoded({"value": payload})


def _parse_json(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _NotJson(f"JSON is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(
            text, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_unique_keys
        )
    except json.JSONDecodeError as exc:
        raise _NotJson(f"invalid JSON: {exc.msg} at character {exc.pos}") from None
    except ValueError as exc:  # from the hooks
        raise _NotJson(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise _NotJson("invalid JSON: nested too deeply") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (strict JSON has no NaN or Infinity)")


def _finite(text: str) -> float:
    # 1e400 is valid JSON that Python reads as inf: the strict rule refuses it too.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} overflows a Float64")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"the key {dup[:40]!r} appears twice in an object")
    return obj


def _parse_cbor(payload: bytes) -> Any:
    fp = io.BytesIO(payload)
    try:
        value = cbor2.CBORDecoder(fp, tag_hook=_refuse_tag).decode()
    except (_NotCbor, PayloadError):
        raise
    except (cbor2.CBORDecodeError, ValueError, RecursionError, EOFError) as exc:
        if isinstance(exc.__cause__, PayloadError):
            raise exc.__cause__ from None  # our tag refusal, wrapped by cbor2
        raise _NotCbor(f"invalid CBOR: {str(exc)[:120]}") from None
    if fp.tell() != len(payload):
        raise _NotCbor(f"invalid CBOR: {len(payload) - fp.tell()} bytes after the first item")
    return value


def _refuse_tag(*args: Any) -> Any:
    # Only called for tags cbor2 has no decoder for; the known ones (dates, decimals,
    # sets...) decode to Python types that ``to_convex`` refuses below.
    # cbor2 5 passes (decoder, tag), cbor2 6 (tag, immutable): find the tag.
    tag = next(a for a in args if isinstance(a, cbor2.CBORTag))
    raise PayloadError(f"CBOR tag {tag.tag} is not supported (a Convex value has no tags)")


def _to_args(value: Any) -> Decoded:
    seq = boot = None
    if isinstance(value, dict):
        value = dict(value)
        seq = _counter(value, "seq")
        boot = _counter(value, "boot")
    try:
        checked = to_convex(value, what="payload")
    except ConvexValueError as exc:
        error = PayloadError(_device_wording(str(exc)))
        error.seq, error.boot = seq, boot
        raise error from None
    if isinstance(checked, dict):
        return Decoded(checked, seq, boot)
    return Decoded({"value": checked}, seq, boot)


def _device_wording(message: str) -> str:
    # to_convex's hint for a big int ("use Int64(x)") speaks to Python authors; a
    # device cannot send an Int64, so say what it can do instead.
    head, sep, _ = message.partition(", which is outside ±2^53")
    if sep:
        message = (
            f"{head}, which is outside ±2^53: an MQTT integer is a Float64 and cannot "
            "hold it exactly; send it as a string"
        )
    return message[:300]


def _counter(obj: dict[Any, Any], name: str) -> int | None:
    if name not in obj:
        return None
    raw = obj.pop(name)
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        raw = int(raw)
    if type(raw) is not int or not 0 <= raw <= _COUNTER_MAX:
        raise PayloadError(
            f"{name} must be an integer from 0 to 2^63-1, not {_short(raw)} "
            "(it is the device's message counter)"
        )
    return raw


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE_BYTES else text[:_QUOTE_BYTES] + "..."


def _quote(payload: bytes) -> str:
    head = payload[:_QUOTE_BYTES]
    more = f"... ({len(payload)} bytes)" if len(payload) > _QUOTE_BYTES else ""
    return f"{head!r}{more}"
