"""Publish rules: live query results out to retained MQTT topics (issue 9, section 4).

Every ``mqtt.publish(...)`` route is one subscription of an in-process sync session: the
same subscription engine, read sets and invalidation as a WebSocket client's, so a
publish topic changes exactly when a browser's screen would. Each Transition's new
result is turned into (topic, payload) pairs, and only pairs that changed are published,
retained, QoS 1. With ``each=True``, an element that disappeared from the result has its
topic cleared (an empty retained message, MQTT's way to delete a retained value).

After a restart the retained values on the broker are from the last run: the topics
published are kept in ``<data dir>/mqtt-published.json`` (rewritten only when the set of
topics changes, not at every value), and once every route has its first result, each
topic of that list no route produces any more is cleared.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import cbor2

from gateway.mqtt.routes import MqttRouter, PublishRoute
from gateway.private_files import write_private_file
from gateway.sync import protocol as p
from gateway.sync.engine import SubscriptionEngine
from gateway.sync.session import SyncSession
from gateway.values import Int64, decode_json, dumps

log = logging.getLogger("gateway.mqtt")

PUBLISHED_FILE: Final = "mqtt-published.json"
PublishFn = Callable[[str, bytes], None]  # (topic, payload): retained, QoS 1


class _Capture:
    """The session's transport: Transitions are handed to the publisher, not a socket."""

    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self._deliver = deliver

    async def send(self, frame: bytes) -> None:
        self._deliver(frame)

    def ready(self, size: int) -> bool:
        return True

    async def close(self, code: int, reason: str) -> None:
        return None


class Publisher:
    """The publish routes of one app version, kept live through one sync session."""

    def __init__(self, engine: SubscriptionEngine, publish: PublishFn, data_dir: Path) -> None:
        self._engine = engine
        self._publish = publish
        self._file = data_dir / PUBLISHED_FILE
        self._routes: list[PublishRoute] = []
        self._session: SyncSession | None = None
        self._sent: dict[str, bytes] = {}  # topic -> its retained payload (to resend)
        self._by_route: dict[int, set[str]] = {}  # query id -> topics it holds now
        self._previous = _read_topics(self._file)  # to reconcile after a restart
        self._reconciled = not self._previous
        # Route index -> (wall ms, topic, payload) of its latest publish (the dashboard).
        self._last: dict[int, tuple[float, str, bytes]] = {}

    async def start(self, router: MqttRouter) -> None:
        """Subscribe to every publish route's query (as admin: routes may name internal
        queries); results arrive through ``_on_frame``."""
        self._routes = list(router.publish_routes)
        if not self._routes:
            self._clear_leftovers()
            return
        key = secrets.token_urlsafe(24)  # this session's own admin key, never stored
        session = self._engine.open_session(_Capture(self._on_frame), admin_key=key)
        self._session = session
        await session.handle(p.Connect(f"mqtt-{uuid.uuid4()}", 0, None, None))
        await session.handle(p.Authenticate(0, "Admin", key, None))
        adds: list[p.Add | p.Remove] = [
            p.Add(i, route.query, route.args, dumps(route.args), None)
            for i, route in enumerate(self._routes)
        ]
        await session.handle(p.ModifyQuerySet(0, 1, adds))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close(1000, "")
            self._session = None

    async def replace(self, router: MqttRouter) -> None:
        """The app was reloaded: follow its publish routes. Topics no route produces
        any more are cleared once the new routes have their first results."""
        await self.close()
        self._previous = set(self._sent) | self._previous
        self._reconciled = not self._previous
        self._by_route = {}
        self._last = {}
        await self.start(router)

    # --- results -----------------------------------------------------------------------

    def _on_frame(self, frame: bytes) -> None:
        message = json.loads(frame)
        if message.get("type") != "Transition":
            return
        for mod in message.get("modifications", ()):
            query_id = mod.get("queryId")
            if not isinstance(query_id, int) or not 0 <= query_id < len(self._routes):
                continue
            route = self._routes[query_id]
            if mod.get("type") == "QueryUpdated":
                self._publish_result(query_id, route, decode_json(mod["value"]))
            elif mod.get("type") == "QueryFailed":
                log.warning(
                    "publish route %s: query %s failed: %s",
                    route.pattern,
                    route.query,
                    mod.get("errorMessage"),
                )
        self._maybe_reconcile()

    def _publish_result(self, query_id: int, route: PublishRoute, value: Any) -> None:
        wanted = self._pairs(route, value)
        if wanted is None:
            return
        before = self._by_route.get(query_id, set())
        for topic, payload in wanted.items():
            if self._sent.get(topic) != payload:
                self._publish(topic, payload)
                self._sent[topic] = payload
                self._last[query_id] = (time.time() * 1000, topic, payload)
        for topic in before - wanted.keys():
            self._clear(topic)
        self._by_route[query_id] = set(wanted)
        if before != wanted.keys():
            self._save_topics()

    def _pairs(self, route: PublishRoute, value: Any) -> dict[str, bytes] | None:
        """topic -> payload of one result; None (logged) when it cannot be published."""
        if not route.each:
            payload = _encode(route, value)
            return None if payload is None else {route.pattern: payload}
        if not isinstance(value, list):
            log.warning(
                "publish route %s: %s returned a %s; each=True needs a list of objects",
                route.pattern,
                route.query,
                type(value).__name__,
            )
            return None
        pairs: dict[str, bytes] = {}
        for element in value:
            try:
                topic = route.topic_for(element)
            except ValueError as exc:
                log.warning("publish route %s: element skipped: %s", route.pattern, exc)
                continue
            if topic in pairs:
                log.warning(
                    "publish route %s: two elements fill %s; the last wins", route.pattern, topic
                )
            payload = _encode(route, element)
            if payload is not None:
                pairs[topic] = payload
        return pairs

    def republish(self) -> None:
        """Send every current value again (the bridge reconnected: a broker that was
        killed may have lost retained values saved after its last autosave)."""
        for topic, payload in self._sent.items():
            self._publish(topic, payload)

    def _clear(self, topic: str) -> None:
        self._publish(topic, b"")
        self._sent.pop(topic, None)

    # --- the list of topics published -------------------------------------------------

    def _maybe_reconcile(self) -> None:
        if self._reconciled or len(self._by_route) < len(self._routes):
            return
        self._reconciled = True
        self._clear_leftovers()

    def _clear_leftovers(self) -> None:
        live: set[str] = set().union(*self._by_route.values())
        stale = self._previous - live
        for topic in sorted(stale):
            self._clear(topic)
        self._previous = set()
        if stale:
            log.info("cleared %d retained topics no publish route produces any more", len(stale))
            self._save_topics()

    def _save_topics(self) -> None:
        topics = sorted(self._previous.union(*self._by_route.values()))
        try:
            write_private_file(self._file, json.dumps(topics) + "\n")
        except OSError as exc:
            log.warning("cannot save the list of published topics to %s: %s", self._file, exc)

    def rules(self) -> list[dict[str, Any]]:
        """Each publish route, the topics it holds now and what it sent last."""
        rows = []
        for i, route in enumerate(self._routes):
            when, topic, payload = self._last.get(i, (None, None, None))
            rows.append(
                {
                    "pattern": route.pattern,
                    "query": route.query,
                    "args": route.args,
                    "each": route.each,
                    "payload": route.payload,
                    "topics": float(len(self._by_route.get(i, ()))),
                    "lastSentMs": when,
                    "lastTopic": topic,
                    "lastPayload": None if payload is None else _as_text(payload),
                }
            )
        return rows

    @property
    def topics(self) -> set[str]:
        """The topics holding a retained value of ours now."""
        return set(self._sent)


