"""Announcing a running gateway on the LAN: Avahi's when it runs, else our own responder.

Announcing is a courtesy, never a condition of serving: whatever stops it (no
multicast interface, UDP 5353 taken by a responder that does not share it, an Avahi
directory this process cannot write) is one warning line and the gateway serves on.

Our responder is python-zeroconf's ``AsyncZeroconf`` on the running event loop (no
thread of its own). Probing the name (RFC 6762 section 8.1) takes about a second and a
half, so it runs in a task owned by the announcer: readiness does not wait on it, and
``close`` cancels it, then sends the goodbyes (TTL 0) for what was registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from gateway.discovery import avahi
from gateway.discovery.records import Announcement

log = logging.getLogger("gateway.discovery")

DOMAIN = "local."


class Announcer(Protocol):
    """A started announcement; ``close`` withdraws it and is safe to call twice."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Plan:
    """What one gateway announces, and on which of this machine's addresses."""

    announcements: Sequence[Announcement]
    addresses: Sequence[str]
    gateway_id: str

    @property
    def server(self) -> str:
        """The SRV target host name. Not the machine's own name: Avahi (or another
        responder) may own ``<hostname>.local`` and would defend it against ours."""
        return f"outpost-{self.gateway_id[:12]}.{DOMAIN}"


@dataclass(frozen=True)
class Unannounced:
    """Why there is nothing to announce now (logged once per change of reason)."""

    reason: str
    level: int = logging.INFO


@dataclass(frozen=True)
class AvahiPaths:
    """Where Avahi keeps its pid and reads service files (tests point elsewhere)."""

    pid_file: Path = avahi.PID_FILE
    services_dir: Path = avahi.SERVICES_DIR


ResponderStart = Callable[[Plan], Awaitable[Announcer]]


async def start_announcing(
    plan: Plan, *, avahi_paths: AvahiPaths | None = None, responder: ResponderStart | None = None
) -> Announcer | None:
    """Announce ``plan``; None (after one warning) when it cannot be announced."""
    paths = avahi_paths or AvahiPaths()
    try:
        if avahi.avahi_running(paths.pid_file):
            handed = _hand_to_avahi(plan, paths.services_dir)
            if handed is not None:
                return handed
        return await (responder or ZeroconfResponder.start)(plan)
    except Exception as exc:  # any cause: the gateway serves all the same
        _warn_not_announced(exc)
        return None


def _hand_to_avahi(plan: Plan, services_dir: Path) -> avahi.AvahiServiceFile | None:
    """The service file written, or None (with a warning) when the directory cannot be
    written to: then our responder answers beside Avahi, the lesser evil than no
    announcement at all (both share the port; our names differ from Avahi's)."""
    name = plan.announcements[0].instance
    text = avahi.service_file_text(name, plan.announcements)
    handed = avahi.AvahiServiceFile(services_dir / avahi.service_file_name(plan.gateway_id), text)
    try:
        handed.write()
    except OSError as exc:
        log.warning(
            "avahi-daemon runs but %s is not writable (%s); announcing with Outpost's own "
            "responder beside it. Let this user write there to hand the announcement to Avahi "
            "(deploy/install.sh does: run it again after installing avahi-daemon)",
            services_dir,
            exc.strerror or exc,
        )
        return None
    log.info("announced on the LAN through avahi-daemon as %r (%s)", name, handed.path)
    return handed


@contextlib.contextmanager
def quiet_zeroconf() -> Iterator[None]:
    """python-zeroconf's logger silent but for critical records while the block runs:
    it logs a failure to open its sockets before raising it, and the caller's message
    about that failure is the one line a user should see."""
    logger = logging.getLogger("zeroconf")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _warn_not_announced(exc: BaseException) -> None:
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        reason = (
            "UDP port 5353 is held by an mDNS responder that does not share it; "
            "`ss -lunp 'sport = :5353'` names it"
        )
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        reason = str(exc)
    log.warning(
        "not announced on the LAN (%s: %s); serving anyway, but `outpost discover` will not "
        "find this gateway",
        type(exc).__name__,
        reason or "no reason given",
    )


class ZeroconfResponder:
    """python-zeroconf answering for the gateway's services on the plan's addresses."""

    def __init__(self, zc: AsyncZeroconf, plan: Plan) -> None:
        self._zc = zc
        self._plan = plan
        self._infos = [_service_info(item, plan) for item in plan.announcements]
        self._registering: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def start(cls, plan: Plan) -> ZeroconfResponder:
        """Open the multicast sockets (an ``OSError`` if none can be) and start probing."""
        with quiet_zeroconf():
            zc = AsyncZeroconf(interfaces=list(plan.addresses), ip_version=IPVersion.V4Only)
        responder = cls(zc, plan)
        responder._registering = asyncio.create_task(
            responder._register(), name="outpost-discovery-register"
        )
        return responder

    async def _register(self) -> None:
        try:
            for info in self._infos:
                announced = await self._zc.async_register_service(info, allow_name_change=True)
                await announced
        except Exception as exc:  # e.g. every interface went away while probing
            _warn_not_announced(exc)
            return
        first = self._infos[0]  # its name as probed, a "-2" added on a clash
        where = ", ".join(f"{a}:{first.port}" for a in self._plan.addresses)
        log.info(
            "announced on the LAN as %r (%s)", first.name.removesuffix("." + first.type), where
        )

    async def close(self) -> None:
        """Stop probing, send the goodbyes of what was registered, close the sockets."""
        if self._closed:
            return
        self._closed = True
        if self._registering is not None:
            self._registering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._registering
        await self._zc.async_close()


def _service_info(item: Announcement, plan: Plan) -> AsyncServiceInfo:
    kind = f"{item.kind}.{DOMAIN}"
    return AsyncServiceInfo(
        kind,
        f"{item.instance}.{kind}",
        port=item.port,
        properties=dict(item.txt),
        server=plan.server,
        parsed_addresses=list(plan.addresses),
    )
