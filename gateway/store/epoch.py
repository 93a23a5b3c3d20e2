"""The replication epoch: which life of this store the outbox's seqs belong to.

The upstream keeps one high-water mark per (gateway id, epoch). A store that goes back
in time (a restored backup, an imported snapshot) or is copied (a cloned SD card, a
copied data directory) would hand out seqs the upstream has already seen for this
gateway, and the new entries would be taken for old ones and dropped. So the epoch
bumps, and the new seqs start a new mark:

- at every import (``outpost import``: ``Store.bump_epoch``);
- at open, when the store's fingerprint changed: the machine (``/etc/machine-id`` and,
  on a Raspberry Pi, the board's serial number, which a cloned SD card does not carry
  along) or the data directory (its resolved path, its inode, and that inode's
  generation where the file system tells it: a restored or copied directory is a new
  inode, but a deleted one's number is soon reused, and only the generation differs).
  The log says which part changed.

A restart changes none of these. A bump too many is harmless: the upstream starts a
new mark at whatever seq comes next, and nothing is re-sent that was acknowledged.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("gateway.store")

Fingerprint = dict[str, str]
FingerprintFn = Callable[[Path], Fingerprint]

_MACHINE_FILES = ("/etc/machine-id", "/proc/device-tree/serial-number")


def fingerprint(data_dir: Path) -> Fingerprint:
    """What identifies this copy of the store: the machine, the directory's path and inode."""
    machine = hashlib.sha256()
    for name in _MACHINE_FILES:
        try:
            machine.update(Path(name).read_bytes().strip(b"\x00\n "))
        except OSError:
            machine.update(b"-")
    resolved = Path(data_dir).resolve()
    found = {
        "machine": machine.hexdigest()[:32],
        "path": str(resolved),
        "inode": str(os.stat(resolved).st_ino),
    }
    generation = _inode_generation(resolved)
    if generation is not None:
        found["generation"] = generation
    return found


def _inode_generation(path: Path) -> str | None:
    """The directory inode's generation (``FS_IOC_GETVERSION``: ext4, btrfs, xfs...), which
    changes when a freed inode number is handed out again; None where there is none."""
    request = (2 << 30) | (struct.calcsize("l") << 16) | (ord("v") << 8) | 1  # _IOR('v', 1, long)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        answer = fcntl.ioctl(fd, request, bytes(8))
    except OSError:
        return None
    finally:
        os.close(fd)
    return str(struct.unpack_from("I", answer)[0])  # the kernel writes an int


def settle(conn: sqlite3.Connection, found: Fingerprint) -> int:
    """The epoch at open, bumped when the fingerprint changed (inside a transaction)."""
    epoch = int(_get(conn, "epoch") or "1")
    kept = _get(conn, "fingerprint")
    if kept is not None:
        before: Fingerprint = json.loads(kept)
        # A part the kept fingerprint lacks (made before it was looked at) is no change.
        changed = [part for part in sorted(found) if before.get(part, found[part]) != found[part]]
        if changed:
            epoch += 1
            log.warning(
                "the store at %s was copied, moved or restored (%s changed since the last "
                "start): replication epoch is now %d, so the upstream takes what follows as new",
                found.get("path"),
                ", ".join(changed),
                epoch,
            )
    _set(conn, "epoch", str(epoch))
    _set(conn, "fingerprint", json.dumps(found, sort_keys=True))
    return epoch


def bump(conn: sqlite3.Connection) -> int:
    """The epoch plus one, written (inside the caller's transaction)."""
    epoch = int(_get(conn, "epoch") or "1") + 1
    _set(conn, "epoch", str(epoch))
    return epoch


def _get(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
