"""``Service``: the whole life of an ``outpost serve`` or ``outpost dev`` process.

It sits above ``gateway.http`` and ``gateway.gateway`` (the HTTP layer imports the
gateway, so the owner of both lives here) and is a ``Lifecycle`` of its own, with the
gateway's steps nested inside its "gateway" step. Start order (stop is the reverse):

==============  ==========================================  ===============================
step            starts                                      stop
==============  ==========================================  ===============================
open files      soft RLIMIT_NOFILE raised to the hard one   the old soft limit back
                (the HTTP server sizes its connection cap
                from it)
gil switching   the GIL switch interval set to 1 ms         the interval found
http            the TLS certificate (``tls`` or             close (no-op once "attach"
                ``mqtt_tls_port``: ``gateway.tls``, the     stopped it)
                local CA's issued when needed); the
                listening socket (HTTPS with ``tls``);
                until "attach", calls and /health/ready
                answer 503
gateway         the gateway's own steps, in their order     ``Gateway.close``: its steps in
                (``gateway.gateway``)                       reverse
admin socket    the API on ``<data dir>/outpost.sock``      close HTTP (the socket's file
                (0600; admin without a key, for the CLI:    removed), as "attach" does
                ``gateway.admin_socket``)
mqtt broker     managed + routes: Mosquitto started and     stop supervising, SIGTERM the
                supervised (``gateway.mqtt.supervisor``),   broker (SIGKILL after 5 s);
                ACL rewritten on each ``dev`` reload;       unregister the reload listener
                ``mqtt_endpoint`` set for the bridge
                (external: from ``mqtt_url``; else None)
mqtt bridge     the gateway's MQTT client on the endpoint   acknowledge what is durable
                (``gateway.mqtt.bridge``): routes in,       (bounded), disconnect, stop
                acks and publish rules out                  paho's thread
replication     ``upstream_url`` set: the uplink task       cancel, await (a push in
                draining the outbox, and the downlink       flight is sent again; a
                task pulling ``down`` tables               page is applied whole or
                (``gateway.replication.edge``)              not at all)
attach          the API serves calls to the gateway         close HTTP: stop accepting,
                                                            close sync sockets, finish
                                                            in-flight calls (before the
                                                            gateway below them closes)
http actions    ``convex/http.py``'s routes on              close the site: stop
                ``site_port`` (``gateway.http.site``) once  accepting, finish in-flight
                the app has routes (at start or at a        actions; unregister the reload
                ``dev`` reload)                             listener
reload watcher  ``outpost dev``'s file watcher task         cancel, await
tls renewal     with TLS: a daily look for a renewed        cancel, await
                certificate, loaded for new handshakes
                and given to the managed broker
                (``gateway.tls.renewal``)
discovery       ``discovery`` on, ``host`` on the LAN:      stop following; remove the
                the gateway (and the managed broker)        Avahi service file, or stop
                announced over mDNS (``gateway.discovery``) probing, send the goodbyes,
                through Avahi's service file when it runs,  close the sockets
                else python-zeroconf on this loop; its
                addresses followed, the site's port after
                a ``dev`` reload; a failure is one
                warning, never a failed start
ready           startup objects frozen out of the           -
                collector (serve), the ready line
systemd         READY=1 on systemd's notify socket, the     STOPPING=1; stop feeding
                watchdog fed from the event loop
                (``gateway.sdnotify``; no-ops outside
                systemd)
==============  ==========================================  ===============================

Discovery comes just before "ready", so only a gateway that answers is announced, and
stops before everything under it, so its goodbyes go out while the gateway answers. The stop is
bounded by ``settings.shutdown_timeout_s`` as a whole (``gateway.lifecycle``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from gateway.admin_socket import admin_socket_path
from gateway.config import Settings
from gateway.config_file import url_host
from gateway.errors import ConfigError
from gateway.gateway import Gateway
from gateway.http import HttpServer
from gateway.http.protocol import ConnectionGuard
from gateway.http.site import SiteServer
from gateway.http.unix_site import PathTooLong
from gateway.http.upload import LIMITS
from gateway.lifecycle import Lifecycle, StepHook, cancel_task
from gateway.metrics import bridge_metrics
from gateway.mqtt.bridge import Bridge
from gateway.mqtt.endpoint import BrokerEndpoint, endpoint_from_url
from gateway.mqtt.supervisor import ManagedBroker, broker_tls, current_user
from gateway.process_tuning import (
    freeze_startup_objects,
    raise_open_files_limit,
    restore_open_files_limit,
    shorten_switch_interval,
)
from gateway.replication.downlink import Downlink
from gateway.replication.edge import Links, start_replication, stop_replication
from gateway.replication.uplink import Uplink
from gateway.runtime.loader import App
from gateway.sdnotify import Notifier, feed_watchdog, stop_feeding, watchdog_interval_s
from gateway.tls import ServerTls, server_tls
from gateway.tls.renewal import keep_renewed

if TYPE_CHECKING:
    from gateway.discovery import Discovery, Plan, Unannounced

log = logging.getLogger("gateway.service")

# Share of ``shutdown_timeout_s`` the HTTP server waits for in-flight requests.
HTTP_GRACE_SHARE = 0.25

SideTask = Callable[[Gateway], Coroutine[Any, Any, None]]


class Service:
    """HTTP API and gateway started in order, stopped in reverse; ``stop`` is idempotent.

    ``freeze`` keeps startup objects out of later collections (``outpost serve``; not
    ``dev``, whose reloads leave old app generations to collect, nor tests)."""

    server: HttpServer
    gateway: Gateway
    port: int  # the bound port (``settings.port`` 0: an ephemeral one)
    # Where the MQTT bridge connects; None when there is no broker to use.
    mqtt_endpoint: BrokerEndpoint | None = None
    bridge: Bridge | None = None  # the gateway's MQTT client (``gateway.mqtt.bridge``)
    uplink: Uplink | None = None  # replication upstream (``gateway.replication.uplink``)
    downlink: Downlink | None = None  # ``down`` tables pulled (``gateway.replication.downlink``)
    _broker: ManagedBroker | None = None  # the managed broker, when this process runs one
    tls: ServerTls | None = None  # the certificate served, with ``tls`` or ``mqtt_tls_port``
    # The HTTP actions' port once it listens: from the start when the app has routes,
    # else from the ``outpost dev`` reload that adds them; None until then.
    site_port: int | None = None

    def __init__(
        self,
        app_dir: Path,
        settings: Settings,
        *,
        keep_last_good: bool = True,
        while_serving: SideTask | None = None,
        on_ready: Callable[[Service], None] | None = None,
        freeze: bool = False,
        step_hook: StepHook | None = None,
    ) -> None:
        self.app_dir = app_dir
        self.settings = settings
        self._keep_last_good = keep_last_good
        self._while_serving = while_serving
        self._on_ready = on_ready
        self._freeze = freeze
        self._hook = step_hook
        self._life = Lifecycle("service", stop_budget_s=settings.shutdown_timeout_s, hook=step_hook)

    async def start(self) -> None:
        """Run every step; a failure raises ``StartError`` with all earlier steps stopped."""
        life = self._life
        await life.start("open files", raise_open_files_limit, restore_open_files_limit)
        await life.start("gil switching", shorten_switch_interval, sys.setswitchinterval)
        await life.start("http", self._listen, lambda _: self.server.close())  # no-op once closed
        await life.start("gateway", self._start_gateway, Gateway.close)
        await life.start("admin socket", self._listen_admin_socket, lambda _: self.server.close())
        await life.start("mqtt broker", self._start_broker, _stop_broker)
        await life.start("mqtt bridge", self._start_bridge, _stop_bridge)
        await life.start("replication", self._start_replication, stop_replication)
        await life.start("attach", self._attach, lambda _: self.server.close())
        await life.start("http actions", self._start_site, _stop_site)
        await life.start("reload watcher", self._start_watcher, cancel_task)
        await life.start("tls renewal", self._start_renewal, cancel_task)
        await life.start("discovery", self._start_discovery, _stop_discovery)
        await life.start("ready", self._ready)
        await life.start("systemd", self._notify_ready, _notify_stopping)

    async def stop(self) -> None:
        """Stop every started step in reverse within ``shutdown_timeout_s``."""
        await self._life.stop()

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- the steps ----------------------------------------------------------------------

    async def _listen(self) -> int:
        settings = self.settings
        # The server's own grace for in-flight requests: aiohttp waits up to twice it
        # (for handlers to finish, then after cancelling them), which stays inside the
        # share its step may use, so it cuts them itself rather than being cancelled
        # half-way (leaving connections open) and the gateway keeps time to drain.
        grace_s = settings.shutdown_timeout_s * HTTP_GRACE_SHARE
        self.tls = await asyncio.to_thread(server_tls, settings)  # may make keys: off the loop
        self.server = HttpServer(
            settings=replace(settings, shutdown_timeout_s=grace_s), ssl_context=self._ssl_context
        )
        host, port = settings.host, settings.port
        try:
            self.port = await self.server.start(host, port)
        except OSError as exc:
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            reason = f"cannot listen on {host}:{port} ({why}); "
            raise OSError(
                exc.errno, reason + "pick another --port or stop the process using it"
            ) from exc
        return self.port

    @property
    def _ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.context if self.tls is not None else None

    @property
    def scheme(self) -> str:
        """``https`` when the API and HTTP actions serve TLS, else ``http``."""
        return "https" if self._ssl_context is not None else "http"

    async def _start_gateway(self) -> Gateway:
        self.gateway = await Gateway.launch(
            self.app_dir,
            self.settings.data_dir,
            _with_bound_site_url(self.settings, self.port),
            keep_last_good=self._keep_last_good,
            step_hook=self._hook,
        )
        return self.gateway

    async def _listen_admin_socket(self) -> Path | None:
        """The API on ``<data dir>/outpost.sock`` too, where the CLI calls as an admin
        without the key (``gateway.admin_socket``); None when the path is too long for
        a UNIX socket (the CLI then uses HTTP and the key, as it always could)."""
        path = admin_socket_path(self.gateway.store.path.parent)
        try:
            await self.server.listen_unix(path)
        except PathTooLong as exc:
            log.warning("no admin socket: %s; the CLI uses HTTP and the admin key", exc.strerror)
            return None
        return path

    async def _start_broker(self) -> tuple[ManagedBroker, Callable[[], None]] | None:
        """``mqtt_endpoint`` for the bridge: the managed broker's (started here when the
        app has routes), the external one's, or None (``off``, or no ``convex/mqtt.py``:
        then no broker, and no ``mosquitto`` needed)."""
        settings = self.settings
        if settings.mqtt_broker == "external":
            try:
                self.mqtt_endpoint = endpoint_from_url(settings.mqtt_url)
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
            return None
        if settings.mqtt_broker != "managed" or self.gateway.app.mqtt is None:
            return None
        broker = ManagedBroker(
            Path(settings.data_dir),
            settings.mqtt_host,
            settings.mqtt_port,
            self.gateway.app.mqtt,
            run_as_user=current_user(),
            tls=broker_tls(settings.mqtt_tls_port, self.tls),
        )
        self.mqtt_endpoint = await broker.start()
        self._broker = broker

        async def follow_routes(app: App) -> None:  # ``outpost dev`` reloads
            await broker.update_routes(app.mqtt)

        return broker, self.gateway.on_app_reloaded(follow_routes)

    async def _start_bridge(self) -> Bridge | None:
        """The gateway's MQTT client on ``mqtt_endpoint``, when the app has routes."""
        if self.mqtt_endpoint is None or self.gateway.app.mqtt is None:
            return None
        broker = self._broker
        on_subscribed = broker.save if broker is not None else None
        self.bridge = Bridge(self.gateway, self.mqtt_endpoint, on_subscribed=on_subscribed)
        await self.bridge.start()
        self.gateway.dashboard.bridge = self.bridge  # devices and publish rules
        self.server.add_metrics(functools.partial(bridge_metrics, self.bridge))
        return self.bridge

    async def _start_replication(self) -> Links:
        """The uplink and downlink of ``upstream_url`` (none when it is empty). The systemd
        credential directory is systemd's contract with the process: it comes in the
        environment."""
        links = await start_replication(
            self.gateway, self.settings.upstream_url, Path(self.settings.data_dir), os.environ
        )
        self.uplink, self.downlink = links.uplink, links.downlink
        return links

    async def _attach(self) -> None:
        self.server.attach(self.gateway)

    async def _start_site(self) -> tuple[SiteServer, Callable[[], None]]:
        """HTTP actions on ``site_port``, listening once the app declares routes: a
        gateway without ``convex/http.py`` holds no second port (tests and several
        gateways on one host would all want 3211)."""
        site = SiteServer(
            self.gateway,
            self.server.settings,
            self.server.app[LIMITS].budget,
            self._guard(),
            self._ssl_context,
        )

        async def follow_routes(app: App) -> None:  # ``outpost dev`` reloads
            if app.http is not None and not site.listening:
                await self._listen_site(site)
                where = f"{self.scheme}://{self.settings.host}:{self.site_port}"
                log.info("HTTP actions on %s", where)

        if self.gateway.app.http is not None:
            await self._listen_site(site)
        return site, self.gateway.on_app_reloaded(follow_routes)

    async def _listen_site(self, site: SiteServer) -> None:
        host, port = self.settings.host, self.settings.site_port
        try:
            self.site_port = await site.start(host, port)
        except OSError as exc:
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            reason = f"cannot listen on {host}:{port} for HTTP actions ({why}); "
            raise OSError(exc.errno, reason + "set site_port or stop the process using it") from exc

    def _guard(self) -> ConnectionGuard:
        guard = self.server.guard
        assert guard is not None  # the "http" step started the server
        return guard

    async def _start_watcher(self) -> asyncio.Task[None] | None:
        if self._while_serving is None:
            return None
        return asyncio.create_task(self._while_serving(self.gateway), name="outpost-watcher")

    async def _start_renewal(self) -> asyncio.Task[None] | None:
        if self.tls is None:
            return None
        broker = self._broker

        async def renewed() -> None:
            if broker is not None:  # Mosquitto rereads its certificate on a SIGHUP
                await broker.reload()

        renewal = keep_renewed(self.settings, self.tls, renewed)
        return asyncio.create_task(renewal, name="outpost-tls-renewal")

    async def _start_discovery(self) -> tuple[Discovery, Callable[[], None]] | None:
        """The gateway announced on the LAN, kept in step with its addresses and with the
        HTTP actions' port an ``outpost dev`` reload opens; None when ``discovery`` is
        off or the API listens where only this machine reaches it. A failure to announce
        is a warning (``gateway.discovery``): the gateway serves all the same."""
        settings = self.settings
        if not settings.discovery:
            return None
        # Imported here: python-zeroconf is ~80 ms of start a gateway without it saves.
        from gateway.discovery import WILDCARDS, Discovery, lan_addresses

        if settings.host not in WILDCARDS and not lan_addresses(settings.host):
            log.info(
                "not announced on the LAN: host %s is no address a LAN peer reaches "
                '(loopback, or a name); host = "0.0.0.0" serves the LAN',
                settings.host,
            )
            return None
        discovery = Discovery(
            self._discovery_plan, check_interval_s=settings.discovery_check_interval_s
        )
        await discovery.start()

        async def follow_reload(app: App) -> None:  # ``outpost dev`` may open the site
            await discovery.refresh()

        return discovery, self.gateway.on_app_reloaded(follow_reload)

    def _discovery_plan(self) -> Plan | Unannounced:
        from gateway.discovery import gateway_plan

        settings = self.settings
        broker = self.mqtt_endpoint if self._broker is not None else None
        return gateway_plan(
            host=settings.host,
            name=settings.discovery_name or socket.gethostname(),
            gateway_id=self.gateway.store.gateway_id,
            api_port=self.port,
            site_port=self.site_port,
            mqtt_host=settings.mqtt_host,
            mqtt_port=broker.port if broker is not None else None,
            tls=settings.tls,
            mqtt_tls_port=settings.mqtt_tls_port if broker is not None else None,
        )

    async def _ready(self) -> None:
        if self._freeze:
            freeze_startup_objects()
        if self._on_ready is not None:
            self._on_ready(self)

    async def _notify_ready(self) -> tuple[Notifier, asyncio.Task[None] | None]:
        """READY=1 to systemd (calls are served by now), and the watchdog fed from the
        event loop when ``WatchdogSec=`` asks for it; no-ops outside systemd."""
        notifier = Notifier()
        notifier.send("READY=1", f"STATUS=serving on port {self.port}", f"MAINPID={os.getpid()}")
        interval = watchdog_interval_s()
        if interval is None or not notifier.enabled:
            return notifier, None
        feeding = asyncio.create_task(feed_watchdog(notifier, interval), name="outpost-watchdog")
        return notifier, feeding


