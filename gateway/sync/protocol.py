"""The sync protocol's messages (wire spec 2.2-2.7): client frames in, server frames out.

Client frames are parsed into small dataclasses; anything malformed raises
``ProtocolError``, which the socket answers with a ``FatalError`` and a close. Server
frames are built as JSON text directly, so an encoded query result is serialised once
and spliced into every Transition that carries it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from gateway.errors import ConvexValueError
from gateway.offload import decode, decode_yielding
from gateway.values import UNSET, decode_json, dumps, dumps_yielding, to_convex

U32_MAX: Final = 2**32 - 1
MAX_PATH_CHARS: Final = 1024

_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
).encode


class ProtocolError(Exception):
    """A frame the protocol does not allow: FatalError, then the socket closes."""


# --- timestamps and versions -------------------------------------------------------------


def encode_ts(ts: int) -> str:
    """A u64 as the clients carry it: standard base64 of 8 little-endian bytes."""
    return base64.b64encode(ts.to_bytes(8, "little")).decode("ascii")


def decode_ts(value: object, what: str) -> int:
    """The inverse of ``encode_ts``; JS also writes ``-``/``_`` (url-safe), accepted."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == 8:
            return int.from_bytes(raw, "little")
    raise ProtocolError(f"{what} must be base64 of 8 little-endian bytes, got {_show(value)}")


class StateVersion(NamedTuple):
    """``{querySet, identity, ts}``: where a socket's client state stands (spec 2.5).

    A named tuple, not a frozen dataclass: a round makes one per socket, and a tuple is
    built, compared and hashed in C."""

    query_set: int = 0
    identity: int = 0
    ts: int = 0

    def json(self) -> str:
        return (
            f'{{"querySet":{self.query_set},"identity":{self.identity},'
            f'"ts":"{encode_ts(self.ts)}"}}'
        )


# --- client -> server ----------------------------------------------------------------------


@dataclass(frozen=True)
class Connect:
    session_id: str
    connection_count: int
    last_close_reason: str | None
    max_observed_ts: int | None  # parsed and checked, never folded into the clock


@dataclass(frozen=True)
class Add:
    query_id: int
    path: str
    args: dict[str, Any]
    args_json: str  # ``args`` as convex JSON, encoded where the frame was parsed
    journal: str | None


@dataclass(frozen=True)
class Remove:
    query_id: int


@dataclass(frozen=True)
class ModifyQuerySet:
    base_version: int
    new_version: int
    modifications: list[Add | Remove]


@dataclass(frozen=True)
class Call:
    """``Mutation`` or ``Action`` (``kind`` says which)."""

    kind: str
    request_id: int
    path: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Authenticate:
    base_version: int
    token_type: str  # "None" | "Admin" | "User"
    value: str | None
    impersonating: dict[str, Any] | None


@dataclass(frozen=True)
class Event:
    event_type: str


ClientMessage = Connect | ModifyQuerySet | Call | Authenticate | Event


def parse_client_message(text: str, *, big: bool = False) -> ClientMessage:
    """One text frame -> a message; ``ProtocolError`` for anything else. A ``big`` frame
    is parsed on a worker thread, by code that lets the event loop run as it goes
    (``gateway.offload``)."""
    try:
        body = (decode_yielding if big else decode)(text)
    except RecursionError:
        raise ProtocolError("the message is nested too deeply") from None
    except ValueError as exc:
        raise ProtocolError(f"the message is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"a message must be a JSON object, not {_kind(body)}")
    kind = body.get("type")
    if _SURROGATE_ESCAPE.search(text) is not None:
        _require_unicode(body, kind)
    if kind == "Connect":
        return _connect(body)
    if kind == "ModifyQuerySet":
        return _modify_query_set(body, dumps_yielding if big else dumps)
    if kind in ("Mutation", "Action"):
        return Call(kind, _u32(body, "requestId"), _path(body), _args(body, "args"))
    if kind == "Authenticate":
        return _authenticate(body)
    if kind == "Event":
        event_type = body.get("eventType")
        return Event(event_type if isinstance(event_type, str) else "")
    if not isinstance(kind, str):
        raise ProtocolError(f"a message needs a string 'type', got {_show(kind)}")
    raise ProtocolError(f"unknown message type {_show(kind)}")


# A lone surrogate reaches a parsed string only through a ``\\uD800``-``\\uDFFF`` escape
# (aiohttp decodes frames as strict UTF-8). Most frames have none, so the full check
# below runs only when the text holds such an escape (a valid escaped pair too).
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89abcdefABCDEF]")
_encode_check = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