def _encode(route: PublishRoute, value: Any) -> bytes | None:
    """A result as the route's payload; None (logged) if it cannot be one."""
    try:
        if route.payload == "raw":
            if not isinstance(value, bytes):
                raise ValueError(
                    f"payload='raw' needs bytes, and {route.query} returned {type(value).__name__}"
                )
            return value
        if route.payload == "cbor":
            return cbor2.dumps(_plain(value, text_bytes=False))
        plain = _plain(value, text_bytes=True)
        return json.dumps(plain, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, TypeError) as exc:
        log.warning("publish route %s: not published: %s", route.pattern, exc)
        return None


def _plain(value: Any, *, text_bytes: bool) -> Any:
    """A Convex value as plain data for a device: an Int64 is an integer; bytes are
    base64 text in JSON (``text_bytes``) and stay bytes in CBOR; NaN and infinities,
    which JSON cannot hold and a device would choke on, are refused."""
    if isinstance(value, Int64):
        return int(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} has no JSON or device form")
    if isinstance(value, bytes) and text_bytes:
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _plain(v, text_bytes=text_bytes) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, text_bytes=text_bytes) for v in value]
    return value


def _as_text(payload: bytes, limit: int = 1024) -> str | None:
    """The payload as UTF-8 text (its first ``limit`` characters); None for binary (CBOR)."""
    try:
        return payload.decode("utf-8")[:limit]
    except UnicodeDecodeError:
        return None


def _read_topics(path: Path) -> set[str]:
    try:
        topics = json.loads(path.read_text())
    except FileNotFoundError:
        return set()
    except (OSError, ValueError) as exc:
        log.warning(
            "cannot read %s (%s); retained topics of the last run are not reconciled", path, exc
        )
        return set()
    return {t for t in topics if isinstance(t, str)} if isinstance(topics, list) else set()
