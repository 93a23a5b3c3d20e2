"""The function endpoints: ``/api/query``, ``/mutation``, ``/action``, ``/function``,
``/run/{path}``, ``GET /api/query``, ``/api/query_ts`` and ``/api/query_at_ts``.

A function's own failure is HTTP 200 with ``status: "error"`` (wire spec 1.4); only
a request the API cannot take is a 4xx/5xx with ``{code, message}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.http.admin import verified_caller
from gateway.http.body import (
    FunctionCall,
    JsonBody,
    function_call,
    parse_json,
    read_json_object,
)
from gateway.http.errors import bad_request
from gateway.http.formats import outcome_body
from gateway.http.state import slot_of
from gateway.runtime.functions import Kind
from gateway.runtime.runtime import CallResult


async def _call(request: web.Request, kind: Kind | None, call: FunctionCall) -> CallResult:
    slot = slot_of(request)
    gateway = slot.require()
    caller = await verified_caller(request, slot.admin_key, gateway.verify_token)
    return await gateway.call(
        kind, call.path, call.args, identity=caller.identity, admin=caller.admin
    )


def _outcome(result: CallResult, call: FunctionCall) -> web.Response:
    return web.Response(text=outcome_body(result, call.format), content_type="application/json")


def _kind_handler(kind: Kind) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        call = await function_call(await read_json_object(request), request)
        return _outcome(await _call(request, kind, call), call)

    handle.__name__ = f"post_{kind}"
    return handle


post_query = _kind_handler("query")
post_mutation = _kind_handler("mutation")
post_action = _kind_handler("action")


async def get_query(request: web.Request) -> web.Response:
    """``GET /api/query?path=...&args=<JSON>&format=...``."""
    params = request.query
    args = params.get("args")
    body = {
        "path": params.get("path"),
        "args": None if args is None else parse_json(args, "'args'"),
        "format": params.get("format"),
    }
    call = await function_call(JsonBody(body), request)
    return _outcome(await _call(request, "query", call), call)


async def post_run(request: web.Request) -> web.Response:
    """``POST /api/run/messages/list`` runs ``messages:list`` (any kind); format ``json``."""
    body = await read_json_object(request, empty_ok=True)
    module, _, name = request.match_info["path"].strip("/").rpartition("/")
    path = f"{module}:{name}" if module else name
    call = await function_call(body, request, path=path or None, default_format="clean")
    return _outcome(await _call(request, None, call), call)


async def post_function(request: web.Request) -> web.Response:
    """``POST /api/function``: any kind; only the root component exists here."""
    body = await read_json_object(request)
    component = body.fields.get("componentPath")
    if component not in (None, ""):
        raise bad_request(
            "ComponentsNotSupported",
            f"componentPath {str(component)[:64]!r}: this gateway has only the root component",
        )
    call = await function_call(body, request)
    return _outcome(await _call(request, None, call), call)


async def post_query_ts(request: web.Request) -> web.Response:
    """``{"ts": base64 of 8 LE bytes}``: the newest commit timestamp."""
    gateway = slot_of(request).require()
    return web.json_response({"ts": encode_ts(gateway.store.clock.last_ts_ns)})


async def post_query_at_ts(request: web.Request) -> web.Response:
    """A query at ``ts``; only the newest timestamp is kept, so only it is served."""
    body = await read_json_object(request)
    wanted = decode_ts(body.fields.get("ts"))
    call = await function_call(body, request)
    gateway = slot_of(request).require()
    latest = gateway.store.clock.last_ts_ns
    if wanted != latest:
        raise _unservable(wanted, latest)
    result = await _call(request, "query", call)
    if result.ts is not None and result.ts != wanted:
        raise _unservable(wanted, result.ts)
    return _outcome(result, call)


def encode_ts(ts_ns: int) -> str:
    return base64.b64encode(ts_ns.to_bytes(8, "little")).decode("ascii")


def decode_ts(value: object) -> int:
    try:
        if not isinstance(value, str):
            raise ValueError
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 8:
        raise bad_request(
            "InvalidTimestamp",
            f"'ts' must be base64 of 8 little-endian bytes, as /api/query_ts returns; "
            f"got {json.dumps(value)[:64]}",
        )
    return int.from_bytes(raw, "little")


def _unservable(wanted: int, latest: int) -> Exception:
    return bad_request(
        "TimestampUnavailable",
        f"only the newest timestamp ({encode_ts(latest)}) can be queried, not "
        f"{encode_ts(wanted)}; ask /api/query_ts again and query at that",
    )
