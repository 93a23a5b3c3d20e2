"""The served certificate kept current while the gateway runs for years.

``cert_files`` issues the local CA's server certificate again when its names change or
it nears its end (``local_ca``), but only when it is called: at start. A gateway left
running longer than the certificate lives (825 days) would present an expired one, and
a certificate of the user's own (``tls_cert``) renewed in place by their tooling would
not be picked up. So once a day ``keep_renewed`` looks again; when the file changed, it
loads the pair into the context the API and HTTP actions listen with (new handshakes
present it, open connections keep theirs) and calls ``on_renewed`` (the managed broker
rereads its files on a SIGHUP). A failed look is a warning: the certificate served
stays.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Final

from gateway.config import Settings
from gateway.errors import ConfigError, TlsError
from gateway.tls.contexts import ServerTls, cert_files
from gateway.tls.files import CertFiles

log = logging.getLogger("gateway.tls")

CHECK_INTERVAL_S: Final = 24 * 3600.0


async def keep_renewed(
    settings: Settings,
    served: ServerTls,
    on_renewed: Callable[[], Awaitable[None]],
    *,
    interval_s: float = CHECK_INTERVAL_S,
) -> None:
    """Every ``interval_s``: the certificate ``settings`` call for, loaded when it is not
    the one served. Runs until cancelled."""
    current = await asyncio.to_thread(served.files.cert.read_bytes)
    while True:
        await asyncio.sleep(interval_s)
        try:
            files, pem = await asyncio.to_thread(_look, settings)
            if pem == current:
                continue
            if served.context is not None:  # on the loop: its handshakes use the context
                served.context.load_cert_chain(files.cert, files.key)
        except (OSError, ssl.SSLError, ConfigError, TlsError) as exc:
            log.warning("checking the TLS certificate failed (the one served stays): %s", exc)
            continue
        current = pem
        await on_renewed()
        log.info("serving a renewed TLS certificate (%s)", files.cert)


def _look(settings: Settings) -> tuple[CertFiles, bytes]:
    files = cert_files(settings)  # the local CA's: issued again when due
    return files, files.cert.read_bytes()
