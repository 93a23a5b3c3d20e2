"""Finding gateways on the LAN: browse ``_outpost._tcp`` (and ``_mqtt._tcp``) for a while.

Each instance is resolved (SRV, TXT, A) as soon as it appears, within what is left of
the browse; a broker announced with a gateway's id is attached to that gateway. What
does not resolve in time is left out rather than listed half-known.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from gateway.discovery.announce import DOMAIN, quiet_zeroconf
from gateway.discovery.records import MQTT_TYPE, OUTPOST_TYPE, FoundGateway, found_gateway, port_of

OUTPOST = f"{OUTPOST_TYPE}.{DOMAIN}"
MQTT = f"{MQTT_TYPE}.{DOMAIN}"


class _Browse:
    """The resolutions started so far, one task per instance seen."""

    def __init__(self, zc: AsyncZeroconf, deadline: float) -> None:
        self.zc = zc
        self.deadline = deadline
        self.resolving: dict[tuple[str, str], asyncio.Task[AsyncServiceInfo | None]] = {}
        self.withdrawn: list[asyncio.Task[AsyncServiceInfo | None]] = []  # awaited at the end

    def on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        key = (service_type, name)
        if state_change is ServiceStateChange.Removed:  # its goodbye: stopped meanwhile
            if key in self.resolving:
                task = self.resolving.pop(key)
                task.cancel()
                self.withdrawn.append(task)
            return
        if key in self.resolving:
            return
        self.resolving[key] = asyncio.create_task(
            self._resolve(service_type, name), name="outpost-discover-resolve"
        )

    async def _resolve(self, service_type: str, name: str) -> AsyncServiceInfo | None:
        info = AsyncServiceInfo(service_type, name)
        left_ms = max(0.0, self.deadline - time.monotonic()) * 1000
        if await info.async_request(self.zc.zeroconf, left_ms):
            return info
        return None


async def browse(timeout_s: float) -> list[FoundGateway]:
    """Every gateway that answered within ``timeout_s``, by name."""
    deadline = time.monotonic() + timeout_s
    with quiet_zeroconf():  # a failure to open the sockets is raised, for the caller to say
        opened = AsyncZeroconf(ip_version=IPVersion.V4Only)
    async with opened as zc:
        found = _Browse(zc, deadline)
        browser = AsyncServiceBrowser(zc.zeroconf, [OUTPOST, MQTT], handlers=[found.on_change])
        try:
            await asyncio.sleep(timeout_s)  # the browse window itself, not a wait on a condition
        finally:
            await browser.async_cancel()
        infos = await _finish(found.resolving)
        await asyncio.gather(*found.withdrawn, return_exceptions=True)
    return gateways_from(infos)


async def _finish(
    resolving: dict[tuple[str, str], asyncio.Task[AsyncServiceInfo | None]],
) -> list[AsyncServiceInfo]:
    """What resolved; each request is bounded by the deadline, so this ends soon."""
    done = await asyncio.gather(*resolving.values(), return_exceptions=True)
    return [info for info in done if isinstance(info, AsyncServiceInfo)]


def gateways_from(infos: list[AsyncServiceInfo]) -> list[FoundGateway]:
    """One entry per ``_outpost._tcp`` instance, by name, with the port of the
    ``_mqtt._tcp`` instance that carries its gateway id."""
    gateways: dict[str, FoundGateway] = {}
    brokers: dict[str, tuple[int, int | None]] = {}  # gateway id -> (port, TLS port)
    for info in infos:
        txt = info.decoded_properties
        instance = info.name.removesuffix(f".{info.type}")
        if info.type == MQTT:
            if txt.get("gateway_id") and info.port:
                brokers[txt["gateway_id"] or ""] = (info.port, port_of(txt.get("tls_port")))
            continue
        addresses = tuple(info.parsed_addresses(IPVersion.V4Only))
        if info.port:
            gateways[info.name] = found_gateway(instance, addresses, info.port, txt)
    listed = sorted(gateways.values(), key=lambda g: (g.name, g.instance))
    return [_with_broker(g, brokers.get(g.gateway_id)) for g in listed]


def _with_broker(gateway: FoundGateway, broker: tuple[int, int | None] | None) -> FoundGateway:
    if broker is None or not gateway.gateway_id:
        return gateway
    return replace(gateway, mqtt_port=broker[0], mqtt_tls_port=broker[1])
