"""Where the TLS files live and what they are called: what every user of them needs,
without ``cryptography`` (``local_ca`` imports it; only a gateway that serves TLS, or a
command that makes the CA, loads it: ~25 ms and a few MB at every start otherwise)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

TLS_DIR_NAME: Final = "tls"
CA_KEY_NAME: Final = "ca.key"
CA_CERT_NAME: Final = "ca.crt"
SERVER_KEY_NAME: Final = "server.key"
SERVER_CERT_NAME: Final = "server.crt"


@dataclass(frozen=True)
class CertFiles:
    """A server's certificate and key files, and the CA certificate clients trust
    (None for a certificate of the user's own)."""

    cert: Path
    key: Path
    ca_cert: Path | None = None


def tls_directory(data_dir: Path) -> Path:
    """Where the local CA and the server certificate live."""
    return data_dir.absolute() / TLS_DIR_NAME
