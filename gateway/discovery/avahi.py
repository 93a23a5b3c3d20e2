"""Handing the announcement to Avahi when ``avahi-daemon`` runs.

Two mDNS responders on one machine both answer on UDP 5353 and may defend the same
names against each other; Raspberry Pi OS runs ``avahi-daemon`` by default. So when it
runs, the gateway writes a static service file into ``/etc/avahi/services`` (which
Avahi watches and publishes at once) and removes it at stop, and starts no responder of
its own.

Whether Avahi runs is read from its pid file: present with a live process. The
socket ``/run/avahi-daemon/socket`` can outlive a crashed daemon, and asking D-Bus
would need a D-Bus client, a dependency for one yes-or-no question.

A service file outlives a ``kill -9`` of the gateway (Avahi then announces a gateway
that does not answer until the next start rewrites or the stop removes it): its name
carries the gateway id, so a restart replaces its own file and never another gateway's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from gateway.discovery.records import Announcement

PID_FILE = Path("/run/avahi-daemon/pid")
SERVICES_DIR = Path("/etc/avahi/services")


def avahi_running(pid_file: Path = PID_FILE) -> bool:
    """True when ``pid_file`` names a live process."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, owned by another user (avahi runs as its own)
    except OSError:
        return False
    return True


def service_file_name(gateway_id: str) -> str:
    """``outpost-<first 12 of the gateway id>.service``: one file per gateway."""
    return f"outpost-{gateway_id[:12]}.service"


def service_file_text(name: str, announcements: Sequence[Announcement]) -> str:
    """Avahi's service-group XML (``avahi.service(5)``): every announcement under the
    one instance ``name``."""
    lines = [
        '<?xml version="1.0" standalone="no"?>',
        '<!DOCTYPE service-group SYSTEM "avahi-service.dtd">',
        "<!-- Written by Outpost while it runs; removed when it stops. -->",
        "<service-group>",
        f"  <name>{escape(name)}</name>",
    ]
    for item in announcements:
        lines += ["  <service>", f"    <type>{item.kind}</type>", f"    <port>{item.port}</port>"]
        lines += [f"    <txt-record>{escape(f'{k}={v}')}</txt-record>" for k, v in item.txt.items()]
        lines.append("  </service>")
    lines.append("</service-group>")
    return "\n".join(lines) + "\n"


@dataclass
class AvahiServiceFile:
    """The service file of one gateway: ``write`` publishes it, ``close`` removes it."""

    path: Path
    text: str
    closed: bool = False

    def write(self) -> None:
        """Replace the file in one rename, so Avahi never reads half of it."""
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            partial.write_text(self.text, encoding="utf-8")
            partial.chmod(0o644)  # avahi-daemon reads it as its own user
            partial.replace(self.path)
        except OSError:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise

    async def close(self) -> None:
        """Remove the file (Avahi sends the goodbyes); a second call does nothing."""
        if self.closed:
            return
        self.closed = True
        self.path.unlink(missing_ok=True)
