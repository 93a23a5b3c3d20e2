"""A hub's gateway keys: which edge gateways may push batches, and with which key.

The registry is ``<data dir>/replication/gateways`` (mode 0600, in a 0700 directory): one
``NAME SHA256-HEX`` line per gateway. NAME is exactly what the edge sends as ``gateway``
in a batch, its ``Store.gateway_id`` (a hex uuid; any name of letters, digits, ``.``,
``_`` and ``-`` is accepted, so a test or a hand-made edge may choose its own).

A key is 32 bytes from ``secrets`` (256 bits), shown once by ``outpost gateway add``.
Only its SHA-256 is stored: a slow hash (PBKDF2, scrypt) exists to stretch guessable
passwords, and a uniformly random 256-bit key cannot be guessed, so one SHA-256 makes a
stolen file useless while keeping the check per batch in microseconds.

Writers (``add``/``remove``) hold the directory's lock and replace the file by rename,
so a reader never sees half a file. The running hub checks the file's identity (inode,
size, mtime) before every batch and rereads it when it changed: a removed gateway is
refused from its next batch, with no signal and no restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import Final

from gateway.private_files import write_private_file

REGISTRY_DIR: Final = "replication"
REGISTRY_FILE: Final = "gateways"
KEY_BYTES: Final = 32
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def registry_path(data_dir: Path) -> Path:
    """``<data dir>/replication/gateways``."""
    return data_dir.absolute() / REGISTRY_DIR / REGISTRY_FILE


def check_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` can be a gateway's name in the registry."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a gateway name: use the edge's gateway id (letters, digits, "
            "'.', '_' and '-', starting with a letter or digit, at most 128 characters)"
        )


def generate_key() -> str:
    """A new random key (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(KEY_BYTES)


def hash_key(key: str) -> str:
    """What the registry stores of a key: its SHA-256 in hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def read_registry(path: Path) -> dict[str, str]:
    """``{name: key hash}``; empty if there is no file. ``ValueError`` names a bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, _, digest = line.strip().partition(" ")
        if not _NAME.fullmatch(name) or not _HEX_DIGEST.fullmatch(digest):
            raise ValueError(f"{path}:{number}: not a 'NAME SHA256-HEX' line")
        entries[name] = digest
    return entries


def write_registry(path: Path, entries: dict[str, str]) -> None:
    """Replace the registry atomically (0600, fsynced, renamed; ``private_files``)."""
    write_private_file(
        path, "".join(f"{name} {digest}\n" for name, digest in sorted(entries.items()))
    )


class KeyRing:
    """The running hub's view of the registry, reread whenever the file changes.

    Used from the writer thread (pushes) and reader threads (the status query): the
    state is one tuple replaced whole, and its contents are read after the stat that
    labels them, so a label is never newer than its contents (at worst, one reread more).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._state: tuple[tuple[int, int, int] | None, dict[str, str]] = (None, {})

    def verify(self, name: str, key: str) -> bool:
        """Whether ``key`` is the registered key of gateway ``name`` (constant time)."""
        digest = self._current().get(name)
        return digest is not None and hmac.compare_digest(digest, hash_key(key))

    def names(self) -> list[str]:
        """The registered gateways, sorted."""
        return sorted(self._current())

    def _current(self) -> dict[str, str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._state = (None, {})
            return {}
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        known, entries = self._state
        if identity != known:
            # A file that does not parse refuses everyone rather than keep stale keys.
            try:
                entries = read_registry(self.path)
            except (ValueError, OSError):
                entries = {}
            self._state = (identity, entries)
        return entries
