"""What ``outpost discover`` makes of the records it resolved: one entry per gateway,
sorted by name, each with the broker announced under its gateway id."""

from __future__ import annotations

from zeroconf.asyncio import AsyncServiceInfo

from gateway.discovery.browse import MQTT, OUTPOST, gateways_from


def _info(kind: str, instance: str, port: int, txt: dict[str, str]) -> AsyncServiceInfo:
    return AsyncServiceInfo(
        kind,
        f"{instance}.{kind}",
        port=port,
        properties=txt,
        server="outpost-test.local.",
        parsed_addresses=["10.0.0.7"],
    )


def test_gateways_are_sorted_and_joined_with_their_brokers() -> None:
    found = gateways_from(
        [
            _info(OUTPOST, "shed", 3210, {"name": "shed", "gateway_id": "b" * 32}),
            _info(MQTT, "shed", 1884, {"name": "shed", "gateway_id": "b" * 32}),
            _info(OUTPOST, "barn", 3212, {"name": "barn", "gateway_id": "a" * 32}),
            _info(MQTT, "stranger", 1883, {}),  # a broker that is no gateway's
        ]
    )
    assert [(g.name, g.port, g.mqtt_port, g.addresses) for g in found] == [
        ("barn", 3212, None, ("10.0.0.7",)),
        ("shed", 3210, 1884, ("10.0.0.7",)),
    ]
