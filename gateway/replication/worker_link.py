"""The gateway's end of the uplink worker (``uplink_worker.py``): cuts and pushes as
calls, the worker process started on first use and again if it ever stops.

A request the worker cannot answer (it died, or is stopping) fails as
``UpstreamUnavailable``: the uplink treats it as an outage, backs off, and the next
call starts a new worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from gateway.replication.batch import MAX_BATCH_BYTES, MAX_BATCH_CHANGES
from gateway.replication.client import (
    Refused,
    ReplicationGap,
    Unauthorized,
    UplinkError,
    UpstreamUnavailable,
)
from gateway.replication.outbox import Cut

log = logging.getLogger("gateway.replication")

_STOP_WAIT_S: Final = 5.0
_LINE_LIMIT: Final = 1 << 20


def _error(error: dict[str, Any]) -> UplinkError:
    kind, message = error.get("kind"), str(error.get("message"))
    if kind == "gap":
        return ReplicationGap(int(error["applied"]))
    if kind == "unauthorized":
        return Unauthorized(message)
    if kind == "unavailable":
        return UpstreamUnavailable(message)
    return Refused(message)


class WorkerSender:
    """Cuts and pushes through a worker process reading ``db``."""

    def __init__(
        self,
        db: Path,
        url: str,
        *,
        path: str,
        connect_timeout_s: float,
        request_timeout_s: float,
        replicated: Callable[[], Mapping[str, str]],
        max_changes: int = MAX_BATCH_CHANGES,
        max_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self._replicated = replicated
        self._settings = {
            "db": str(db),
            "url": url,
            "path": path,
            "connect_timeout_s": connect_timeout_s,
            "request_timeout_s": request_timeout_s,
            "max_changes": max_changes,
            "max_bytes": max_bytes,
        }
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The worker's process id while one runs."""
        process = self._process
        return None if process is None or process.returncode is not None else process.pid

    async def next_cut(self, after: int) -> Cut | None:
        replicated = dict(self._replicated())
        reply = await self._call({"op": "cut", "after": after, "replicated": replicated})
        if "error" in reply:
            raise _error(reply["error"])
        shape = reply.get("cut")
        if shape is None:
            return None
        return Cut(
            shape["first"],
            shape["last"],
            [],
            shape["size"],
            shape["trusted"],
            shape["newest"],
        )

    async def push(self, batch: dict[str, Any], cut: Cut) -> int:
        request = {"op": "push", "first": cut.first, "last": cut.last, "batch": batch}
        reply = await self._call(request)
        error = reply.get("error")
        if error is not None:
            raise _error(error)
        return int(reply["applied"])

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        process = await self._started()
        assert process.stdin is not None
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            line = json.dumps({"id": request_id, **request}, separators=(",", ":"))
            process.stdin.write(line.encode() + b"\n")
            return await future
        finally:
            self._waiting.pop(request_id, None)

    async def _started(self) -> asyncio.subprocess.Process:
        if self._closed:
            raise UpstreamUnavailable("the uplink is stopping")
        process, reader = self._process, self._reader
        if process is not None and reader is not None and not reader.done():
            return process
        await self._stop_process()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.replication.uplink_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(self._settings).encode() + b"\n")
        self._process = process
        self._reader = asyncio.create_task(self._read(process), name="outpost-uplink-worker")
        return process

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            while line := await process.stdout.readline():
                reply = json.loads(line)
                future = self._waiting.get(reply.get("id"))
                if future is not None and not future.done():
                    future.set_result(reply)
        finally:
            code = await process.wait() if process.returncode is None else process.returncode
            failure = UpstreamUnavailable(f"the uplink worker stopped (exit code {code})")
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(failure)

    async def _stop_process(self) -> None:
        process, self._process = self._process, None
        reader, self._reader = self._reader, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                async with asyncio.timeout(_STOP_WAIT_S):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def close(self) -> None:
        self._closed = True
        await self._stop_process()
