"""Reading a call from a request: the JSON body (or query string), path, args, format.

Every refusal here is a 400 with a code the client can act on; nothing reaches the
runtime until the whole request has been read and checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from gateway.errors import ConvexValueError
from gateway.http.errors import bad_request
from gateway.http.formats import Format, choose_format
from gateway.values import VALUE_MAX_DEPTH, decode_json, to_convex

# module path segments (files may carry a .js suffix), then an optional export name
_PATH = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*(:[A-Za-z_][A-Za-z0-9_]*)?$")
_MAX_PATH_CHARS: Final = 1024


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


@dataclass(frozen=True)
class FunctionCall:
    """One function call as the client asked for it."""

    path: str
    args: dict[str, Any]
    format: Format


async def read_json_object(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object (413 past the size limit, 400 for anything else)."""
    raw = await request.read()
    if not raw.strip():
        if empty_ok:
            return {}
        raise bad_request("BadJsonBody", "the request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(
            "BadJsonBody", f"the request body is not valid UTF-8 (byte {exc.start})"
        ) from None
    body = parse_json(text, "the request body")
    if not isinstance(body, dict):
        raise bad_request(
            "BadJsonBody", f"the request body must be a JSON object, not {_json_type(body)}"
        )
    return body


def parse_json(text: str, what: str) -> Any:
    try:
        return _decode(text)
    except RecursionError:
        raise _too_deep(what) from None
    except ValueError as exc:  # JSONDecodeError and the constants NaN/Infinity
        raise bad_request("BadJsonBody", f"{what} is not valid JSON: {exc}") from None


def function_call(
    body: Mapping[str, Any],
    request: web.Request,
    *,
    path: object = None,
    default_format: Format = "clean",
) -> FunctionCall:
    """Path, args and format out of a parsed body (``path`` given for /api/run)."""
    fmt = choose_format(body.get("format"), request.headers.get("Convex-Client"), default_format)
    return FunctionCall(
        function_path(body.get("path") if path is None else path),
        function_args(body.get("args")),
        fmt,
    )


def function_path(path: object) -> str:
    """A function path as the clients send it: ``m:f``, ``m.js:f``, ``dir/m:f``, ``m``."""
    if not isinstance(path, str):
        if path is None:
            raise bad_request("BadJsonBody", "the request has no 'path' (e.g. 'messages:list')")
        raise bad_request(
            "BadJsonBody", f"'path' must be a string like 'messages:list', not {_json_type(path)}"
        )
    if len(path) > _MAX_PATH_CHARS or _PATH.match(path) is None:
        raise bad_request(
            "BadConvexFunctionIdentifier",
            f"{path[:80]!r} is not a function path; write 'module:function' "
            "(e.g. 'messages:list' or 'dir/file:fn')",
        )
    return path


def function_args(raw: object) -> dict[str, Any]:
    """Args as an object or a one-element array of one (npm), missing = ``{}``."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        if len(raw) != 1:
            raise bad_request(
                "InvalidArgs",
                f"'args' as an array must hold exactly one object, not {len(raw)} elements",
            )
        raw = raw[0]
    if not isinstance(raw, dict):
        raise bad_request("InvalidArgs", f"'args' must be a JSON object, not {_json_type(raw)}")
    try:
        args = to_convex(decode_json(raw), what="arguments")
    except ConvexValueError as exc:
        raise bad_request("InvalidArgs", str(exc)) from None
    assert isinstance(args, dict)
    return args


def _too_deep(what: str) -> Exception:
    return bad_request(
        "InvalidArgs",
        f"{what} is nested too deeply; Convex values nest at most {VALUE_MAX_DEPTH} levels",
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number")
