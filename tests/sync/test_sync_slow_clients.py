"""A client that stops reading: bounded memory, merged Transitions, others unaffected.

The stopped client is a real process (``frame_printer.py``) sent SIGSTOP: the kernel
keeps its socket, but nothing reads it, so the gateway's writes to it block once the
socket buffers are full. Large results fill them after a few dozen updates.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sync.sync_kit import SyncApi, add, serving

from gateway import Gateway
from gateway.http import HttpServer
from gateway.sync import websocket

HERE = Path(__file__).resolve().parent
BODY_BYTES = 200_000  # a result this size fills the socket buffers in a few updates

SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({"blobs": define_table({"n": v.float64(), "fill": v.string()})})
"""
BLOBS = """
    from gateway import mutation, query, v

    @mutation(args={"n": v.float64(), "size": v.float64()})
    async def put(ctx, args):
        return await ctx.db.insert("blobs", {"n": args["n"], "fill": "x" * int(args["size"])})

    @query(args={})
    async def latest(ctx, args):
        doc = await ctx.db.query("blobs").order("desc").first()
        return None if doc is None else {"n": doc["n"], "fill": doc["fill"]}
"""


@pytest.fixture
async def blob_api(make_app: Any, tmp_path: Path) -> AsyncIterator[SyncApi]:
    async with serving(make_app(schema=SCHEMA, blobs=BLOBS), tmp_path / "data") as api:
        yield api


class Printer:
    """``frame_printer.py`` as a child process; its frames arrive on a queue."""

    def __init__(self, port: int) -> None:
        url = f"http://127.0.0.1:{port}/api/1.48.0/sync"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "frame_printer.py"), url, "blobs:latest", "{}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith("\n"):  # not the half line of a killed process
                self.frames.put(json.loads(line))

    async def until(self, done: Any, deadline_s: float = 30.0) -> list[dict[str, Any]]:
        """Frames up to the first one ``done`` accepts (the server runs on this loop:
        the wait must not block it)."""
        seen = []
        end = time.monotonic() + deadline_s
        while True:
            remaining = end - time.monotonic()
            assert remaining > 0, f"no such frame within {deadline_s} s; got {seen[-3:]}"
            try:
                frame = await asyncio.to_thread(self.frames.get, timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            seen.append(frame)
            if done(frame):
                return seen

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def printer(blob_api: SyncApi) -> Iterator[Printer]:
    child = Printer(blob_api.port)
    try:
        yield child
    finally:
        child.close()


def current_n(results: dict[int, Any]) -> float | None:
    value = results.get(0, ("ok", None))[1]
    return None if value is None else float(value["n"])


def value_n(frame: dict[str, Any]) -> float | None:
    for mod in frame.get("modifications", []):
        if mod["type"] == "QueryUpdated" and mod["value"] is not None:
            return float(mod["value"]["n"])
    return None


async def test_a_stopped_client_gets_one_merged_transition_and_costs_bounded_memory(
    blob_api: SyncApi, printer: Printer
) -> None:
    gw = blob_api.gateway
    await printer.until(lambda f: f["type"] == "Transition")
    healthy = await blob_api.open()
    await healthy.modify(add(0, "blobs:latest"))
    await healthy.transition()
    printer.stop()
    updates = 60
    for n in range(1, updates + 1):
        await gw.run_mutation("blobs:put", {"n": float(n), "size": float(BODY_BYTES)})
        while current_n(healthy.results) != n:
            await healthy.transition()  # the other client sees every update, in step
    sessions = [s for s in gw.sync.sessions if s.outbox.merged > 0]
    assert len(sessions) == 1, "the stopped client's Transitions were not merged"
    stalled = sessions[0]
    assert len(stalled.outbox) <= 1  # one Transition waits; nothing piles up
    merged = stalled.outbox.merged
    printer.resume()
    frames = await printer.until(lambda f: value_n(f) == updates)
    transitions = [f for f in frames if f["type"] == "Transition"]
    # Every Transition chains onto the one before it, as the clients require.
    for before, after in zip(transitions, transitions[1:], strict=False):
        assert after["startVersion"] == before["endVersion"]
    assert len(transitions) < updates - merged + 2
    print(f"{updates} updates; {merged} merged while stopped; {len(transitions)} received after")
    await healthy.close()


async def test_a_dead_peer_is_dropped_by_protocol_pings(
    blob_api: SyncApi, printer: Printer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that stops answering protocol pings loses its socket and its session;
    one that answers (``printer``, a process reading all the time) keeps its own."""
    await printer.until(lambda f: f["type"] == "Transition")
    monkeypatch.setattr(websocket, "PROTOCOL_PING_S", 0.5)  # for sockets opened from now
    engine = blob_api.gateway.sync
    others = set(engine.sessions)
    dead = Printer(blob_api.port)
    try:
        await dead.until(lambda f: f["type"] == "Transition")
        (session,) = engine.sessions - others
        dead.stop()
        await blob_api.gateway.run_mutation("blobs:put", {"n": 1.0, "size": float(BODY_BYTES)})
        deadline = time.monotonic() + 10
        while session in engine.sessions:
            assert time.monotonic() < deadline, "the stopped peer's session is still open"
            await asyncio.sleep(0.05)
        assert not session.open
        assert all(task.done() for task in session._tasks)  # noqa: SLF001
        assert engine.sessions == others
        await blob_api.gateway.run_mutation("blobs:put", {"n": 2.0, "size": 10.0})
        await printer.until(lambda f: value_n(f) == 2.0)
    finally:
        dead.close()


async def test_shutdown_does_not_wait_for_a_stopped_client(make_app: Any, tmp_path: Path) -> None:
    app = make_app(schema=SCHEMA, blobs=BLOBS)
    gw = await Gateway.start(app, tmp_path / "data")
    http = HttpServer(gw)
    port = await http.start("127.0.0.1", 0)
    stopped = Printer(port)
    try:
        await stopped.until(lambda f: f["type"] == "Transition")
        stopped.stop()
        for n in range(20):  # enough to fill the socket buffers: writes to it block
            await gw.run_mutation("blobs:put", {"n": float(n), "size": float(BODY_BYTES)})
        started = time.monotonic()
        await asyncio.wait_for(http.close(), 15)
        await asyncio.wait_for(gw.close(), 15)
        took = time.monotonic() - started
        print(f"shutdown took {took:.2f} s")
        assert took < 8, f"shutdown took {took:.1f} s with a stopped client"
    finally:
        stopped.close()
