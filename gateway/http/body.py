"""Reading a call from a request: the JSON body (or query string), path, args, format.

Every refusal here is a 400 with a code the client can act on; nothing reaches the
runtime until the whole request has been read and checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from aiohttp import web

from gateway.errors import ConvexValueError
from gateway.http.errors import RequestError, bad_request
from gateway.http.formats import Format, choose_format
from gateway.http.state import slot_of
from gateway.http.upload import LIMITS, request_body
from gateway.offload import BIG_JSON_BYTES, decode, decode_yielding, run_off_loop
from gateway.runtime.functions import JsonArgs
from gateway.values import VALUE_MAX_DEPTH, decode_json, to_convex

# module path segments (files may carry a .js suffix), then an optional export name
_PATH = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*(:[A-Za-z_][A-Za-z0-9_]*)?$")
_MAX_PATH_CHARS: Final = 1024
_T = TypeVar("_T")


BIG_BODY_BYTES: Final = BIG_JSON_BYTES
"""From this size on a body is parsed, and its args converted, on a worker thread."""


@dataclass(frozen=True)
class FunctionCall:
    """One function call as the client asked for it."""

    path: str
    args: dict[str, Any]
    format: Format


@dataclass(frozen=True)
class JsonBody:
    """A request's JSON object; ``big`` ones were parsed off the event loop."""

    fields: dict[str, Any]
    big: bool = False


async def read_json_object(request: web.Request, *, empty_ok: bool = False) -> JsonBody:
    """The body as a JSON object (413 past the size limit, 400 for anything else)."""
    async with request_body(request) as raw:
        if len(raw) < BIG_BODY_BYTES:
            return JsonBody(_json_object(raw, empty_ok, decode))
        fields = await off_loop(request, _json_object, raw, empty_ok, decode_yielding)
        return JsonBody(fields, big=True)


async def off_loop(request: web.Request, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` on a worker thread, one at a time per server (bounded CPU and memory)."""
    slots = request.app[LIMITS].parse_slots
    return await run_off_loop(slots, fn, *args, quiet=(RequestError,))


def _json_object(raw: bytearray, empty_ok: bool, decoder: Callable[[str], Any]) -> dict[str, Any]:
    if not raw or raw.isspace():
        if empty_ok:
            return {}
        raise bad_request("BadJsonBody", "the request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(
            "BadJsonBody", f"the request body is not valid UTF-8 (byte {exc.start})"
        ) from None
    body = parse_json(text, "the request body", decoder)
    if not isinstance(body, dict):
        raise bad_request(
            "BadJsonBody", f"the request body must be a JSON object, not {_json_type(body)}"
        )
    return body


def parse_json(text: str, what: str, decoder: Callable[[str], Any] = decode) -> Any:
    try:
        return decoder(text)
    except RecursionError:
        problem = None
    except ValueError as exc:  # JSONDecodeError and the constants NaN/Infinity
        problem = str(exc)  # a position, never the document (exc.doc holds all of it)
    # Raised outside the except block: the refusal keeps no context holding the text.
    if problem is None:
        raise _too_deep(what)
    raise bad_request("BadJsonBody", f"{what} is not valid JSON: {problem}")


async def function_call(
    body: JsonBody,
    request: web.Request,
    *,
    path: object = None,
    default_format: Format = "clean",
) -> FunctionCall:
    """Path, args and format out of a parsed body (``path`` given for /api/run)."""
    fields = body.fields
    fmt = choose_format(fields.get("format"), request.headers.get("Convex-Client"), default_format)
    function = function_path(fields.get("path") if path is None else path)
    raw_args = fields.get("args")
    if slot_of(request).require().takes_json_args(function):
        return FunctionCall(function, JsonArgs(_args_object(raw_args)), fmt)
    if body.big:
        args = await off_loop(request, function_args, raw_args)
    else:
        args = function_args(raw_args)
    return FunctionCall(function, args, fmt)


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


def _args_object(raw: object) -> dict[str, Any]:
    """The args object, given as one or as a one-element array of one (npm); missing =
    ``{}``. Still Convex JSON."""
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
    return raw


def function_args(raw: object) -> dict[str, Any]:
    """Args as Convex values (``_args_object``'s forms)."""
    raw = _args_object(raw)
    if not raw:
        return {}
    try:
        args = to_convex(decode_json(raw), what="arguments")
    except ConvexValueError as exc:
        raise bad_request("InvalidArgs", str(exc)) from None
    if not isinstance(args, dict):  # {"$integer": ...} and its kin encode one value
        raise bad_request(
            "InvalidArgs",
            f"'args' must be an object of named arguments, not an encoded "
            f"{type(args).__name__} ({next(iter(raw))!r})",
        )
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
