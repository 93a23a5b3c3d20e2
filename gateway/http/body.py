"""Reading a call from a request: the JSON body (or query string), path, args, format.

Every refusal here is a 400 with a code the client can act on; nothing reaches the
runtime until the whole request has been read and checked.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, cast

from aiohttp import web

from gateway.errors import ConvexValueError
from gateway.http.errors import RequestError, bad_request
from gateway.http.formats import Format, choose_format
from gateway.http.upload import LIMITS, request_body
from gateway.values import VALUE_MAX_DEPTH, decode_json, to_convex

# module path segments (files may carry a .js suffix), then an optional export name
_PATH = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*(:[A-Za-z_][A-Za-z0-9_]*)?$")
_MAX_PATH_CHARS: Final = 1024
_T = TypeVar("_T")


BIG_BODY_BYTES: Final = 256 * 1024
"""From this size on a body is parsed, and its args converted, on a worker thread."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _same(value: dict[str, Any]) -> dict[str, Any]:
    return value


def _to_float(text: str) -> float:
    return float(text)


def _to_int(text: str) -> int:
    return int(text)


_decode = json.JSONDecoder(parse_constant=_reject_constant).decode
# The same values, but each object and number passes through a Python function: the C
# scanner never lets go of the GIL by itself, so parsing 14 MB on a thread would still
# stall the event loop for the whole parse (0.3 s here); a Python call is a point where
# the loop gets its turn (worst stall measured: ~20-40 ms). Strings have no hook; a
# body of millions of tiny strings still parses in one piece (~0.2 s for 14 MB).
_decode_yielding = json.JSONDecoder(
    parse_constant=_reject_constant, object_hook=_same, parse_float=_to_float, parse_int=_to_int
).decode


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
            return JsonBody(_json_object(raw, empty_ok, _decode))
        fields = await off_loop(request, _json_object, raw, empty_ok, _decode_yielding)
        return JsonBody(fields, big=True)


async def off_loop(request: web.Request, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` on a worker thread, one at a time per server (bounded CPU and memory)."""
    job: _Job[_T] = _Job(fn, args)
    async with request.app[LIMITS].parse_slots:
        await asyncio.to_thread(job.run)
    return job.outcome()


class _Job(Generic[_T]):
    """One call on a worker thread that leaves nothing behind there.

    A thread-pool worker keeps its last job's arguments, result or exception until it
    runs the next one (measured: a dropped 8 MB result stays allocated), so the job
    holds them itself and hands them over once; a refusal's traceback, whose frames
    hold the body's text, is dropped on the thread.
    """

    __slots__ = ("_call", "_result", "_error")

    def __init__(self, fn: Callable[..., _T], args: tuple[Any, ...]) -> None:
        self._call: tuple[Callable[..., _T], tuple[Any, ...]] | None = (fn, args)
        self._result: _T | None = None
        self._error: Exception | None = None

    def run(self) -> None:
        assert self._call is not None
        fn, args = self._call
        self._call = None
        try:
            self._result = fn(*args)
        except RequestError as exc:
            exc.__context__ = None  # a UnicodeDecodeError there holds the whole body
            self._error = exc.with_traceback(None)
        except Exception as exc:  # a bug: keep its traceback for the log
            self._error = exc

    def outcome(self) -> _T:
        result, error = self._result, self._error
        self._result = self._error = None
        if error is not None:
            raise error
        return cast(_T, result)


def _json_object(raw: bytearray, empty_ok: bool, decode: Callable[[str], Any]) -> dict[str, Any]:
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
    body = parse_json(text, "the request body", decode)
    if not isinstance(body, dict):
        raise bad_request(
            "BadJsonBody", f"the request body must be a JSON object, not {_json_type(body)}"
        )
    return body


def parse_json(text: str, what: str, decode: Callable[[str], Any] = _decode) -> Any:
    try:
        return decode(text)
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
