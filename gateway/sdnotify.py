"""systemd's notify protocol, from the standard library: READY, the watchdog, STOPPING.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a datagram socket: a path, or an
abstract name written ``@name``) and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` (and
``WATCHDOG_PID``, the process it is meant for). Outpost says ``READY=1`` once calls are
served, feeds the watchdog from its event loop (so a loop blocked for longer than
``WatchdogSec`` stops the feeding and systemd restarts the process), and says
``STOPPING=1`` when it begins to stop. Without ``NOTIFY_SOCKET`` (a terminal, a test,
Docker) every call here is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends state lines to systemd's notify socket (none: does nothing)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket's name starts with a NUL byte, which the variable writes "@".
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._failed = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str) -> bool:
        """Send ``lines`` (``"READY=1"``, ...) as one datagram; whether it went."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never wait: a datagram socket whose reader lags blocks the sender, and
                # the sender is the event loop.
                sock.setblocking(False)
                sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._failed:  # once: a watchdog ping every few seconds would flood the log
                log.warning("could not notify systemd at %r: %s", self.address, exc)
                self._failed = True
            return False
        return True


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to feed systemd's watchdog (half its timeout, as sd_watchdog_enabled
    advises), or None when no watchdog is set for this process."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1_000_000 / 2


async def feed_watchdog(notifier: Notifier, interval_s: float) -> None:
    """Send ``WATCHDOG=1`` every ``interval_s`` from the event loop, until cancelled: a
    loop that stops turning stops the feeding."""
    while True:
        notifier.send("WATCHDOG=1")
        await asyncio.sleep(interval_s)


async def stop_feeding(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
