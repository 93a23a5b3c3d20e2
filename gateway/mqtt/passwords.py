"""Device passwords in Mosquitto 2's own password-file format, stored hashed only.

A line is ``username:$7$<iterations>$<salt>$<hash>``: ``$7$`` is PBKDF2-HMAC-SHA512,
salt and hash in standard base64 with padding (mosquitto_passwd(1), Mosquitto 2.0). The
broker verifies a CONNECT against the file itself, so the gateway never needs a password
back: it prints a new one once and keeps only the hash.

Iterations: Mosquitto 2.0's ``mosquitto_passwd`` writes 101 and the broker accepts any
count written in the line. We keep 101 because every password we store is generated here
with 192 random bits: brute force is hopeless at any iteration count, while each
count costs CPU on every device connect, and a Pi may see a whole fleet reconnect at once.

Files are written whole and atomically (temp file, fsync, rename, directory fsync), mode
0600: a crash leaves the old file or the new one, never half of one, and only the
gateway's user can read the hashes (decision 9: secrets live in the data directory).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path

from gateway.private_files import write_private_file

HASH_TAG = "7"  # Mosquitto's id for PBKDF2-HMAC-SHA512
ITERATIONS = 101  # mosquitto_passwd's default in 2.0 (see the module docstring)
SALT_BYTES = 12  # what mosquitto_passwd 2.0 generates
PASSWORD_BYTES = 24  # 192 bits of randomness, 32 URL-safe characters

# A username is a topic segment in the ACL (``%u``) and a key in the password file.
_FORBIDDEN_IN_USERNAME = frozenset("/+#%:\x00")


def check_username(name: str) -> str:
    """``name`` if it can be both a password-file key and a whole MQTT topic segment."""
    if not name:
        raise ValueError("an MQTT username (device ID) must not be empty")
    bad = sorted({ch for ch in name if ch in _FORBIDDEN_IN_USERNAME or ch.isspace()})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        raise ValueError(
            f"MQTT username (device ID) {name!r} contains {shown}: it must be usable as one "
            "topic segment, so '/', '+', '#', '%', ':' and whitespace are not allowed"
        )
    return name


def generate_password() -> str:
    """A new random device password (URL-safe text, 192 bits)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """``password`` hashed as Mosquitto stores it: ``$7$<iterations>$<salt>$<hash>``."""
    if iterations < 1:
        raise ValueError(f"PBKDF2 iterations must be at least 1, not {iterations}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"${HASH_TAG}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash; False for any other or malformed hash."""
    parsed = _parse_hash(encoded)
    if parsed is None:
        return False
    iterations, salt, expected = parsed
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(expected))
    return hmac.compare_digest(digest, expected)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse_hash(encoded: str) -> tuple[int, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != HASH_TAG or not parts[2].isdigit():
        return None
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except binascii.Error:
        return None
    iterations = int(parts[2])
    return (iterations, salt, expected) if iterations >= 1 and expected else None


def read_password_file(path: Path) -> dict[str, str]:
    """Username -> hash from a password file; empty when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, encoded = line.partition(":")
        if not sep or _parse_hash(encoded) is None:
            raise ValueError(f"{path}:{number}: not a 'username:$7$...' password line")
        entries[name] = encoded
    return entries


def password_file_text(entries: Mapping[str, str]) -> str:
    """The password file for username -> hash ``entries``, sorted by username."""
    lines = []
    for name in sorted(entries):
        check_username(name)
        if _parse_hash(entries[name]) is None:
            raise ValueError(f"the stored hash of {name!r} is not a Mosquitto $7$ hash")
        lines.append(f"{name}:{entries[name]}\n")
    return "".join(lines)


def write_password_file(path: Path, entries: Mapping[str, str]) -> None:
    """Replace the password file at ``path`` atomically with ``entries`` (mode 0600)."""
    write_private_file(path, password_file_text(entries))
