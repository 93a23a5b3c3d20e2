"""What is announced: the TXT records, the names, the addresses, the Avahi service file."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from gateway.discovery import lan_addresses
from gateway.discovery.avahi import service_file_name, service_file_text
from gateway.discovery.records import (
    MQTT_TYPE,
    OUTPOST_TYPE,
    found_gateway,
    gateway_announcements,
    instance_name,
    outpost_version,
)

GATEWAY_ID = "aa212d0be4de42d5a2b533bb16d6056a"


def test_the_gateway_record_carries_name_version_ports_and_id() -> None:
    [outpost] = gateway_announcements(
        name="greenhouse", gateway_id=GATEWAY_ID, api_port=3210, site_port=3211, mqtt_port=None
    )
    assert (outpost.kind, outpost.instance, outpost.port) == (OUTPOST_TYPE, "greenhouse", 3210)
    assert dict(outpost.txt) == {
        "txtvers": "1",
        "name": "greenhouse",
        "gateway_id": GATEWAY_ID,
        "version": outpost_version(),
        "api_port": "3210",
        "site_port": "3211",
    }
    assert next(iter(outpost.txt)) == "txtvers"  # RFC 6763 section 6.7: first


def test_no_site_port_until_the_site_listens_and_the_broker_only_when_given() -> None:
    outpost, mqtt = gateway_announcements(
        name="pi", gateway_id=GATEWAY_ID, api_port=3210, site_port=None, mqtt_port=1883
    )
    assert "site_port" not in outpost.txt
    assert (mqtt.kind, mqtt.instance, mqtt.port) == (MQTT_TYPE, "pi", 1883)
    assert dict(mqtt.txt) == {"txtvers": "1", "name": "pi", "gateway_id": GATEWAY_ID}


def test_an_instance_name_is_one_dns_label_of_whole_characters() -> None:
    assert instance_name("  green   house ") == "green house"
    long = "é" * 40  # 80 bytes: cut to 31 whole characters (62 bytes), never half of one
    assert instance_name(long) == "é" * 31
    with pytest.raises(ValueError, match="discovery_name"):
        instance_name("   ")


def test_a_browse_result_reads_its_txt_record_and_tolerates_missing_keys() -> None:
    txt = {"name": "greenhouse", "version": "0.1.0", "gateway_id": GATEWAY_ID, "site_port": "3211"}
    found = found_gateway("greenhouse-2", ("10.0.0.2",), 3210, txt)
    assert found.as_json() == {
        "name": "greenhouse",
        "instance": "greenhouse-2",
        "address": "10.0.0.2",
        "addresses": ["10.0.0.2"],
        "port": 3210,
        "sitePort": 3211,
        "mqttPort": None,
        "version": "0.1.0",
        "gatewayId": GATEWAY_ID,
        "tls": False,
        "mqttTlsPort": None,
    }
    bare = found_gateway("other", (), 80, {"site_port": "not a port"})
    assert (bare.name, bare.version, bare.gateway_id, bare.site_port) == (
        "other",
        "unknown",
        "",
        None,
    )


def test_the_avahi_service_file_lists_every_service_with_escaped_text() -> None:
    announcements = gateway_announcements(
        name="Tom & Jerry's <pi>",
        gateway_id=GATEWAY_ID,
        api_port=3210,
        site_port=None,
        mqtt_port=1883,
    )
    text = service_file_text("Tom & Jerry's <pi>", announcements)
    assert text.startswith('<?xml version="1.0" standalone="no"?>\n<!DOCTYPE service-group')
    root = ElementTree.fromstring(text.split("\n", 2)[2])  # past the DOCTYPE line
    assert root.tag == "service-group"
    assert root.findtext("name") == "Tom & Jerry's <pi>"
    services = root.findall("service")
    assert [(s.findtext("type"), s.findtext("port")) for s in services] == [
        ("_outpost._tcp", "3210"),
        ("_mqtt._tcp", "1883"),
    ]
    txt = [t.text for t in services[0].findall("txt-record")]
    assert f"gateway_id={GATEWAY_ID}" in txt
    assert "name=Tom & Jerry's <pi>" in txt
    assert service_file_name(GATEWAY_ID) == "outpost-aa212d0be4de.service"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", []),  # the default: only this machine reaches it
        ("localhost", []),
        ("::1", []),
        ("0.0.0.0", ["192.168.7.2", "10.1.0.5"]),
        ("", ["192.168.7.2", "10.1.0.5"]),
        ("::", ["192.168.7.2", "10.1.0.5"]),
        ("10.1.0.5", ["10.1.0.5"]),
    ],
)
def test_only_addresses_a_lan_peer_reaches_are_announced(host: str, expected: list[str]) -> None:
    def machine() -> list[str]:
        return ["127.0.0.1", "192.168.7.2", "10.1.0.5"]

    assert lan_addresses(host, machine) == expected


def test_discover_refuses_a_timeout_it_cannot_use(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    assert main(["discover", "--timeout", "0"]) == 2
    assert capsys.readouterr().err == (
        "outpost: --timeout must be more than 0 and at most 600 seconds, got 0\n"
    )
