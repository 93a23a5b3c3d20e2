"""Device passwords in Mosquitto's $7$ format, and the password file written atomically."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest

from gateway.mqtt.passwords import (
    ITERATIONS,
    SALT_BYTES,
    generate_password,
    hash_password,
    read_password_file,
    verify_password,
    write_password_file,
)

# Made by Debian's mosquitto_passwd 2.0.11 (`mosquitto_passwd -c -b FILE alice s3cret`).
MOSQUITTO_MADE = (
    "$7$101$idMFVGYOQtBEwrSh$MfBNCg7BQ5jhZ56aVr896Kr0VNyXpEGub7WEOgVIGuIanOyAa0aWkddVUO033oNO"
    "/J7TC3urSxhJJMBSTVtodw=="
)


def test_hash_and_verify_round_trip() -> None:
    password = generate_password()
    encoded = hash_password(password)
    assert verify_password(password, encoded)
    assert not verify_password(password + "x", encoded)
    assert hash_password(password) != encoded  # a fresh salt each time


def test_the_hash_has_mosquittos_layout() -> None:
    salt = bytes(range(SALT_BYTES))
    encoded = hash_password("pw", salt=salt)
    tag, iterations, salt_b64, digest_b64 = encoded.split("$")[1:]
    assert (tag, int(iterations)) == ("7", ITERATIONS)
    assert base64.b64decode(salt_b64) == salt
    assert base64.b64decode(digest_b64) == hashlib.pbkdf2_hmac("sha512", b"pw", salt, ITERATIONS)


def test_a_hash_made_by_mosquitto_passwd_verifies() -> None:
    assert verify_password("s3cret", MOSQUITTO_MADE)
    assert not verify_password("secret", MOSQUITTO_MADE)


@pytest.mark.parametrize(
    "encoded", ["", "plain", "$6$abc$def", "$7$x$AAAA$AAAA", "$7$101$!!$AAAA", "$7$0$AAAA$AAAA"]
)
def test_a_malformed_hash_never_verifies(encoded: str) -> None:
    assert not verify_password("anything", encoded)


def test_generated_passwords_are_long_and_distinct() -> None:
    passwords = {generate_password() for _ in range(100)}
    assert len(passwords) == 100
    assert all(len(p) >= 32 and ":" not in p for p in passwords)


def test_password_file_round_trip_is_private(tmp_path: Path) -> None:
    path = tmp_path / "passwords"
    entries = {"dev-b": hash_password("b"), "dev-a": MOSQUITTO_MADE}
    write_password_file(path, entries)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_password_file(path) == entries
    assert path.read_text().splitlines()[0].startswith("dev-a:$7$101$")
    write_password_file(path, {"dev-a": MOSQUITTO_MADE})  # replaces the whole file
    assert read_password_file(path) == {"dev-a": MOSQUITTO_MADE}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwords"]  # no temp file left


def test_reading_a_missing_file_is_empty_and_a_bad_line_is_refused(tmp_path: Path) -> None:
    assert read_password_file(tmp_path / "none") == {}
    bad = tmp_path / "bad"
    bad.write_text("dev-a:plaintext\n")
    with pytest.raises(ValueError, match="bad:1"):
        read_password_file(bad)


def test_a_bad_entry_is_refused_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "passwords"
    with pytest.raises(ValueError, match="MQTT username"):
        write_password_file(path, {"a/b": hash_password("x")})
    with pytest.raises(ValueError, match="not a Mosquitto"):
        write_password_file(path, {"dev-a": "plaintext"})
    assert not path.exists()
