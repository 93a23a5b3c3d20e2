"""The sync tests' kit: the notes app, a raw protocol client, a served gateway.

Named apart from ``conftest`` so every test imports one module of its own
(``from sync.sync_kit import ...``), never a second copy of a conftest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from gateway import Gateway, Settings
from gateway.http import HttpServer, load_or_create_admin_key

SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "notes": define_table({"topic": v.string(), "body": v.string()}).index("by_topic", ["topic"]),
    })
"""

NOTES = """
    from gateway import ConvexError, action, internal_query, mutation, query, v

    @mutation(args={"topic": v.string(), "body": v.string()})
    async def add(ctx, args):
        print("adding", args["body"])
        return await ctx.db.insert("notes", args)

    @query(args={"topic": v.string()})
    async def bodies(ctx, args):
        rows = await (ctx.db.query("notes")
                      .with_index("by_topic", lambda q: q.eq("topic", args["topic"])).collect())
        return [r["body"] for r in rows]

    @query(args={"topic": v.string()})
    async def count(ctx, args):
        rows = await (ctx.db.query("notes")
                      .with_index("by_topic", lambda q: q.eq("topic", args["topic"])).collect())
        return float(len(rows))

    @query
    async def whoami(ctx, args):
        identity = await ctx.auth.get_user_identity()
        return None if identity is None else identity.get("subject")

    @query(args={"topic": v.string()})
    async def strict(ctx, args):
        rows = await (ctx.db.query("notes")
                      .with_index("by_topic", lambda q: q.eq("topic", args["topic"])).collect())
        if not rows:
            raise ConvexError({"code": "EMPTY"})
        return rows[0]["body"]

    @mutation
    async def refuse(ctx, args):
        raise ConvexError({"code": "NOPE"})

    @action(args={"text": v.string()})
    async def shout(ctx, args):
        return args["text"].upper()

    @internal_query
    async def secret(ctx, args):
        return "s3cret"
"""

RECEIVE_TIMEOUT_S = 10.0


@dataclass
class SyncApi:
    gateway: Gateway
    server: HttpServer
    session: aiohttp.ClientSession
    admin_key: str
    port: int

    async def open(self, path: str = "/api/1.48.0/sync", *, connect: bool = True) -> SyncClient:
        # An absolute, already-encoded URL: ``//api/...`` must reach the server as sent.
        url = URL(f"http://127.0.0.1:{self.port}{path}", encoded=True)
        ws = await self.session.ws_connect(url)
        client = SyncClient(ws)
        if connect:
            await client.send(
                {
                    "type": "Connect",
                    "sessionId": str(uuid.uuid4()),
                    "connectionCount": 0,
                    "lastCloseReason": "InitialConnect",
                    "clientTs": 0,
                }
            )
        return client


class SyncClient:
    """A raw protocol client: JSON frames in and out, versions tracked for the test."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.query_set = 0
        self.request_id = 0
        self.version: dict[str, Any] = {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}
        self.results: dict[int, Any] = {}  # queryId -> ("ok", value) | ("error", message, data)

    def apply(self, transition: dict[str, Any]) -> None:
        """Apply a Transition as the official clients do (start version must match)."""
        assert transition["type"] == "Transition", transition
        assert transition["startVersion"] == self.version, (transition, self.version)
        ids = [m["queryId"] for m in transition["modifications"]]
        assert ids == sorted(ids), ids
        for mod in transition["modifications"]:
            if mod["type"] == "QueryUpdated":
                self.results[mod["queryId"]] = ("ok", mod["value"])
            elif mod["type"] == "QueryFailed":
                self.results[mod["queryId"]] = ("error", mod["errorMessage"], mod.get("errorData"))
            else:
                assert mod["type"] == "QueryRemoved", mod
                self.results.pop(mod["queryId"], None)
        self.version = transition["endVersion"]

    async def transition(self, wait_s: float = RECEIVE_TIMEOUT_S) -> dict[str, Any]:
        """The next Transition, applied."""
        message = await self.recv_type("Transition", wait_s)
        self.apply(message)
        return message

    async def response(self, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A call's response and the first Transition after it (both applied/checked).

        Transitions that arrive before the response are applied too.
        """
        while True:
            message = await self.recv()
            if message["type"] == "Transition":
                self.apply(message)
            elif message["type"] == kind:
                return message, await self.transition()
            else:
                assert message["type"] == "Ping", message

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def recv(self, wait_s: float = RECEIVE_TIMEOUT_S) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=wait_s)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        return json.loads(msg.data)  # type: ignore[no-any-return]

    async def recv_type(self, kind: str, wait_s: float = RECEIVE_TIMEOUT_S) -> dict[str, Any]:
        """The next message of ``kind``, skipping Pings."""
        while True:
            message = await self.recv(wait_s)
            if message["type"] != "Ping":
                assert message["type"] == kind, message
                return message

    async def closed(self, wait_s: float = RECEIVE_TIMEOUT_S) -> aiohttp.WSMessage:
        msg = await self.ws.receive(timeout=wait_s)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        return msg

    async def modify(self, *mods: dict[str, Any]) -> None:
        await self.send(
            {
                "type": "ModifyQuerySet",
                "baseVersion": self.query_set,
                "newVersion": self.query_set + 1,
                "modifications": list(mods),
            }
        )
        self.query_set += 1

    async def call(self, kind: str, path: str, args: dict[str, Any]) -> int:
        request_id = self.request_id
        self.request_id += 1
        await self.send({"type": kind, "requestId": request_id, "udfPath": path, "args": [args]})
        return request_id

    async def close(self) -> None:
        await self.ws.close()


def add(query_id: int, path: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "Add", "queryId": query_id, "udfPath": path, "args": [args or {}]}


@asynccontextmanager
async def serving(
    app: Path, data: Path, settings: Settings | None = None
) -> AsyncIterator[SyncApi]:
    """A gateway on ``app`` (with ``settings``) served on an ephemeral port, with an HTTP
    session to it."""
    async with Gateway.open(app, data, settings) as gw, HttpServer(gw) as http:
        port = await http.start("127.0.0.1", 0)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            yield SyncApi(gw, http, session, load_or_create_admin_key(data), port)
