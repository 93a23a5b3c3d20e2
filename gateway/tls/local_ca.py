"""The gateway's local certificate authority and the server certificate it signs.

Made on first need in ``<data dir>/tls/`` (0700): ``ca.key`` and ``ca.crt``, kept ten
years, are what clients trust (``outpost tls ca`` prints ``ca.crt``); ``server.key`` and
``server.crt`` are what the API, HTTP actions and the broker's TLS listener present.
Every file is 0600 (``private_files``): a key must be, and the certificates are no
one else's business either. The CA's key never leaves this directory.

The server certificate is issued again, by the same CA (clients keep trusting it), when
the names it must carry change (a new host name, ``discovery_name`` or ``site_url``),
when it nears its end, or when it is not the CA's (the CA was replaced by hand). Its
validity is 825 days, the most Apple's clients accept for any TLS server certificate
(support.apple.com/HT210176); a running gateway looks again at each start.

Keys are ECDSA P-256: a Pi signs a handshake with one in well under a millisecond
(an RSA-2048 signature takes ~10 ms on a Pi 3), and every client we serve (OpenSSL 1.1+
in Mosquitto and Python, Node, browsers, rustls in the PyPI client) speaks it.
The ``cryptography`` package only: nothing here knows of a server.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.errors import TlsError
from gateway.private_files import DIR_MODE, files_lock, write_private_file
from gateway.tls.files import (
    CA_CERT_NAME,
    CA_KEY_NAME,
    SERVER_CERT_NAME,
    SERVER_KEY_NAME,
    CertFiles,
    tls_directory,
)

CA_VALID_DAYS: Final = 3650
SERVER_VALID_DAYS: Final = 825
# Issued again once this close to its end: a gateway restarted at least monthly (an
# upgrade, a reboot) never serves an expired certificate.
RENEW_BEFORE_DAYS: Final = 30
# Backdated so a client whose clock is a little behind accepts a fresh certificate.
BACKDATE: Final = datetime.timedelta(hours=1)

Key = ec.EllipticCurvePrivateKey


def _private_directory(data_dir: Path) -> Path:
    """``tls_directory``, made 0700 (and the data directory too, when it is new)."""
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    directory = tls_directory(data_dir)
    directory.mkdir(mode=DIR_MODE, exist_ok=True)
    os.chmod(directory, DIR_MODE)  # the umask masks mkdir's mode; an older one may be looser
    return directory


def ensure_ca(data_dir: Path, *, now: datetime.datetime | None = None) -> Path:
    """The local CA's certificate file, the CA made first if there is none."""
    directory = _private_directory(data_dir)
    with files_lock(directory):
        _load_or_make_ca(directory, now or _now())
    return directory / CA_CERT_NAME


def ensure_server_cert(
    data_dir: Path, names: Iterable[str], *, now: datetime.datetime | None = None
) -> CertFiles:
    """The server certificate for ``names`` (host names and IP addresses), signed by
    the local CA; issued (the CA made first) unless the one on disk still fits."""
    wanted = subject_alt_names(names)
    directory = _private_directory(data_dir)
    moment = now or _now()
    with files_lock(directory):
        ca_key, ca_cert = _load_or_make_ca(directory, moment)
        files = CertFiles(
            directory / SERVER_CERT_NAME, directory / SERVER_KEY_NAME, directory / CA_CERT_NAME
        )
        if not _fits(files, ca_cert, wanted, moment):
            _issue(files, ca_key, ca_cert, wanted, moment)
    return files


def subject_alt_names(names: Iterable[str]) -> x509.SubjectAlternativeName:
    """The SAN extension of ``names``: IP literals as addresses, the rest as DNS names."""
    entries: dict[str, x509.GeneralName] = {}
    for raw in names:
        name = raw.strip().lower().rstrip(".").strip("[]")
        if not name:
            continue
        try:
            entries[name] = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            entries[name] = x509.DNSName(name)
    return x509.SubjectAlternativeName(sorted(entries.values(), key=_sort_key))


def _sort_key(entry: x509.GeneralName) -> tuple[str, str]:
    return (type(entry).__name__, str(entry.value))


def certificate_names(cert: x509.Certificate) -> set[str]:
    """The DNS names and IP addresses a certificate is for."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(entry.value) for entry in san}


# --- the CA ---------------------------------------------------------------------------


def _load_or_make_ca(directory: Path, now: datetime.datetime) -> tuple[Key, x509.Certificate]:
    key_path, cert_path = directory / CA_KEY_NAME, directory / CA_CERT_NAME
    if cert_path.exists():
        return _load_ca(key_path, cert_path)
    if key_path.exists():  # a start cut between the two files: the key is the CA
        key = _load_key(key_path)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        write_private_file(key_path, _key_pem(key))
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Outpost"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Outpost local CA ({_machine()})"),
        ]
    )
    public = key.public_key()
    cert = (
        _builder(name, name, public, now, CA_VALID_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key went first: a certificate without its key would be a CA that can sign
    # nothing, and a key alone is made a certificate again (above).
    write_private_file(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())
    return key, cert


def _load_ca(key_path: Path, cert_path: Path) -> tuple[Key, x509.Certificate]:
    """The CA on disk; a half-made or damaged one is an error, never replaced silently
    (every client that trusts it would stop trusting the gateway)."""
    key = _load_key(key_path)
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise _damaged(cert_path, exc) from None
    if key.public_key() != cert.public_key():
        raise TlsError(
            f"{key_path} is not the key of {cert_path}; restore the pair from a backup, or "
            "remove the directory to make a new CA (clients must then trust the new one)"
        )
    return key, cert


def _load_key(path: Path) -> Key:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise _damaged(path, exc) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise _damaged(path, ValueError("not an elliptic-curve key"))
    return key


def _damaged(path: Path, exc: Exception) -> TlsError:
    return TlsError(
        f"the local CA's {path} cannot be read ({exc}); restore {CA_KEY_NAME} and "
        f"{CA_CERT_NAME} from a backup, or remove {path.parent} to make a new CA (clients "
        "must then trust the new one)"
    )


# --- the server certificate ------------------------------------------------------------


def _fits(
    files: CertFiles,
    ca_cert: x509.Certificate,
    wanted: x509.SubjectAlternativeName,
    now: datetime.datetime,
) -> bool:
    """Whether the server certificate on disk may keep serving: whole (its key beside
    it), the CA's, for exactly the wanted names, and not near its end."""
    cert = _read_cert(files.cert)
    try:
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    if cert is None or key.public_key() != cert.public_key() or cert.issuer != ca_cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if certificate_names(cert) != {str(entry.value) for entry in wanted}:
        return False
    return cert.not_valid_after_utc - now > datetime.timedelta(days=RENEW_BEFORE_DAYS)


def _issue(
    files: CertFiles,
    ca_key: Key,
    ca_cert: x509.Certificate,
    wanted: x509.SubjectAlternativeName,
    now: datetime.datetime,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Outpost ({_machine()})")])
    public = key.public_key()
    cert = (
        _builder(subject, ca_cert.subject, public, now, SERVER_VALID_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(wanted, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    # The key first, then the certificate: a reader that finds the new certificate finds
    # its key too (the broker and the server load the pair at their start).
    write_private_file(files.key, _key_pem(key))
    write_private_file(files.cert, cert.public_bytes(serialization.Encoding.PEM).decode())


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _read_cert(path: Path) -> x509.Certificate | None:
    """The certificate in ``path``, or None when it is missing or unreadable (it is
    issued again: only the CA is worth keeping)."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _key_pem(key: Key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _machine() -> str:
    return socket.gethostname() or "gateway"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
