"""PyPI ``convex`` 0.8.1 ``ConvexClient``: its socket is cut, it reconnects by itself.

The client (``pip_worker.py``, a child process) talks to ``outpost serve`` through a
``TcpProxy`` on the test's loop. What the client does about a lost socket lives in its
Rust core (``convex`` crate, ``web_socket_manager.rs`` / ``worker.rs``; wire spec 2.8):
any socket error or close leads to a reconnect after a backoff (100 ms, doubling, up
to 15 s, jittered); on the new socket it sends Connect with a *new* sessionId and
``connectionCount`` + 1, its whole query set as ModifyQuerySet 0 -> 1, then every
request still in flight, mutations and actions alike. A subscription's iterator just
keeps going; a blocked ``mutation()`` returns the result of the resent request.

So a mutation whose socket died after it committed, before its answer arrived, is
sent again under another sessionId: the server cannot recognise it as a replay
(dedupe is by ``(sessionId, requestId)``) and runs it again. The client promises the
call returns a result, not that it ran once; ``test_..._lost_answer`` checks that and
records how many times it ran (twice here; Convex itself could not tell either).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tcp_proxy import TcpProxy  # type: ignore[import-not-found]

WORKER = Path(__file__).resolve().parent / "pip_worker.py"
CALL_DEADLINE_S = 15.0  # a reconnect is ~0.1 s; this bounds a hang, it is never waited out


class PipWorker:
    """Drives ``pip_worker.py``: each call is one request line, one reply line."""

    def __init__(self, url: str, stderr_path: Path) -> None:
        self.url = url
        self.stderr_path = stderr_path
        self.process: asyncio.subprocess.Process | None = None
        self._stderr = open(stderr_path, "wb")  # noqa: SIM115 - closed in __aexit__

    async def __aenter__(self) -> PipWorker:
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                self.url,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=self._stderr,
            )
        finally:
            self._stderr.close()  # the child has its own copy
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self.process
        assert process is not None and process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10.0)
        except TimeoutError:
            process.kill()
            await process.wait()

    def send(self, op: str, **fields: Any) -> None:
        """Send a request without waiting for its reply (``reply`` reads it)."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())

    async def reply(self, what: str) -> Any:
        assert self.process is not None and self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), CALL_DEADLINE_S)
        except TimeoutError:
            raise AssertionError(
                f"the pip client did not finish {what} within {CALL_DEADLINE_S:.0f} s\n"
                f"{self.stderr()}"
            ) from None
        assert line, f"the pip worker exited during {what}\n{self.stderr()}"
        answer = json.loads(line)
        assert "error" not in answer, f"{what}: {answer}"
        return answer["value"]

    async def call(self, op: str, name: str, args: dict[str, Any]) -> Any:
        self.send(op, name=name, args=args)
        return await self.reply(f"{op} {name}")

    async def subscribe(self, name: str, args: dict[str, Any]) -> int:
        return await self.call("subscribe", name, args)  # type: ignore[no-any-return]

    async def next_until(self, sub: int, value: Any) -> list[Any]:
        self.send("next_until", sub=sub, value=value)
        return await self.reply(f"the subscription reaching {value!r}")  # type: ignore[no-any-return]

    def stderr(self) -> str:
        text = self.stderr_path.read_text(errors="replace")
        return "worker stderr (last lines):\n" + "\n".join(text.splitlines()[-30:])


@pytest.fixture
async def via_proxy(server: Any, tmp_path: Path) -> AsyncIterator[tuple[TcpProxy, PipWorker]]:
    async with (
        TcpProxy(server.url) as proxy,
        PipWorker(proxy.url, tmp_path / "worker.stderr") as pip,
    ):
        yield proxy, pip


