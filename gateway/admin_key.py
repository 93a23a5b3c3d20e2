"""The admin key's file: made by the server on first start, read by the local CLI.

One place for both, so that ``outpost run`` finds the key exactly where ``outpost
serve`` keeps it (``<data dir>/admin_key``, mode 0600). Standard library only: the CLI
reads it without importing aiohttp. The key is a secret (DESIGN decision 9): never logged.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Final

log = logging.getLogger("gateway.admin_key")

ADMIN_KEY_FILENAME: Final = "admin_key"
_KEY_PREFIX: Final = "outpost-"


def admin_key_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / ADMIN_KEY_FILENAME


def read_admin_key(data_dir: Path | str) -> str | None:
    """The key in ``data_dir``, or None when there is none yet; a file readable by
    others is tightened to 0600 (with a warning)."""
    path = admin_key_path(data_dir)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    if path.stat().st_mode & 0o077:
        log.warning("%s was readable by others; its mode is now 0600", path)
        path.chmod(0o600)
    return text


def load_or_create_admin_key(data_dir: Path | str) -> str:
    """The gateway's admin key, created (mode 0600) on first use."""
    path = admin_key_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = read_admin_key(data_dir)
    if key is not None:
        return key
    key = _KEY_PREFIX + secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        existing = read_admin_key(data_dir)
        if existing is None:
            raise
        return existing
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
        out.flush()
        os.fsync(out.fileno())
    log.info("created a new admin key in %s", path)
    return key
