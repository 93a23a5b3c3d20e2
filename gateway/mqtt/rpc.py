"""Device RPC: a device calls a public query or mutation over MQTT 5 request/response.

A device publishes the arguments (a JSON or CBOR object, as ``auto`` ingest decodes
them) to ``outpost/call/{device}/{path}``, e.g. ``outpost/call/dev-a/devices:config``,
with an MQTT 5 Response Topic inside its own reply tree (``outpost/reply/{device}/...``,
the only place the ACL lets it read answers) and any Correlation Data. The gateway runs
the function as that device (``ctx.auth`` subject = the device ID; the ACL vouches for
the topic) and publishes the answer there, with the same Correlation Data, in the HTTP
API's shape: ``{"status": "success", "value": ...}`` or ``{"status": "error",
"errorMessage": ..., "errorData": ...}`` (values in Convex's JSON encoding).

An MQTT 3.1.1 device cannot set a Response Topic: its answer goes to
``outpost/reply/{device}/{path}``. A call is run at least once (a redelivered call runs
again): make a mutation called this way idempotent, or ingest through a route with
``seq``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from gateway.errors import PayloadError
from gateway.mqtt.codecs import decode_payload
from gateway.runtime.runtime import CallResult, Runtime
from gateway.values import UNSET, encode_json

CALL_PREFIX: Final = "outpost/call/"
REPLY_PREFIX: Final = "outpost/reply/"
CALL_FILTER: Final = "outpost/call/+/#"


@dataclass(frozen=True, slots=True)
class Call:
    device: str
    path: str
    response_topic: str
    correlation: bytes | None
    args: dict[str, Any] | None  # None: the payload could not be decoded (``problem``)
    problem: str = ""


def is_call(topic: str) -> bool:
    return topic.startswith(CALL_PREFIX)


def parse_call(
    topic: str, payload: bytes, response_topic: str | None, correlation: bytes | None
) -> Call | None:
    """The call on ``topic``; None when there is nowhere to answer (logged by the caller)."""
    parts = topic[len(CALL_PREFIX) :].split("/", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    device, path = parts
    own_tree = f"{REPLY_PREFIX}{device}/"
    if response_topic is None:
        response_topic = own_tree + path
    if not response_topic.startswith(own_tree) or any(c in response_topic for c in "+#"):
        return None
    try:
        args = decode_payload("auto", payload).args if payload else {}
    except PayloadError as exc:
        return Call(device, path, response_topic, correlation, None, str(exc))
    return Call(device, path, response_topic, correlation, args)


async def run_call(runtime: Runtime, call: Call, identity: dict[str, str]) -> bytes:
    """Run ``call`` as the device; the answer's payload."""
    if call.args is None:
        return _error(f"the arguments could not be read: {call.problem}")
    try:
        fn = runtime.lookup(call.path, None, internal_ok=False)
    except Exception as exc:  # noqa: BLE001 - the device gets the message
        return _error(str(exc))
    if fn.kind == "action":
        return _error(f"{fn.path} is an action; over MQTT a device calls queries and mutations")
    return answer(await runtime.run(fn.kind, fn, call.args, identity=identity))


def answer(result: CallResult) -> bytes:
    lines = result.log_lines
    if result.ok:
        body: dict[str, Any] = {
            "status": "success",
            "value": encode_json(result.value),
            "logLines": lines,
        }
    else:
        body = {"status": "error", "errorMessage": result.error_message, "logLines": lines}
        if result.error_data is not UNSET:
            body["errorData"] = encode_json(result.error_data)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _error(message: str) -> bytes:
    return answer(CallResult(error=ValueError(message), error_message=message))
