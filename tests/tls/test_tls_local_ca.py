"""The local CA and its server certificate: made once, kept, issued again when needed."""

from __future__ import annotations

import datetime
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from gateway.config import Settings
from gateway.errors import TlsError
from gateway.tls import ensure_ca, ensure_server_cert, server_context, server_names
from gateway.tls.local_ca import (
    CA_VALID_DAYS,
    RENEW_BEFORE_DAYS,
    SERVER_VALID_DAYS,
    certificate_names,
)

NAMES = ["localhost", "127.0.0.1", "::1", "barn.local"]
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_need_makes_a_ten_year_ca_and_a_server_cert_for_the_names(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    files = ensure_server_cert(data, NAMES, now=NOW)
    assert files.ca_cert is not None
    ca, server = _cert(files.ca_cert), _cert(files.cert)
    assert ca.not_valid_after_utc - NOW == datetime.timedelta(days=CA_VALID_DAYS)
    assert server.not_valid_after_utc - NOW == datetime.timedelta(days=SERVER_VALID_DAYS)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server.verify_directly_issued_by(ca)
    assert certificate_names(server) == {"localhost", "127.0.0.1", "::1", "barn.local"}
    for path in (data, files.cert.parent):
        assert _mode(path) == 0o700
    for path in files.cert.parent.iterdir():
        assert _mode(path) == 0o600, path


def test_the_same_names_keep_the_certificate_and_the_ca_is_kept_always(tmp_path: Path) -> None:
    first = ensure_server_cert(tmp_path, NAMES, now=NOW)
    assert first.ca_cert is not None
    pem, ca_pem = first.cert.read_bytes(), first.ca_cert.read_bytes()
    again = ensure_server_cert(tmp_path, list(reversed(NAMES)), now=NOW)
    assert again.cert.read_bytes() == pem
    changed = ensure_server_cert(tmp_path, [*NAMES, "gw.farm.lan"], now=NOW)
    assert changed.cert.read_bytes() != pem
    assert "gw.farm.lan" in certificate_names(_cert(changed.cert))
    assert first.ca_cert.read_bytes() == ca_pem
    assert ensure_ca(tmp_path).read_bytes() == ca_pem


def test_a_certificate_near_its_end_is_issued_again(tmp_path: Path) -> None:
    pem = ensure_server_cert(tmp_path, NAMES, now=NOW).cert.read_bytes()
    still = NOW + datetime.timedelta(days=SERVER_VALID_DAYS - RENEW_BEFORE_DAYS - 1)
    assert ensure_server_cert(tmp_path, NAMES, now=still).cert.read_bytes() == pem
    late = NOW + datetime.timedelta(days=SERVER_VALID_DAYS - RENEW_BEFORE_DAYS + 1)
    renewed = _cert(ensure_server_cert(tmp_path, NAMES, now=late).cert)
    assert renewed.not_valid_after_utc - late == datetime.timedelta(days=SERVER_VALID_DAYS)


def test_a_server_key_that_is_not_the_certificates_is_replaced(tmp_path: Path) -> None:
    files = ensure_server_cert(tmp_path, NAMES, now=NOW)
    other = ensure_server_cert(tmp_path / "other", NAMES, now=NOW)
    files.key.write_bytes(other.key.read_bytes())  # a start cut between the two writes
    fixed = ensure_server_cert(tmp_path, NAMES, now=NOW)
    server_context(fixed)  # loads: the pair matches again


def test_a_ca_key_alone_is_made_a_certificate_again_and_a_damaged_ca_is_an_error(
    tmp_path: Path,
) -> None:
    ca_cert = ensure_ca(tmp_path)
    key = (ca_cert.parent / "ca.key").read_bytes()
    ca_cert.unlink()
    remade = ensure_ca(tmp_path)
    assert (remade.parent / "ca.key").read_bytes() == key
    (remade.parent / "ca.key").write_text("not a key")
    with pytest.raises(TlsError, match=r"ca\.key cannot be read .*restore"):
        ensure_server_cert(tmp_path, NAMES)


def test_the_names_come_from_the_settings(tmp_path: Path) -> None:
    machine = socket.gethostname().lower()
    settings = Settings(
        host="192.168.1.40",
        mqtt_host="0.0.0.0",
        discovery_name="Barn",
        site_url="https://gw.farm.lan:3210",
        allowed_hosts="proxy.farm.lan, .example.net, *",
    )
    names = server_names(settings)
    assert names[:3] == ["localhost", "127.0.0.1", "::1"]
    assert set(names) == {
        "localhost",
        "127.0.0.1",
        "::1",
        machine,
        f"{machine}.local",
        "barn",
        "barn.local",
        "gw.farm.lan",
        "192.168.1.40",
        "proxy.farm.lan",
    }
    # A DNS-SD instance name may hold spaces; no certificate can name it.
    assert "barn gateway" not in server_names(Settings(discovery_name="Barn Gateway"))


def test_a_client_trusting_the_ca_verifies_the_server_and_one_without_it_does_not(
    tmp_path: Path,
) -> None:
    files = ensure_server_cert(tmp_path, NAMES)
    context = server_context(files)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve_twice() -> None:
            for _ in range(2):
                conn, _ = listener.accept()
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.sendall(b"ok")
                except (ssl.SSLError, OSError):
                    pass  # the client without the CA hangs up during the handshake

        server = threading.Thread(target=serve_twice, name="tls-test-server")
        server.start()
        try:
            trusting = ssl.create_default_context(cafile=str(files.ca_cert))
            raw = socket.create_connection(("127.0.0.1", port))
            with trusting.wrap_socket(raw, server_hostname="barn.local") as tls:
                assert tls.recv(2) == b"ok"
            untrusting = ssl.create_default_context()
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                pytest.raises(ssl.SSLCertVerificationError),
            ):
                untrusting.wrap_socket(raw, server_hostname="localhost")
        finally:
            server.join(timeout=10)
