"""The app author's MQTT routes: ``mqtt = mqtt_router()`` in ``convex/mqtt.py``.

``mqtt.ingest(pattern, mutation, payload=...)`` routes a topic into a mutation;
``mqtt.publish(pattern, query=..., args=..., each=..., payload=...)`` routes a live
query's result out to topics. Every declaration is checked when it is made, and a
refusal is an ``MqttRouteError`` (an ``AppLoadError``) whose message starts with the
``file:line`` of the call, as the loader words every app error. ``check_routes`` then
checks the routes against the loaded app's functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from gateway.errors import MqttRouteError, PayloadError
from gateway.mqtt import topics
from gateway.mqtt.codecs import INGEST_CODECS, PUBLISH_CODECS
from gateway.mqtt.topics import Segment
from gateway.runtime.declared import declared_args, declared_at
from gateway.runtime.loader import canonical_path


@dataclass(frozen=True)
class IngestRoute:
    """Messages on topics matching ``pattern`` run the mutation at ``function``."""

    pattern: str
    segments: tuple[Segment, ...]
    function: str
    payload: str
    where: str  # file:line of the declaration

    def args_for(self, bound: dict[str, str], payload_args: dict[str, Any]) -> dict[str, Any]:
        """The mutation's args: the payload's fields plus the topic's named segments.

        The topic wins because the ACL vouches for it; a payload field that names a
        segment with another value is refused (a device claiming to be another).
        """
        for name, value in bound.items():
            if name in payload_args and payload_args[name] != value:
                raise PayloadError(
                    f"the payload's field {name!r} says {str(payload_args[name])[:40]!r} "
                    f"but the topic says {value[:40]!r}"
                )
        return {**payload_args, **bound}


@dataclass(frozen=True)
class PublishRoute:
    """The live result of ``query(args)`` goes to ``pattern`` (per element if ``each``)."""

    pattern: str
    segments: tuple[Segment, ...]
    query: str
    args: dict[str, Any]
    each: bool
    payload: str
    where: str

    def topic_for(self, element: object) -> str:
        """The topic of one element of the query's list (``each=True``).

        ``ValueError`` when the element cannot name a topic: not an object, a field
        missing, not a string, or not one safe topic segment (empty, '/', wildcards, NUL).
        """
        if not isinstance(element, dict):
            raise ValueError(f"{self.query} returned a {type(element).__name__}, not an object")
        parts = []
        for seg in self.segments:
            if isinstance(seg, str):
                parts.append(seg)
                continue
            value = element.get(seg.name)
            if not isinstance(value, str) or not value or any(c in value for c in "/+#\0"):
                raise ValueError(
                    f"{self.query}: field {seg.name!r} = {str(value)[:40]!r} cannot fill "
                    f"a segment of {self.pattern!r} (a non-empty string without / + # NUL)"
                )
            parts.append(value)
        return "/".join(parts)


@dataclass
class MqttRouter:
    """The routes an app declares; ``match`` finds the ingest route of a topic."""

    ingest_routes: list[IngestRoute] = field(default_factory=list)
    publish_routes: list[PublishRoute] = field(default_factory=list)
    # (segment count, first segment) -> routes; first segment None for a placeholder.
    # Overlaps are refused, so at most one candidate matches any topic.
    _index: dict[tuple[int, str | None], list[IngestRoute]] = field(default_factory=dict)

    def ingest(self, pattern: str, mutation: str, *, payload: str = "auto") -> IngestRoute:
        """Route messages on ``pattern`` (which names ``{device}``) into ``mutation``."""
        where = declared_at(__file__)
        segments = _pattern(pattern, where)
        if "device" not in topics.placeholders(segments):
            _refuse(
                where,
                f"ingest topic {pattern!r} has no {{device}} segment; "
                "the device's identity comes from its topic",
            )
        _codec(payload, INGEST_CODECS, where)
        route = IngestRoute(
            pattern, segments, _function_path(mutation, "mutation", where), payload, where
        )
        self._refuse_overlap("ingest", pattern, segments, where)
        self.ingest_routes.append(route)
        self._index.setdefault(_key(segments), []).append(route)
        return route

    def publish(
        self,
        pattern: str,
        *,
        query: str,
        args: dict[str, Any] | None = None,
        each: bool = False,
        payload: str = "json",
    ) -> PublishRoute:
        """Publish ``query``'s live result on ``pattern``, or each element's on its own."""
        where = declared_at(__file__)
        segments = _pattern(pattern, where)
        names = topics.placeholders(segments)
        if not isinstance(each, bool):
            _refuse(where, f"each= is True or False, not {each!r}")
        if not each and names:
            _refuse(
                where,
                f"publish topic {pattern!r} has placeholders but each=False; "
                "each=True fills them from every element of the query's list",
            )
        if each and not names:
            _refuse(
                where,
                f"publish topic {pattern!r} has no placeholders, so each=True "
                "would send every element to one topic; use each=False",
            )
        _codec(payload, PUBLISH_CODECS, where)
        route = PublishRoute(
            pattern,
            segments,
            _function_path(query, "query", where),
            _args(args, where),
            each,
            payload,
            where,
        )
        self._refuse_overlap("publish", pattern, segments, where)
        self.publish_routes.append(route)
        return route

    def _refuse_overlap(
        self, kind: str, pattern: str, segments: tuple[Segment, ...], where: str
    ) -> None:
        # Any two routes sharing a topic are refused: two ingest routes would race for a
        # message, two publish routes overwrite each other's retained value, and an
        # ingest topic the gateway also publishes on would feed its own output back in.
        others: list[IngestRoute | PublishRoute] = [*self.ingest_routes, *self.publish_routes]
        for other in others:
            if topics.overlap(segments, other.segments):
                other_kind = "ingest" if isinstance(other, IngestRoute) else "publish"
                _refuse(
                    where,
                    f"{kind} topic {pattern!r} overlaps the {other_kind} topic "
                    f"{other.pattern!r} declared at {other.where}; a topic belongs to one route",
                )

    def match(self, topic: str) -> tuple[IngestRoute, dict[str, str]] | None:
        """The ingest route of ``topic`` and its named segments, or None."""
        parts = topic.split("/")
        n = len(parts)
        for key in ((n, parts[0]), (n, None)):
            for route in self._index.get(key, ()):
                bound = topics.bind(route.segments, parts)
                if bound is not None:
                    return route, bound
        return None

    def match_linear(self, topic: str) -> tuple[IngestRoute, dict[str, str]] | None:
        """``match`` by a plain scan: the reference its parity test compares against."""
        parts = topic.split("/")
        for route in self.ingest_routes:
            bound = topics.bind(route.segments, parts)
            if bound is not None:
                return route, bound
        return None


def mqtt_router() -> MqttRouter:
    """A new, empty router; ``convex/mqtt.py`` binds it to the name ``mqtt``."""
    return MqttRouter()


def check_routes(router: object, app: Any) -> None:
    """Refuse routes naming a missing function or one of the wrong kind.

    ``router`` is ``app.mqtt`` (None when the app has no routes) and ``app`` the
    loaded ``App`` (anything with ``lookup(path)`` and ``directory``); run after load.
    """
    if router is None:
        return
    if not isinstance(router, MqttRouter):
        where = f"{app.directory}/convex/mqtt.py"
        _refuse(where, f"mqtt is a {type(router).__name__}; write mqtt = mqtt_router()")
    for ingest in router.ingest_routes:
        _check_function(app, ingest.function, "mutation", ingest.where)
    for pub in router.publish_routes:
        _check_function(app, pub.query, "query", pub.where)


def _check_function(app: Any, path: str, kind: str, where: str) -> None:
    fn = app.lookup(path)
    if fn is None:
        _refuse(where, f"no {kind} {path!r} in the app (is it defined under convex/?)")
    if fn.kind != kind:
        _refuse(where, f"{path!r} is a {fn.kind}, but this route needs a {kind}")


def _key(segments: tuple[Segment, ...]) -> tuple[int, str | None]:
    first = segments[0]
    return len(segments), first if isinstance(first, str) else None


def _refuse(where: str, message: str) -> NoReturn:
    raise MqttRouteError(f"{where}: {message}")


def _pattern(pattern: str, where: str) -> tuple[Segment, ...]:
    try:
        return topics.parse_pattern(pattern)
    except ValueError as exc:
        _refuse(where, str(exc))


def _codec(codec: object, allowed: tuple[str, ...], where: str) -> None:
    if codec not in allowed:
        _refuse(where, f"payload={codec!r} is not a codec here; use one of {', '.join(allowed)}")


def _function_path(path: object, kind: Literal["mutation", "query"], where: str) -> str:
    # The same 'module:function' form the clients use; checked against the app later.
    if not isinstance(path, str) or path.count(":") != 1 or "" in path.split(":"):
        _refuse(
            where, f"the {kind} is named 'module:function' (e.g. 'readings:ingest'), not {path!r}"
        )
    return canonical_path(str(path))


def _args(args: object, where: str) -> dict[str, Any]:
    return declared_args(args, what="args", where=where, error=MqttRouteError)
