"""MQTT routes: declarations, refusals naming file:line, the app check, matching."""

from __future__ import annotations

import runpy
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import mqtt_router
from gateway.errors import AppLoadError, MqttRouteError, PayloadError
from gateway.mqtt.routes import MqttRouter, check_routes
from gateway.mqtt.topics import MAX_TOPIC_BYTES
from gateway.runtime.loader import load_app

FUNCTIONS = """
from gateway import internal_mutation, mutation, query

@mutation
async def ingest(ctx, args):
    return None

@internal_mutation
async def store(ctx, args):
    return None

@query
async def configs(ctx, args):
    return []
"""


def _write_app(root: Path, mqtt_body: str) -> Path:
    convex = root / "convex"
    convex.mkdir(parents=True)
    (convex / "readings.py").write_text(FUNCTIONS)
    (convex / "mqtt.py").write_text(
        "from gateway import mqtt_router\n\nmqtt = mqtt_router()\n" + textwrap.dedent(mqtt_body)
    )
    return root


def _refusal(tmp_path: Path, call: str) -> str:
    """Run ``call`` as line 3 of a file; return the error, checked to start with file:3."""
    file = tmp_path / "mqtt.py"
    file.write_text(f"from gateway import mqtt_router\nmqtt = mqtt_router()\n{call}\n")
    with pytest.raises(MqttRouteError) as info:
        runpy.run_path(str(file))
    message = str(info.value)
    assert message.startswith(f"{file}:3: "), message
    return message


@pytest.mark.parametrize(
    ("call", "words"),
    [
        ('mqtt.ingest("sensors/{id}/t", "readings:ingest")', "no {device}"),
        ('mqtt.ingest("sensors/x{device}/t", "readings:ingest")', "not a whole segment"),
        ('mqtt.ingest("sensors/{device}x/t", "readings:ingest")', "not a whole segment"),
        ('mqtt.ingest("sensors/{device}/+", "readings:ingest")', "wildcard"),
        ('mqtt.ingest("sensors/{device}/#", "readings:ingest")', "wildcard"),
        ('mqtt.ingest("sensors/{device}/{device}", "readings:ingest")', "twice"),
        ('mqtt.ingest("sensors/{device}/{1x}", "readings:ingest")', "placeholder name"),
        ('mqtt.ingest("sensors/{device}/t", "readings:ingest", payload="xml")', "codec"),
        ('mqtt.ingest("", "readings:ingest")', "empty"),
        ('mqtt.ingest("/s/{device}", "readings:ingest")', "starts or ends"),
        ('mqtt.ingest("s/{device}/", "readings:ingest")', "starts or ends"),
        ('mqtt.ingest("s//{device}", "readings:ingest")', "empty segment"),
        ('mqtt.ingest("s/{device}/a\\0b", "readings:ingest")', "NUL"),
        (f'mqtt.ingest("s/{{device}}/{"a" * MAX_TOPIC_BYTES}", "r:i")', "bytes"),
        ('mqtt.ingest("$SYS/{device}", "readings:ingest")', "reserved"),
        ('mqtt.ingest("outpost/ack/{device}", "readings:ingest")', "reserved"),
        ('mqtt.ingest("s/{device}", "readings")', "module:function"),
        ('mqtt.ingest("s/{device}", ":ingest")', "module:function"),
        ('mqtt.ingest(7, "readings:ingest")', "str"),
        ('mqtt.publish("d/{device}/c", query="readings:configs")', "each=False"),
        ('mqtt.publish("d/all", query="readings:configs", each=True)', "each=False"),
        ('mqtt.publish("d/all", query="readings:configs", payload="auto")', "codec"),
        ('mqtt.publish("d/all", query="readings:configs", args=[1])', "dict"),
        ('mqtt.publish("d/all", query="readings:configs", args={"a": object()})', "args.a"),
        ('mqtt.publish("d/a+b", query="readings:configs")', "wildcard"),
    ],
)
def test_each_refusal_names_the_line_of_the_call(tmp_path: Path, call: str, words: str) -> None:
    assert words in _refusal(tmp_path, call)