def _require_unicode(body: dict[str, Any], kind: object) -> None:
    """Refuse strings that are not valid Unicode (a lone surrogate), as Convex does:
    they cannot be encoded as UTF-8, so they would fail later in a path lookup, a
    frame or a SQLite write. An ``Authenticate`` value is exempt: a bad token is
    refused with ``AuthError`` like any other wrong token."""
    checked = body if kind != "Authenticate" else {k: v for k, v in body.items() if k != "value"}
    try:
        _encode_check(checked).encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(
            "the message holds a string that is not valid Unicode (a lone UTF-16 surrogate "
            "such as \\ud800); send text as valid UTF-8, or binary data as bytes"
        ) from None


def _connect(body: dict[str, Any]) -> Connect:
    session_id = body.get("sessionId")
    if not isinstance(session_id, str) or not 0 < len(session_id) <= 64:
        raise ProtocolError(f"Connect needs a 'sessionId' string, got {_show(session_id)}")
    reason = body.get("lastCloseReason")
    observed = body.get("maxObservedTimestamp")
    return Connect(
        session_id,
        _u32(body, "connectionCount", default=0),
        reason if isinstance(reason, str) else None,
        None if observed is None else decode_ts(observed, "maxObservedTimestamp"),
    )


def _modify_query_set(body: dict[str, Any], encode: Callable[[Any], str]) -> ModifyQuerySet:
    base, new = _u32(body, "baseVersion"), _u32(body, "newVersion")
    raw = body.get("modifications")
    if not isinstance(raw, list):
        raise ProtocolError(f"ModifyQuerySet needs a 'modifications' array, got {_show(raw)}")
    mods: list[Add | Remove] = []
    for item in raw:
        if not isinstance(item, dict):
            raise ProtocolError(f"a query set modification is an object, got {_show(item)}")
        if item.get("type") == "Add":
            journal = item.get("journal")
            if journal is not None and not isinstance(journal, str):
                raise ProtocolError(f"'journal' must be a string or null, got {_show(journal)}")
            args = _args(item, "args")
            mods.append(Add(_u32(item, "queryId"), _path(item), args, encode(args), journal))
        elif item.get("type") == "Remove":
            mods.append(Remove(_u32(item, "queryId")))
        else:
            raise ProtocolError(
                f"a query set modification is Add or Remove, got {_show(item.get('type'))}"
            )
    return ModifyQuerySet(base, new, mods)


def _authenticate(body: dict[str, Any]) -> Authenticate:
    token_type = body.get("tokenType")
    if token_type not in ("None", "Admin", "User"):
        raise ProtocolError(
            f"Authenticate 'tokenType' is None, Admin or User, got {_show(token_type)}"
        )
    value = body.get("value")
    if token_type != "None" and not isinstance(value, str):
        raise ProtocolError(f"Authenticate with tokenType {token_type} needs a string 'value'")
    acting = body.get("impersonating", body.get("acting_as"))
    if acting is not None and not isinstance(acting, dict):
        raise ProtocolError(f"'impersonating' must be an object, got {_show(acting)}")
    return Authenticate(
        _u32(body, "baseVersion"),
        token_type,
        value if isinstance(value, str) else None,
        acting,
    )


def _u32(body: dict[str, Any], key: str, *, default: int | None = None) -> int:
    value = body.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U32_MAX:
        raise ProtocolError(f"{key!r} must be an integer from 0 to 2^32-1, got {_show(value)}")
    return value


def _path(body: dict[str, Any]) -> str:
    path = body.get("udfPath")
    if not isinstance(path, str) or not path.strip() or len(path) > MAX_PATH_CHARS:
        raise ProtocolError(f"'udfPath' must be a function path string, got {_show(path)}")
    return path


def _args(body: dict[str, Any], key: str) -> dict[str, Any]:
    """``args``: an array holding one object (both clients), or an object, or missing."""
    raw = body.get(key)
    if raw is None:
        return {}
    if isinstance(raw, list):
        if len(raw) != 1:
            raise ProtocolError(f"{key!r} must hold exactly one object, not {len(raw)} elements")
        raw = raw[0]
    if not isinstance(raw, dict):
        raise ProtocolError(f"{key!r} must be an object, got {_show(raw)}")
    try:
        args = to_convex(decode_json(raw), what="arguments")
    except ConvexValueError as exc:
        raise ProtocolError(f"bad arguments: {exc}") from None
    if not isinstance(args, dict):  # an encoded value such as {"$integer": ...}
        raise ProtocolError(f"{key!r} must be an object, got {_show(raw)}")
    return args


