"""``Discovery`` follows its plan: a new address or port is announced anew (the old one
withdrawn first), a plan that cannot be announced is logged once, close is final."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gateway.discovery import Discovery, Plan, Unannounced, gateway_announcements

GATEWAY_ID = "aa212d0be4de42d5a2b533bb16d6056a"


def _plan(address: str, site_port: int | None = None) -> Plan:
    announcements = gateway_announcements(
        name="pi", gateway_id=GATEWAY_ID, api_port=3210, site_port=site_port, mqtt_port=None
    )
    return Plan(announcements, [address], GATEWAY_ID)


class Announcements:
    """Stands in for ``start_announcing``: records what is announced and withdrawn."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Plan]] = []
        self.changed = asyncio.Event()

    async def start(self, plan: Plan) -> Announced:
        self.log.append(("announce", plan))
        self.changed.set()
        return Announced(self, plan)

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.log) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.0, deadline - time.monotonic()))


class Announced:
    def __init__(self, owner: Announcements, plan: Plan) -> None:
        self.owner, self.plan = owner, plan

    async def close(self) -> None:
        self.owner.log.append(("withdraw", self.plan))
        self.owner.changed.set()


async def test_an_address_that_changes_is_announced_anew() -> None:
    plans: list[Plan | Unannounced] = [_plan("10.0.0.5")]
    fake = Announcements()
    discovery = Discovery(lambda: plans[-1], check_interval_s=0.01, announce=fake.start)
    await discovery.start()
    assert fake.log == [("announce", _plan("10.0.0.5"))]
    plans.append(_plan("10.0.0.9"))  # a DHCP renewal handed out another address
    await fake.wait_for(3)
    assert fake.log[1:] == [("withdraw", _plan("10.0.0.5")), ("announce", _plan("10.0.0.9"))]
    await discovery.close()
    await discovery.close()  # twice is safe
    assert fake.log[-1] == ("withdraw", _plan("10.0.0.9"))
    assert len(fake.log) == 4


async def test_nothing_to_announce_yet_is_logged_once_then_announced_when_it_comes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waiting = Unannounced("no address on the LAN yet (announced once an interface has one)")
    plans: list[Plan | Unannounced] = [waiting]
    fake = Announcements()
    discovery = Discovery(lambda: plans[-1], check_interval_s=0.01, announce=fake.start)
    with caplog.at_level(logging.INFO, logger="gateway.discovery"):
        await discovery.start()
        for _ in range(3):
            await discovery.refresh()
        plans.append(_plan("192.168.1.7"))  # the Pi booted before DHCP answered
        await fake.wait_for(1)
        await discovery.close()
    assert [r.getMessage() for r in caplog.records] == [
        "not announced on the LAN: no address on the LAN yet (announced once an interface has one)"
    ]
    assert fake.log == [("announce", _plan("192.168.1.7")), ("withdraw", _plan("192.168.1.7"))]


async def test_a_reload_that_opens_the_site_is_announced_at_once() -> None:
    plans: list[Plan | Unannounced] = [_plan("10.0.0.5")]
    fake = Announcements()
    discovery = Discovery(lambda: plans[-1], check_interval_s=3600, announce=fake.start)
    await discovery.start()
    plans.append(_plan("10.0.0.5", site_port=3211))
    await discovery.refresh()  # what the service's reload listener does
    assert fake.log[-1] == ("announce", _plan("10.0.0.5", site_port=3211))
    await discovery.close()


async def test_a_plan_that_cannot_be_made_is_a_warning_not_a_failed_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def blank_name() -> Plan:
        gateway_announcements(
            name=" ", gateway_id=GATEWAY_ID, api_port=1, site_port=None, mqtt_port=None
        )
        raise AssertionError("a blank name is refused")

    fake = Announcements()
    discovery = Discovery(blank_name, check_interval_s=3600, announce=fake.start)
    with caplog.at_level(logging.INFO, logger="gateway.discovery"):
        await discovery.start()
        await discovery.close()
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "discovery_name" in record.getMessage()
    assert fake.log == []
