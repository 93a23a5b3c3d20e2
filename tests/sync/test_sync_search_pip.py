"""A live search query through PyPI ``convex``'s ``ConvexClient`` (``pip_worker.py``, a
child process: the client holds the GIL while it blocks)."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from sync.search_client_kit import SEARCH_CLIENT_NOTES, SEARCH_CLIENT_SCHEMA
from sync.sync_kit import serving

SEARCH_PIP_WORKER = Path(__file__).resolve().parent / "pip_worker.py"


class _SearchPip:
    """One request line in, one reply line out, each with a deadline."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ask(self, **request: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        await self.proc.stdin.drain()
        reply = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 30))
        assert "error" not in reply, reply
        return reply["value"]


async def test_sync_pip_convex_client_live_search(make_app, tmp_path) -> None:
    app = make_app(
        schema=textwrap.dedent(SEARCH_CLIENT_SCHEMA), notes=textwrap.dedent(SEARCH_CLIENT_NOTES)
    )
    async with serving(app, tmp_path / "data") as api:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SEARCH_PIP_WORKER),
            f"http://127.0.0.1:{api.port}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        pip = _SearchPip(proc)
        try:
            args = {"text": "pump", "site": "north"}
            sub = await pip.ask(op="subscribe", name="notes:find", args=args)
            assert (await pip.ask(op="next_until", sub=sub, value=[]))[-1] == []
            doc = {"body": "Pump failure", "site": "north", "level": 1.0}
            doc_id = await pip.ask(op="mutation", name="notes:add", args=doc)
            seen = await pip.ask(op="next_until", sub=sub, value=[["Pump failure", 1.0]])
            assert seen[-1] == [["Pump failure", 1.0]]
            await pip.ask(
                op="mutation", name="notes:patch", args={"id": doc_id, "fields": {"level": 2.0}}
            )
            await pip.ask(op="next_until", sub=sub, value=[["Pump failure", 2.0]])
            await pip.ask(op="mutation", name="notes:remove", args={"id": doc_id})
            await pip.ask(op="next_until", sub=sub, value=[])
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            await asyncio.wait_for(proc.wait(), 30)