def test_overlapping_ingest_routes_are_refused_naming_both(tmp_path: Path) -> None:
    file = tmp_path / "mqtt.py"
    file.write_text(
        "from gateway import mqtt_router\nmqtt = mqtt_router()\n"
        'mqtt.ingest("s/{device}/t", "r:a")\n'
        'mqtt.ingest("s/d1/{device}", "r:b")\n'
    )
    with pytest.raises(MqttRouteError) as info:
        runpy.run_path(str(file))
    message = str(info.value)
    assert message.startswith(
        f"{file}:4: ingest topic 's/d1/{{device}}' overlaps the ingest topic 's/{{device}}/t'"
    )
    assert f"declared at {file}:3" in message


@pytest.mark.parametrize(
    ("first", "second", "words"),
    [
        (
            'mqtt.ingest("d/{device}/c", "r:a")',
            'mqtt.publish("d/{device}/c", query="r:q", each=True)',
            "publish topic 'd/{device}/c' overlaps the ingest topic",
        ),
        (
            'mqtt.publish("d/{device}/c", query="r:q", each=True)',
            'mqtt.ingest("d/{device}/{kind}", "r:a")',
            "ingest topic 'd/{device}/{kind}' overlaps the publish topic",
        ),
        (
            'mqtt.publish("site/all", query="r:q")',
            'mqtt.publish("site/{x}", query="r:p", each=True)',
            "overlaps the publish topic 'site/all'",
        ),
    ],
)
def test_ingest_and_publish_topics_never_share_a_topic(
    tmp_path: Path, first: str, second: str, words: str
) -> None:
    file = tmp_path / "mqtt.py"
    file.write_text(f"from gateway import mqtt_router\nmqtt = mqtt_router()\n{first}\n{second}\n")
    with pytest.raises(MqttRouteError) as info:
        runpy.run_path(str(file))
    assert str(info.value).startswith(f"{file}:4: ")
    assert words in str(info.value) and f"declared at {file}:3" in str(info.value)


def test_routes_that_cannot_share_a_topic_coexist() -> None:
    mqtt = mqtt_router()
    mqtt.ingest("s/{device}/t", "r:a")
    mqtt.ingest("s/{device}/h", "r:b")  # differs in a literal
    mqtt.ingest("s/{device}", "r:c")  # differs in length
    mqtt.ingest("{device}/x/w", "r:d", payload="json")  # differs in the last literal
    assert len(mqtt.ingest_routes) == 4


def test_declared_routes_keep_what_was_said() -> None:
    mqtt = mqtt_router()
    route = mqtt.ingest("sensors/{device}/temperature", "readings.py:ingest", payload="cbor")
    assert (route.function, route.payload) == ("readings:ingest", "cbor")
    assert mqtt.ingest("a/{device}", "r:i").payload == "auto"
    pub = mqtt.publish("devices/{device}/config", query="devices:configs", args={}, each=True)
    assert (pub.query, pub.args, pub.each, pub.payload) == ("devices:configs", {}, True, "json")
    whole = mqtt.publish("site/summary", query="s:q", args={"n": 3}, payload="cbor")
    assert whole.args == {"n": 3.0} and not whole.each  # args are Convex values: 3 is Float64


def test_match_binds_named_segments_exactly() -> None:
    mqtt = mqtt_router()
    temp = mqtt.ingest("sensors/{device}/temperature", "readings:ingest")
    pair = mqtt.ingest("farm/{site}/{device}/humidity", "readings:humid")
    assert mqtt.match("sensors/d1/temperature") == (temp, {"device": "d1"})
    assert mqtt.match("farm/north/d7/humidity") == (pair, {"site": "north", "device": "d7"})
    for miss in (
        "sensors/d1/temperature/x",
        "sensors/d1",
        "sensors//temperature",  # an empty segment names no device
        "Sensors/d1/temperature",
        "sensors/d1/Temperature",
        "",
    ):
        assert mqtt.match(miss) is None, miss


def test_args_are_the_payload_fields_plus_the_named_segments() -> None:
    mqtt = mqtt_router()
    route = mqtt.ingest("farm/{site}/{device}", "r:i")
    bound = {"site": "north", "device": "d1"}
    assert route.args_for(bound, {"t": 1.0}) == {"t": 1.0, "site": "north", "device": "d1"}
    assert route.args_for(bound, {"device": "d1"}) == {"site": "north", "device": "d1"}
    with pytest.raises(PayloadError, match="'device' says 'd2' but the topic says 'd1'"):
        route.args_for(bound, {"device": "d2"})


