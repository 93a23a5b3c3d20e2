"""The edge's replication step: the upstream key found, the uplink started.

The key is a secret (DESIGN decision 9): the file ``upstream_key`` in the data
directory, or the systemd credential of that name (``LoadCredential=upstream_key:...``
puts it in ``$CREDENTIALS_DIRECTORY``), which wins when both exist. It is registered
with ``gateway.redact`` for as long as the uplink runs and never formatted into a log
line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from yarl import URL

from gateway import redact
from gateway.errors import ConfigError
from gateway.gateway import Gateway
from gateway.replication.client import PushClient
from gateway.replication.edge_status import UplinkView, status_function
from gateway.replication.uplink import Uplink, schema_digest

log = logging.getLogger("gateway.replication")

KEY_FILENAME = "upstream_key"


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


async def start_uplink(
    gateway: Gateway, upstream_url: str, data_dir: Path, environ: Mapping[str, str]
) -> Uplink | None:
    """The started uplink, or None when ``upstream_url`` is empty (no replication).
    Either way ``_system/replication:status`` is installed (``outpost status``)."""
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
        return None
    shown = checked_url(upstream_url)
    key = find_upstream_key(data_dir, environ)
    redact.register_secret(key)
    uplink = Uplink(
        gateway.store,
        PushClient(
            upstream_url,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            request_timeout_s=settings.upstream_request_timeout_s,
        ),
        key=key,
        schema=lambda: schema_digest(gateway.app.schema),
    )
    view.upstream_url, view.uplink = shown, uplink
    await uplink.start()
    log.info(
        "replicating to %s as gateway %s (epoch %d)",
        shown,
        gateway.store.gateway_id,
        gateway.store.epoch,
    )
    return uplink


async def stop_uplink(uplink: Uplink | None) -> None:
    if uplink is not None:
        await uplink.close()
        redact.forget_secret(uplink.key)