async def direct(server: Any, kind: str, path: str, args: dict[str, Any]) -> Any:
    """A call straight to the server over HTTP (not through the proxy)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.url}/api/{kind}", json={"path": path, "args": args, "format": "json"}
        ) as response,
    ):
        body = await response.json()
    assert body["status"] == "success", body
    return body["value"]


@pytest.mark.parametrize("how", ["reset", "close"])
async def test_sync_pip_convex_client_reconnects_after_a_cut(
    via_proxy: tuple[TcpProxy, PipWorker], server: Any, how: str
) -> None:
    proxy, pip = via_proxy
    batch = f"pip-cut-{how}-{uuid.uuid4().hex[:8]}"
    sub = await pip.subscribe("items:count", {"batch": batch})
    assert await pip.next_until(sub, 0.0) == [0.0]
    await pip.call("mutation", "items:add", {"batch": batch, "n": 1})
    assert await pip.next_until(sub, 1.0) == [1.0]
    assert (proxy.connections, proxy.open_connections) == (1, 1)

    # The client is blocked on its subscription when the socket dies; a write from
    # elsewhere then reaches it through the socket it opens again by itself.
    pip.send("next_until", sub=sub, value=2.0)
    assert proxy.cut(reset=how == "reset") == 1
    await direct(server, "mutation", "items:add", {"batch": batch, "n": 2})
    seen = await pip.reply("the subscription after the cut")
    assert seen[-1] == 2.0 and set(seen) <= {1.0, 2.0}, seen
    assert proxy.connections == 2 and proxy.open_connections == 1

    # Calls on the new socket: mutation (read-your-writes holds), query, action.
    item_id = await pip.call("mutation", "items:add", {"batch": batch, "n": 3})
    stored = await pip.call("query", "items:get", {"id": item_id})
    assert stored == await direct(server, "query", "items:get", {"id": item_id})
    assert (stored["_id"], stored["batch"], stored["n"]) == (item_id, batch, 3.0)
    assert await pip.call("query", "items:count", {"batch": batch}) == 3.0
    assert (await pip.call("action", "items:relabel", {"batch": batch}))["n_plus_one"] == 42.0
    assert (await pip.next_until(sub, 4.0))[-1] == 4.0
    assert await direct(server, "query", "items:count", {"batch": batch}) == 4.0

    # Cut again, while idle: the same again (the backoff was reset by the good socket).
    assert proxy.cut(reset=how == "reset") == 1
    async with asyncio.timeout(CALL_DEADLINE_S):
        await proxy.wait_for_connections(3)
    await pip.call("mutation", "items:add", {"batch": batch, "n": 5})
    assert (await pip.next_until(sub, 5.0))[-1] == 5.0
    assert proxy.connections == 3 and proxy.cuts == 2


async def test_sync_pip_convex_client_mutation_whose_answer_was_lost(
    via_proxy: tuple[TcpProxy, PipWorker], server: Any
) -> None:
    """Committed, socket dropped before the MutationResponse: the call still returns."""
    proxy, pip = via_proxy
    batch = f"pip-lost-{uuid.uuid4().hex[:8]}"
    sub = await pip.subscribe("items:count", {"batch": batch})
    assert await pip.next_until(sub, 0.0) == [0.0]

    proxy.cut_on(b"MutationResponse")
    item_id = await pip.call("mutation", "items:add", {"batch": batch, "n": 1})
    assert proxy.cuts == 1 and proxy.connections == 2
    stored = await direct(server, "query", "items:get", {"id": item_id})
    assert stored is not None and stored["batch"] == batch  # the id it returned is real
    # Resent under a new sessionId, so not deduplicated: at least once, at most twice.
    runs = await direct(server, "query", "items:count", {"batch": batch})
    assert runs in (1.0, 2.0), runs
    assert (await pip.next_until(sub, runs))[-1] == runs
    print(f"pip mutation resent after a lost answer ran {runs:.0f} time(s)")

    # The client goes on normally on the new socket.
    await pip.call("mutation", "items:add", {"batch": batch, "n": 2})
    assert await pip.call("query", "items:count", {"batch": batch}) == runs + 1
