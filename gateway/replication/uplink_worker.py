"""The uplink's worker process: batches cut from the store file and pushed upstream.

Run as ``python -m gateway.replication.uplink_worker`` by ``worker_link.WorkerSender``;
it does the drain's heavy lifting (reading a batch, building and compressing its body,
the HTTP exchange) in a process of its own, at a low CPU priority. In the gateway's
process that work would share one GIL with local writes: on a one-core share a local
write waited behind it (bench/replication.py: ingest p99 while draining 2-3x idle).
Here the kernel schedules the two apart, and the gateway's threads come first.

The worker only reads the store (a read-only connection: WAL readers never block the
writer) and never moves the cursor: the gateway's uplink does, after each answer, so
the state machine (``uplink.py``) and every write stay in one process.

Protocol: JSON lines. The gateway writes the settings as the first line of stdin, then
requests; the worker answers on stdout, one line per request, tagged with the
request's ``id`` (the upstream key comes with each push's batch: through a pipe, never
in argv, which any user can list):

- ``{"id", "op": "cut", "after", "replicated"}`` -> ``{"id", "cut": {first, last, size,
  trusted, newest} | null}``; the worker keeps the cut's changes for its push.
- ``{"id", "op": "push", "first", "last", "batch"}`` -> ``{"id", "applied"}`` or
  ``{"id", "error": {"kind", "message", "applied"}}``.

The worker ends at the end of its stdin, and with the gateway (``PR_SET_PDEATHSIG``): a
gateway killed with ``kill -9`` leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import sqlite3
import sys
from collections import OrderedDict
from typing import Any, Final

from gateway.replication.client import (
    PushClient,
    ReplicationGap,
    Unauthorized,
    UplinkError,
    UpstreamUnavailable,
)
from gateway.replication.outbox import Cut, cut_after

log = logging.getLogger("gateway.replication")

# The worker's CPU priority: the gateway's own threads (local writes) come first.
NICE: Final = 19
# Cuts kept for their push; one never pushed (its push cancelled first) is forgotten.
_KEPT_CUTS: Final = 16
_PR_SET_PDEATHSIG: Final = 1
# A request line's longest: settings and batches' fields are small.
_LINE_LIMIT: Final = 1 << 20


def error_kind(exc: UplinkError) -> str:
    if isinstance(exc, ReplicationGap):
        return "gap"
    if isinstance(exc, Unauthorized):
        return "unauthorized"
    if isinstance(exc, UpstreamUnavailable):
        return "unavailable"
    return "refused"


def _die_with_parent() -> None:
    """Be killed when the gateway ends, however it ends (Linux; elsewhere stdin's end)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the gateway is already gone
        raise SystemExit(0)


class _Worker:
    def __init__(self, settings: dict[str, Any]) -> None:
        self._conn = sqlite3.connect(
            f"file:{settings['db']}?mode=ro", uri=True, isolation_level=None
        )
        self._conn.execute("PRAGMA query_only = ON")
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._client = PushClient(
            settings["url"],
            path=settings["path"],
            connect_timeout_s=settings["connect_timeout_s"],
            request_timeout_s=settings["request_timeout_s"],
        )
        self._caps = (int(settings["max_changes"]), int(settings["max_bytes"]))
        self._cuts: OrderedDict[tuple[int, int], Cut] = OrderedDict()
        self._out = sys.stdout.buffer

    def answer(self, reply: dict[str, Any]) -> None:
        self._out.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
        self._out.flush()

    def cut(self, request: dict[str, Any]) -> None:
        try:
            cut = self._read_cut(int(request["after"]), request["replicated"])
        except sqlite3.Error as exc:  # the gateway's uplink backs off and asks again
            log.warning("reading the outbox failed: %s", exc)
            message = f"the uplink worker could not read the outbox: {exc}"
            self.answer({"id": request["id"], "error": {"kind": "unavailable", "message": message}})
            return
        if cut is None:
            self.answer({"id": request["id"], "cut": None})
            return
        self._cuts[(cut.first, cut.last)] = cut
        while len(self._cuts) > _KEPT_CUTS:
            self._cuts.popitem(last=False)
        shape = {"first": cut.first, "last": cut.last, "size": cut.size_bytes}
        shape |= {"trusted": cut.clock_trusted, "newest": cut.newest}
        self.answer({"id": request["id"], "cut": shape})

    def _read_cut(self, after: int, replicated: dict[str, str]) -> Cut | None:
        self._conn.execute("BEGIN")  # one snapshot for the rows and the newest seq
        try:
            return cut_after(self._conn, after, replicated, *self._caps)
        finally:
            self._conn.execute("COMMIT")

    async def push(self, request: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": request["id"]}
        cut = self._cuts.pop((int(request["first"]), int(request["last"])), None)
        try:
            if cut is None:
                raise UpstreamUnavailable("the worker no longer holds that batch; cut it again")
            reply["applied"] = await self._client.push(request["batch"], cut.encoded)
        except UplinkError as exc:
            applied = exc.applied if isinstance(exc, ReplicationGap) else None
            reply["error"] = {"kind": error_kind(exc), "message": str(exc), "applied": applied}
        self.answer(reply)

    async def close(self) -> None:
        await self._client.close()
        self._conn.close()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    settings = json.loads(await reader.readline())
    try:
        worker = _Worker(settings)
    except sqlite3.Error as exc:  # the gateway's requests fail, and it starts another
        log.error("cannot open the store %s: %s", settings["db"], exc)
        raise SystemExit(1) from None
    pushes: set[asyncio.Task[None]] = set()
    try:
        while line := await reader.readline():
            request = json.loads(line)
            if request["op"] == "cut":
                worker.cut(request)
            else:
                task = asyncio.create_task(worker.push(request))
                pushes.add(task)
                task.add_done_callback(pushes.discard)
    finally:
        for task in pushes:
            task.cancel()
        await asyncio.gather(*pushes, return_exceptions=True)
        await worker.close()


def main() -> None:
    _die_with_parent()
    os.nice(NICE)
    logging.basicConfig(level=logging.INFO, format="outpost uplink worker: %(message)s")
    try:
        asyncio.run(_serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
