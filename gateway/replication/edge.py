"""The edge's replication step: the upstream key found, the uplink and downlink started.

One owner for both links (``Links``): ``start_replication`` starts them, and
``stop_replication`` closes both, so nothing outlives the step. The downlink runs when
the app has ``.replicate("down")`` tables and this gateway is not a hub (a hub owns
them). ``upstream_kind`` picks the upstream's function paths (``outpost`` or ``convex``).

The key is a secret (DESIGN decision 9): the file ``upstream_key`` in the data
directory, or the systemd credential of that name (``LoadCredential=upstream_key:...``
puts it in ``$CREDENTIALS_DIRECTORY``), which wins when both exist. It is registered
with ``gateway.redact`` for as long as the uplink runs and never formatted into a log
line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yarl import URL

from gateway import redact
from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.gateway import Gateway
from gateway.replication.batch import CONVEX_PUSH_PATH, PUSH_PATH
from gateway.replication.client import PushClient
from gateway.replication.downlink import Downlink
from gateway.replication.downlink_contract import CONVEX_CHANGES_PATH, HUB_CHANGES_PATH
from gateway.replication.edge_status import UplinkView, status_function
from gateway.replication.uplink import Sender, Uplink, schema_digest
from gateway.replication.worker_link import WorkerSender
from gateway.store import Store

log = logging.getLogger("gateway.replication")

KEY_FILENAME = "upstream_key"
# The push mutation and the changes query of each ``upstream_kind``.
PATHS = {
    "outpost": (PUSH_PATH, HUB_CHANGES_PATH),
    "convex": (CONVEX_PUSH_PATH, CONVEX_CHANGES_PATH),
}


@dataclass
class Links:
    """The running links (None: not running); closed together by ``stop_replication``."""

    uplink: Uplink | None = None
    downlink: Downlink | None = None
    key: str = ""


def _digest_of(schema: Callable[[], Any]) -> Callable[[], str]:
    """``schema_digest`` of the app's schema now, worked out again only when the schema
    object changes (``outpost dev`` reloads), not for every batch."""
    memo: list[Any] = [None, None]  # the schema, its digest

    def digest() -> str:
        current = schema()
        if memo[1] is None or memo[0] is not current:
            memo[:] = [current, schema_digest(current)]
        return str(memo[1])

    return digest


def _sender(store: Store, url: str, push_path: str, settings: Settings) -> PushClient | Sender:
    """Where batches are cut and pushed: the uplink's worker process, or this one."""
    connect_s = settings.upstream_connect_timeout_s
    request_s = settings.upstream_request_timeout_s
    if not settings.uplink_worker:
        return PushClient(
            url, path=push_path, connect_timeout_s=connect_s, request_timeout_s=request_s
        )
    return WorkerSender(
        store.path,
        url,
        path=push_path,
        connect_timeout_s=connect_s,
        request_timeout_s=request_s,
        replicated=lambda: store.catalog.replication,
    )


def find_upstream_key(data_dir: Path, environ: Mapping[str, str]) -> str:
    """The key's text; ``ConfigError`` saying where to put it when there is none."""
    places = []
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        places.append(Path(credentials) / KEY_FILENAME)
    places.append(Path(data_dir) / KEY_FILENAME)
    for place in places:
        try:
            key = place.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot read the upstream key {place}: {exc.strerror}") from exc
        if key:
            return key
    raise ConfigError(
        f"upstream_url is set but there is no upstream key: put it in {places[-1]} (mode "
        "0600), or give systemd the credential upstream_key (LoadCredential=); on an Outpost "
        "hub, `outpost gateway add <this gateway's id>` prints one"
    )


def checked_url(upstream_url: str) -> str:
    """The URL as it may be logged (without a user or password); ``ConfigError`` unless
    it is an absolute http(s) URL."""
    try:
        url = URL(upstream_url)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"upstream_url {upstream_url!r} is not a URL ({exc})") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            "upstream_url must be an http:// or https:// URL with a host, like "
            f"https://hub.example.net (got {url.scheme or 'no'} scheme, "
            f"{'host ' + url.host if url.host else 'no host'})"
        )
    return str(url.with_user(None))


async def start_replication(
    gateway: Gateway, upstream_url: str, data_dir: Path, environ: Mapping[str, str]
) -> Links:
    """The started links (none when ``upstream_url`` is empty: no replication). Either
    way ``_system/replication:status`` is installed (``outpost status``)."""
    view = UplinkView("", None)
    store, settings = gateway.store, gateway.settings
    # The quota applies only with an upstream (``Gateway`` opens the store so): without
    # one nothing drains the outbox, and "no limit" is what holds.
    limit = settings.outbox_max_bytes if settings.upstream_url else 0
    quota = {"maxBytes": float(limit), "overflow": settings.outbox_overflow}
    status = status_function(
        view, lambda: store.gateway_id, lambda: store.epoch, hub=settings.hub, quota=quota
    )
    gateway.runtime.install(status)
    if not upstream_url:
        return Links()
    shown = checked_url(upstream_url)
    key = find_upstream_key(data_dir, environ)
    redact.register_secret(key)
    push_path, changes_path = PATHS[settings.upstream_kind]
    links = Links(key=key)
    try:
        links.uplink = Uplink(
            store,
            _sender(store, upstream_url, push_path, settings),
            key=key,
            schema=_digest_of(lambda: gateway.app.schema),
        )
        view.upstream_url, view.uplink = shown, links.uplink
        await links.uplink.start()
        down = [t for t, d in sorted(store.catalog.replication.items()) if d == "down"]
        if down and not settings.hub:
            links.downlink = Downlink(
                store,
                upstream_url,
                key=key,
                tables=down,
                path=changes_path,
                connect_timeout_s=settings.upstream_connect_timeout_s,
            )
            view.downlink = links.downlink
            await links.downlink.start()
    except BaseException:
        await stop_replication(links)
        raise
    log.info(
        "replicating to %s as gateway %s (epoch %d)%s",
        shown,
        store.gateway_id,
        store.epoch,
        f", pulling {', '.join(down)}" if links.downlink is not None else "",
    )
    return links


async def stop_replication(links: Links) -> None:
    """Close the downlink, then the uplink (idempotent); forget the key."""
    try:
        if links.downlink is not None:
            await links.downlink.close()
        if links.uplink is not None:
            await links.uplink.close()
    finally:
        key, links.key = links.key, ""  # once: the redaction list counts registrations
        if key:
            redact.forget_secret(key)
