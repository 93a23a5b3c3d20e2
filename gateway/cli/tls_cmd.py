"""``outpost tls ca [DIR]``: the local CA's certificate, for clients to trust.

Printed as PEM on stdout (``outpost tls ca > outpost-ca.crt``), its SHA-256 fingerprint
on stderr to compare on the client's side. ``DIR`` is the app folder (its settings say
where the data directory is) or the data directory itself. The CA is made when there is
none yet, so clients can be set up before the first start with ``tls = true``; but only
by the data directory's owner (the gateway's user): a CA made by root would be one the
gateway cannot read.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway.cli.common import CommandError, settings_for
from gateway.store.layout import DB_FILENAME
from gateway.tls import local_ca_cert, tls_directory
from gateway.tls.files import CA_CERT_NAME


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    tls = commands.add_parser("tls", help="the local CA that signs the gateway's certificate")
    actions = tls.add_subparsers(dest="action", metavar="ACTION", required=True)
    ca = actions.add_parser(
        "ca",
        parents=[common],
        help="print the local CA's certificate (PEM) for clients to trust",
        description=(
            "Print the certificate of the gateway's local CA, which signs the certificate of "
            "the API (tls = true) and of the broker's TLS listener (mqtt_tls_port); the CA is "
            "made if there is none yet. Clients trust it: NODE_EXTRA_CA_CERTS=FILE for Node, "
            "SSL_CERT_FILE=FILE for Python, cafile for MQTT clients."
        ),
    )
    ca.add_argument(
        "dir", metavar="DIR", nargs="?", default=".", type=Path, help="app folder or data directory"
    )
    ca.set_defaults(handler=print_ca)


def print_ca(args: argparse.Namespace) -> int:
    # cryptography only for this command: every other one (serve) starts without it
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from gateway.tls.local_ca import ensure_ca

    data_dir = _data_dir(args)
    cert = tls_directory(data_dir) / CA_CERT_NAME
    if not cert.exists():
        _check_owner(data_dir)
        cert = ensure_ca(data_dir)
    pem = cert.read_bytes()
    fingerprint = x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256())
    sys.stdout.write(pem.decode())
    print(
        f"outpost: the local CA of {data_dir}, SHA-256 {fingerprint.hex(':').upper()}",
        file=sys.stderr,
    )
    return 0


def _data_dir(args: argparse.Namespace) -> Path:
    """``DIR`` itself when it is a data directory (it holds a store or a CA), else the
    data directory of the app in it."""
    given: Path = args.dir
    if args.data_dir is None and (
        (given / DB_FILENAME).exists() or (tls_directory(given) / CA_CERT_NAME).exists()
    ):
        return given.absolute()
    settings = settings_for(args, given)
    if settings.tls_cert:
        raise CommandError(
            f"tls_cert is set ({settings.tls_cert}): the gateway serves your certificate, "
            "and clients trust the CA that signed it, not a local one"
        )
    return local_ca_cert(settings).parent.parent


def _check_owner(data_dir: Path) -> None:
    """Only the data directory's owner makes its CA (root would make one it cannot read)."""
    try:
        owner = data_dir.stat().st_uid
    except FileNotFoundError:
        return  # a new data directory: ours
    if owner != os.geteuid():
        raise CommandError(
            f"{data_dir} has no local CA yet, and belongs to another user: run this as that "
            "user (sudo -u outpost outpost tls ca ...) or start the gateway with tls = true"
        )
