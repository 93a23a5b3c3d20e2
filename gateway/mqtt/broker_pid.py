"""The managed broker's pidfile and lock: how other processes find and reach it safely.

The supervisor writes ``<data dir>/mosquitto/mosquitto.pid`` when it spawns Mosquitto.
Two kinds of reader use it: the next start (a gateway killed with ``kill -9`` may leave
a broker behind if the parent-death signal could not fire, and that broker holds the
port) and ``outpost device add/remove`` (which SIGHUPs a running broker so that it
rereads the password file). A PID outlives its process and may be reused, so nothing
is signalled on the pidfile's word alone: ``/proc/PID/cmdline`` must show a
``mosquitto`` started on *this* data directory's config.

The lock (``flock`` on ``<data dir>/mosquitto/lock``) serialises writers of the
password file: two ``outpost device add`` at once, or one beside the supervisor writing
the bridge's entry, would otherwise each read the file, add their line and overwrite
the other's.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from gateway.mqtt.broker_files import BROKER_DIR_NAME, CONFIG_NAME

PID_FILE_NAME = "mosquitto.pid"
PROGRAM = "mosquitto"


def broker_directory(data_dir: Path) -> Path:
    """``<data dir>/mosquitto``, absolute (the config names its files by absolute path)."""
    return data_dir.absolute() / BROKER_DIR_NAME


def write_pid(directory: Path, pid: int) -> None:
    """Record the running broker's PID (a plain write: a torn file is read as no PID)."""
    (directory / PID_FILE_NAME).write_text(f"{pid}\n", encoding="ascii")


def read_pid(directory: Path) -> int | None:
    """The PID in the pidfile, or None when there is none or it is not a number."""
    try:
        text = (directory / PID_FILE_NAME).read_text(encoding="ascii")
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return int(text) if text.strip().isdigit() and int(text) > 1 else None


def remove_pid(directory: Path, pid: int) -> None:
    """Remove the pidfile if it still names ``pid`` (a newer broker's stays)."""
    if read_pid(directory) == pid:
        (directory / PID_FILE_NAME).unlink(missing_ok=True)


def is_our_broker(pid: int, directory: Path) -> bool:
    """Whether ``pid`` is a live Mosquitto started on the config in ``directory``.

    A zombie has an empty command line and counts as gone. ``setpriv`` before it has
    executed Mosquitto (a moment after the spawn) already has the same arguments.
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no such process, or hidden from us (then not ours either)
        return False
    argv = [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
    config = str(directory / CONFIG_NAME)
    has_program = any(os.path.basename(arg) == PROGRAM for arg in argv)
    return has_program and any(a == "-c" and b == config for a, b in zip(argv, argv[1:]))


def signal_broker(data_dir: Path, signum: signal.Signals) -> int | None:
    """Send ``signum`` to this data directory's running broker; its PID, or None if none runs."""
    directory = broker_directory(data_dir)
    pid = read_pid(directory)
    if pid is None or not is_our_broker(pid, directory):
        return None
    try:
        os.kill(pid, signum)
    except ProcessLookupError:  # it exited between the check and the signal
        return None
    return pid
