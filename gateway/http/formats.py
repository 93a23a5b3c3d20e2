"""Value formats of the HTTP API (wire spec 1.2) and the function-outcome body (1.4).

``convex_encoded_json`` keeps every Convex type (``$integer``, ``$bytes``, ``$float``);
``json`` is the lossy, readable export form. The format only shapes the answer:
arguments are always read as convex-encoded JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, Literal

from gateway.errors import ConvexValueError
from gateway.http.errors import bad_request
from gateway.redact import redact
from gateway.runtime.runtime import CallResult
from gateway.values import UNSET, dumps, encode_clean_json, to_convex

Format = Literal["encoded", "clean"]

_FORMATS: Final[dict[str, Format]] = {
    "convex_encoded_json": "encoded",
    "convex_json": "encoded",
    "json": "clean",
    "convex_clean_json": "clean",
    "export_json": "clean",
}
# Clients at or below these versions expect the encoded form when they send no format.
_OLD_CLIENTS: Final = {"npm": (1, 4, 1), "python": (0, 5, 0), "python-convex": (0, 5, 0)}
_CLIENT = re.compile(r"^([a-z][a-z-]*?)-(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?$")

_clean_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
).encode


def client_version(header: str | None) -> tuple[str, tuple[int, int, int]] | None:
    """Parse ``Convex-Client: npm-1.48.0``; 400 ``InvalidVersion`` when it does not parse."""
    if header is None:
        return None
    match = _CLIENT.match(header.strip())
    if match is None:
        raise bad_request(
            "InvalidVersion",
            f"the Convex-Client header {header[:64]!r} is not '<client>-<major.minor.patch>'",
        )
    name, *version = match.groups()
    return name, (int(version[0]), int(version[1]), int(version[2]))


def choose_format(requested: object, client_header: str | None, default: Format) -> Format:
    """The answer's format: the request's ``format``, else by client version."""
    client = client_version(client_header)
    if requested is None:
        old = client is not None and client[1] <= _OLD_CLIENTS.get(client[0], (-1, 0, 0))
        return "encoded" if old else default
    if not isinstance(requested, str) or requested not in _FORMATS:
        raise bad_request(
            "BadFormat",
            f"format {str(requested)[:64]!r} is not one of: {', '.join(sorted(_FORMATS))}",
        )
    return _FORMATS[requested]


def encode_value(value: Any, fmt: Format) -> str:
    """JSON text of a Convex value; floats always carry a decimal point (spec 1.4)."""
    if fmt == "encoded":
        return dumps(value)
    return _clean_encode(encode_clean_json(value))


def outcome_body(result: CallResult, fmt: Format) -> str:
    """``{"status": "success"|"error", ...}``: every function outcome is HTTP 200."""
    lines = _clean_encode(result.log_lines)
    if result.ok:
        return (
            f'{{"status":"success","value":{encode_value(result.value, fmt)},"logLines":{lines}}}'
        )
    # A system message may quote what the caller sent (a path, an argument): never a key.
    message = _clean_encode(redact(result.error_message))
    error_data = _error_data(result.error_data, fmt)
    if error_data is None:
        return f'{{"status":"error","errorMessage":{message},"logLines":{lines}}}'
    return (
        f'{{"status":"error","errorMessage":{message},"errorData":{error_data},"logLines":{lines}}}'
    )


def _error_data(data: Any, fmt: Format) -> str | None:
    """A ``ConvexError``'s data as JSON text; None when there is none or it is no value."""
    if data is UNSET:
        return None
    try:
        return encode_value(to_convex(data, what="ConvexError data"), fmt)
    except ConvexValueError:
        return None  # the message already says what was raised
