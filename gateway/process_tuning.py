"""Process-wide settings the service changes at start and puts back at stop: the GIL's
switch interval, the open-file limit, and startup objects frozen out of the collector
(``gateway.service`` runs them as its first and "ready" steps)."""

from __future__ import annotations

import contextlib
import gc
import logging
import resource
import sys

log = logging.getLogger("gateway.service")


# How long a thread waiting for the GIL lets the holder run before asking it to let go
# (CPython's default is 5 ms). The writer and the event loop hand the GIL back and forth
# on every SQLite call of a local write; while a backlog drains, the uplink's reader and
# encoder threads are also in the game, and each handoff could cost the writer up to a
# whole interval. bench/replication.py, 3 rounds of 300,000: ingest p99 while draining
# 9.2 ms at 5 ms, 7.2 ms at 1 ms, the drain rate unchanged.
SWITCH_INTERVAL_S = 0.001


async def shorten_switch_interval() -> float:
    """Set ``SWITCH_INTERVAL_S``; returns the interval found (restored at stop)."""
    found = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return found


async def raise_open_files_limit() -> tuple[int, int]:
    """Soft open-file limit up to the hard one (systemd's default soft limit is 1024,
    too few for a gateway holding many sockets); returns the limits found."""
    found = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, hard = found
    if soft == hard:
        return found
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # e.g. an unlimited hard limit the kernel caps
        log.warning("cannot raise the open-file limit from %d to %d (%s)", soft, hard, exc)
        return found
    log.debug("open-file limit raised from %d to %d", soft, hard)
    return found


async def restore_open_files_limit(found: tuple[int, int]) -> None:
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, found)


def freeze_startup_objects() -> None:
    """Keep what startup built (modules, the app, the store) out of every later garbage
    collection: a full collection scans every tracked object, and these ~100k never
    become garbage. With a thousand sockets open (bench/fanout.py) a full collection
    took ~250 ms before and ~125 ms after."""
    gc.collect()
    gc.freeze()