async def _notify_stopping(started: tuple[Notifier, asyncio.Task[None] | None]) -> None:
    notifier, feeding = started
    notifier.send("STOPPING=1")
    await stop_feeding(feeding)


async def _stop_discovery(started: tuple[Discovery, Callable[[], None]] | None) -> None:
    if started is not None:
        discovery, unregister = started
        unregister()
        await discovery.close()


async def _stop_site(started: tuple[SiteServer, Callable[[], None]]) -> None:
    site, unregister = started
    unregister()
    await site.close()


def _with_bound_site_url(settings: Settings, bound_port: int) -> Settings:
    """``--port 0`` binds some free port; a ``site_url`` derived from host and port (not
    one the user set) then names the port bound, so ``ctx.storage.get_url`` and upload
    URLs reach this server."""
    scheme = "https" if settings.tls else "http"
    derived_for_zero = f"{scheme}://{url_host(settings.host)}:0"
    if settings.port != 0 or settings.site_url.rstrip("/") != derived_for_zero:
        return settings
    return replace(settings, site_url=f"{scheme}://{url_host(settings.host)}:{bound_port}")


async def _stop_bridge(bridge: Bridge | None) -> None:
    if bridge is not None:
        await bridge.close()


async def _stop_broker(started: tuple[ManagedBroker, Callable[[], None]] | None) -> None:
    if started is not None:
        broker, unregister = started
        unregister()
        await broker.stop()