def test_publish_topics_are_filled_from_each_element() -> None:
    route = mqtt_router().publish("d/{device}/{kind}", query="q:f", each=True)
    assert route.topic_for({"device": "d1", "kind": "cfg", "x": 1.0}) == "d/d1/cfg"
    for bad in (
        {"kind": "cfg"},
        {"device": 1.0, "kind": "c"},
        {"device": "", "kind": "c"},
        {"device": "a/b", "kind": "c"},
        {"device": "+", "kind": "c"},
        {"device": "a\0", "kind": "c"},
        ["d1"],
    ):
        with pytest.raises(ValueError, match="q:f"):
            route.topic_for(bad)


def test_check_routes_refuses_an_mqtt_that_is_not_a_router(tmp_path: Path) -> None:
    check_routes(None, object())  # no convex/mqtt.py: nothing to check
    app_dir = _write_app(tmp_path / "app", "mqtt = 5\n")
    app = load_app(app_dir)
    try:
        with pytest.raises(MqttRouteError, match="mqtt is a int; write mqtt = mqtt_router"):
            check_routes(app.mqtt, app)
    finally:
        app.unload()


def test_the_loader_reports_a_refused_route_as_it_was_raised(tmp_path: Path) -> None:
    app_dir = _write_app(tmp_path / "app", 'mqtt.ingest("s/{id}", "readings:ingest")\n')
    with pytest.raises(AppLoadError) as info:
        load_app(app_dir)
    assert str(info.value).startswith(f"{app_dir / 'convex' / 'mqtt.py'}:4: ingest topic")


def test_check_routes_accepts_mutations_and_queries(tmp_path: Path) -> None:
    app = load_app(
        _write_app(
            tmp_path / "app",
            """
            mqtt.ingest("s/{device}/t", "readings:ingest")
            mqtt.ingest("s/{device}/h", "readings:store")
            mqtt.publish("d/{device}", query="readings:configs", each=True)
            """,
        )
    )
    try:
        assert isinstance(app.mqtt, MqttRouter)
        check_routes(app.mqtt, app)
    finally:
        app.unload()


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('mqtt.ingest("s/{device}", "readings:missing")', "no mutation 'readings:missing'"),
        ('mqtt.ingest("s/{device}", "nowhere:ingest")', "no mutation"),
        (
            'mqtt.ingest("s/{device}", "readings:configs")',
            "is a query, but this route needs a mutation",
        ),
        (
            'mqtt.publish("d", query="readings:ingest")',
            "is a mutation, but this route needs a query",
        ),
        ('mqtt.publish("d", query="readings:gone")', "no query"),
    ],
)
def test_check_routes_refuses_wrong_functions_at_the_route(
    tmp_path: Path, line: str, words: str
) -> None:
    app_dir = _write_app(tmp_path / "app", line + "\n")
    app = load_app(app_dir)
    try:
        with pytest.raises(MqttRouteError) as info:
            check_routes(app.mqtt, app)
    finally:
        app.unload()
    assert str(info.value).startswith(f"{app_dir / 'convex' / 'mqtt.py'}:4: ")
    assert words in str(info.value)


# --- parity: the indexed match against a plain scan -----------------------------------

_WORDS = st.sampled_from(["a", "b", "c", "d1", "d2"])
_PATTERN = st.lists(st.one_of(_WORDS, st.just("{}")), min_size=1, max_size=4)
_TOPIC = st.lists(st.one_of(_WORDS, st.just("")), min_size=1, max_size=5).map("/".join)


def _declare(mqtt: MqttRouter, shape: list[str]) -> None:
    # Number the placeholders; make sure one is {device}; skip overlaps (refused).
    names = iter(["device", "p1", "p2", "p3"])
    pattern = "/".join(f"{{{next(names)}}}" if s == "{}" else s for s in shape)
    if "{device}" not in pattern:
        pattern += "/{device}"
    try:
        mqtt.ingest(pattern, "r:f")
    except MqttRouteError:
        pass


@settings(max_examples=300, deadline=None)
@given(shapes=st.lists(_PATTERN, max_size=8), topics=st.lists(_TOPIC, max_size=20))
def test_indexed_match_equals_a_linear_scan(shapes: list[list[str]], topics: list[str]) -> None:
    mqtt = mqtt_router()
    for shape in shapes:
        _declare(mqtt, shape)
    # Probe the declared patterns' own shapes too, so matches are not only by chance.
    probes = topics + [
        r.pattern.replace("{device}", "d1").replace("{p1}", "x") for r in mqtt.ingest_routes
    ]
    for topic in probes:
        assert mqtt.match(topic) == mqtt.match_linear(topic), topic