def _kind(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _show(value: object) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


# --- server -> client ----------------------------------------------------------------------

PING: Final = '{"type":"Ping"}'


def value_json(value: Any) -> str:
    """A Convex value as convex-encoded JSON text (floats keep their decimal point)."""
    return dumps(value)


def error_data_json(data: Any) -> str | None:
    """A ConvexError's data as JSON text; None when there is none or it is no value."""
    if data is UNSET:
        return None
    try:
        return dumps(to_convex(data, what="ConvexError data"))
    except ConvexValueError:
        return None


# A query's modification is split in two: the part that names the query (per socket)
# and the rest (the same for every socket running the same query on one snapshot), so
# a shared execution's result is encoded once and spliced into each socket's frame.


QueryBody = tuple[str, str]  # (frame type, the fields after queryId)


def query_updated_body(value: str, log_lines: list[str], journal: str | None = None) -> QueryBody:
    """A ``QueryUpdated`` without its ``queryId`` (see ``with_query_id``)."""
    return (
        "QueryUpdated",
        f'"value":{value},"logLines":{_encode(log_lines)},"journal":{_encode(journal)}}}',
    )


def query_failed_body(
    message: str, error_data: str | None, log_lines: list[str], journal: str | None = None
) -> QueryBody:
    """A ``QueryFailed`` without its ``queryId`` (see ``with_query_id``)."""
    data = "" if error_data is None else f',"errorData":{error_data}'
    return (
        "QueryFailed",
        f'"errorMessage":{_encode(message)},"logLines":{_encode(log_lines)},'
        f'"journal":{_encode(journal)}{data}}}',
    )


QUERY_REMOVED_BODY: Final[QueryBody] = ("QueryRemoved", "")


def with_query_id(query_id: int, body: QueryBody) -> str:
    """The whole modification frame of ``body`` for query ``query_id``."""
    if not body[1]:
        return f'{{"type":"{body[0]}","queryId":{query_id}}}'
    return f'{{"type":"{body[0]}","queryId":{query_id},{body[1]}'


def transition(start: StateVersion, end: StateVersion, modifications: list[str]) -> str:
    return (
        f'{{"type":"Transition","startVersion":{start.json()},"endVersion":{end.json()},'
        f'"modifications":[{",".join(modifications)}]}}'
    )


def mutation_success(request_id: int, value: str, ts: int, log_lines: list[str]) -> str:
    return (
        f'{{"type":"MutationResponse","requestId":{request_id},"success":true,'
        f'"result":{value},"ts":"{encode_ts(ts)}","logLines":{_encode(log_lines)}}}'
    )


def action_success(request_id: int, value: str, log_lines: list[str]) -> str:
    return (
        f'{{"type":"ActionResponse","requestId":{request_id},"success":true,'
        f'"result":{value},"logLines":{_encode(log_lines)}}}'
    )


def call_failure(
    kind: str, request_id: int, message: str, error_data: str | None, log_lines: list[str]
) -> str:
    """A failed ``MutationResponse`` (``ts: null``) or ``ActionResponse``."""
    response = "MutationResponse" if kind == "Mutation" else "ActionResponse"
    ts = ',"ts":null' if kind == "Mutation" else ""
    data = "" if error_data is None else f',"errorData":{error_data}'
    return (
        f'{{"type":"{response}","requestId":{request_id},"success":false,'
        f'"result":{_encode(message)}{ts},"logLines":{_encode(log_lines)}{data}}}'
    )


# The last frames of a socket may quote what a client sent: ASCII escapes keep them
# encodable whatever that was.
_encode_ascii = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def fatal_error(message: str) -> str:
    return _encode_ascii({"type": "FatalError", "error": message})


def auth_error(message: str, base_version: int, *, attempted: bool = True) -> str:
    """``attempted``: the answer to an Authenticate (true), or a token found expired
    later (false; the JS client then fetches a fresh one)."""
    return _encode_ascii(
        {
            "type": "AuthError",
            "error": message,
            "baseVersion": base_version,
            "authUpdateAttempted": attempted,
        }
    )
