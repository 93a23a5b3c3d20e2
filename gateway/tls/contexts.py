"""The TLS a gateway serves with, and the trust its own commands call it with.

``server_tls`` is the service's "tls" step: the certificate files (the user's
``tls_cert``/``tls_key``, else the local CA's server certificate, issued on first need
or when its names change) and, for ``tls``, the server context the API and HTTP actions
listen with. ``client_context`` is what ``outpost status`` and ``outpost run`` verify
the gateway with: the local CA, or the system's CAs plus the user's certificate.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Settings
from gateway.config_file import url_host
from gateway.errors import ConfigError
from gateway.tls.files import CA_CERT_NAME, CertFiles, tls_directory
from gateway.tls.names import server_names


@dataclass(frozen=True)
class ServerTls:
    """The certificate files, and the context HTTPS listens with (None without ``tls``:
    only the broker's TLS listener wanted the files)."""

    files: CertFiles
    context: ssl.SSLContext | None


def wants_tls(settings: Settings) -> bool:
    """Whether anything of this gateway serves TLS (the API or the broker)."""
    return settings.tls or settings.mqtt_tls_port > 0


def server_tls(settings: Settings) -> ServerTls | None:
    """The files and context this gateway serves TLS with; None when it serves none.
    Blocking (it may make keys): call it off the event loop."""
    if not wants_tls(settings):
        return None
    files = cert_files(settings)
    context = server_context(files)  # for the broker too: a bad pair fails the start here
    return ServerTls(files, context if settings.tls else None)


def cert_files(settings: Settings) -> CertFiles:
    """The user's certificate, or the local CA's server certificate for this gateway's
    names (issued when missing, for other names, or near its end)."""
    if settings.tls_cert:
        return CertFiles(Path(settings.tls_cert), Path(settings.tls_key))
    from gateway.tls.local_ca import ensure_server_cert  # cryptography: only when used

    return ensure_server_cert(Path(settings.data_dir), server_names(settings))


def server_context(files: CertFiles) -> ssl.SSLContext:
    """A TLS 1.2+ server context presenting ``files``; a pair of the user's that cannot be
    loaded is a ``ConfigError`` naming the files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"tls_cert {files.cert} and tls_key {files.key} cannot be used ({why}): each must "
            "be a readable PEM file, the key unencrypted and the certificate's own"
        ) from None
    return context


def local_ca_cert(settings: Settings) -> Path:
    """The local CA's certificate file of this gateway (which may not exist yet)."""
    return tls_directory(Path(settings.data_dir)) / CA_CERT_NAME


def api_url(settings: Settings) -> str:
    """The URL this machine reaches the gateway's API at (``https://`` with ``tls``)."""
    scheme = "https" if settings.tls else "http"
    return f"{scheme}://{url_host(settings.host)}:{settings.port}"


def client_context(settings: Settings) -> ssl.SSLContext:
    """What a command on this machine verifies the gateway with: the local CA when it
    exists; the system's CAs, and the user's certificate itself (a self-signed one),
    with ``tls_cert``."""
    context = ssl.create_default_context()
    trusted = Path(settings.tls_cert) if settings.tls_cert else local_ca_cert(settings)
    try:
        context.load_verify_locations(cafile=trusted)
    except (OSError, ssl.SSLError):
        pass  # not there (no TLS yet) or not readable: the system's CAs decide
    return context
