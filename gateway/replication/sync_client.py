"""The Convex sync protocol from the client's side: just what the downlink needs.

One WebSocket to ``{upstream_url}/api/sync`` (an Outpost hub and a Convex deployment
both serve it): ``Connect``, a query set changed with ``ModifyQuerySet``, and the
``Transition`` frames that carry new results (wire spec 2.2-2.7). Versions are not
checked: the downlink keeps no local copy of results to patch, it acts on each new
result as it comes. ``Ping`` frames are ignored; a dead link is found by the
WebSocket's own ping/pong (``heartbeat_s``), since a black-holing link never closes.

Every failure to talk (refused, reset, timed out, closed, a ``FatalError``) is
``UpstreamUnavailable``: the caller backs off and connects again.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.replication.client import UpstreamUnavailable

# The most of a frame quoted in an error.
_QUOTE_CHARS = 200


@dataclass(frozen=True)
class QueryResult:
    """One query's new result: its value, or its error message and ``ConvexError`` data."""

    query_id: int
    ok: bool
    value: Any = None
    error: str = ""
    error_data: Any = None


class SyncLink:
    """A connected sync socket: send query-set changes, receive results."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._query_set = 0

    async def connect(self, connection_count: int) -> None:
        """Open the session (a fresh one each time: nothing is resumed server-side)."""
        await self._send(
            {
                "type": "Connect",
                "sessionId": str(uuid.uuid4()),
                "connectionCount": connection_count,
                "lastCloseReason": "InitialConnect" if connection_count == 0 else "Reconnect",
            }
        )

    async def modify(self, adds: list[tuple[int, str, dict[str, Any]]], removes: list[int]) -> None:
        """Add ``(query id, path, args)`` queries and remove ``removes``, in one change."""
        mods: list[dict[str, Any]] = [
            {"type": "Add", "queryId": qid, "udfPath": path, "args": [args]}
            for qid, path, args in adds
        ]
        mods += [{"type": "Remove", "queryId": qid} for qid in removes]
        base, self._query_set = self._query_set, self._query_set + 1
        await self._send(
            {
                "type": "ModifyQuerySet",
                "baseVersion": base,
                "newVersion": self._query_set,
                "modifications": mods,
            }
        )

    async def results(self) -> list[QueryResult]:
        """The results of the next Transition (Pings and other frames skipped)."""
        while True:
            frame = await self._receive()
            kind = frame.get("type")
            if kind == "Transition":
                return [_result(mod) for mod in frame.get("modifications", [])]
            if kind == "FatalError":
                raise UpstreamUnavailable(
                    f"the upstream ended the sync session: {frame.get('error')}"
                )

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            await self._ws.send_str(json.dumps(message))
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise UpstreamUnavailable(f"the sync socket failed: {exc}") from exc

    async def _receive(self) -> dict[str, Any]:
        msg = await self._ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            why = self._ws.exception() or msg.extra or msg.type.name
            raise UpstreamUnavailable(f"the sync socket closed ({why})")
        try:
            frame = json.loads(msg.data)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            raise UpstreamUnavailable(
                f"the upstream sent a frame that is not JSON: {msg.data[:_QUOTE_CHARS]!r}"
            )
        return frame


def _result(mod: dict[str, Any]) -> QueryResult:
    qid = int(mod.get("queryId", -1))
    if mod.get("type") == "QueryUpdated":
        return QueryResult(qid, True, value=mod.get("value"))
    if mod.get("type") == "QueryFailed":
        return QueryResult(
            qid, False, error=str(mod.get("errorMessage")), error_data=mod.get("errorData")
        )
    return QueryResult(qid, False, error="removed")  # QueryRemoved: the server dropped it
