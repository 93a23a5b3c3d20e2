"""TLS for the API, HTTP actions and the managed broker, with a local CA.

``local_ca`` makes and keeps the CA and the server certificate (``cryptography`` only),
``names`` says which names the certificate carries, ``contexts`` turns settings into the
files and SSL contexts the servers and the commands use. Nothing here knows of aiohttp
or Mosquitto: they get paths and contexts.
"""

from typing import TYPE_CHECKING

from gateway.tls.contexts import (
    ServerTls,
    api_url,
    cert_files,
    client_context,
    local_ca_cert,
    server_context,
    server_tls,
    wants_tls,
)
from gateway.tls.files import CertFiles, tls_directory
from gateway.tls.names import server_names

if TYPE_CHECKING:
    from gateway.tls.local_ca import ensure_ca, ensure_server_cert


def __getattr__(name: str) -> object:
    """``ensure_ca`` and ``ensure_server_cert`` on first use: they load ``cryptography``
    (why: ``gateway.tls.files``)."""
    if name in ("ensure_ca", "ensure_server_cert"):
        from gateway.tls import local_ca

        return getattr(local_ca, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CertFiles",
    "ServerTls",
    "api_url",
    "cert_files",
    "client_context",
    "ensure_ca",
    "ensure_server_cert",
    "local_ca_cert",
    "server_context",
    "server_names",
    "server_tls",
    "tls_directory",
    "wants_tls",
]
