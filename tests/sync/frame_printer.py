"""A sync client in a process of its own, to be stopped (SIGSTOP) and resumed by a test.

    python frame_printer.py URL PATH ARGS_JSON

Connects, subscribes to PATH(ARGS) as query 0, and prints every frame it receives as
one line on stdout (flushed), until the socket closes. It answers protocol pings as
any client does, so when it is stopped it stops answering them too.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import aiohttp


async def main(url: str, path: str, args: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(
            json.dumps(
                {
                    "type": "Connect",
                    "sessionId": str(uuid.uuid4()),
                    "connectionCount": 0,
                    "lastCloseReason": "InitialConnect",
                    "clientTs": 0,
                }
            )
        )
        add = {"type": "Add", "queryId": 0, "udfPath": path, "args": [json.loads(args)]}
        await ws.send_str(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [add],
                }
            )
        )
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            sys.stdout.write(msg.data + "\n")
            sys.stdout.flush()
        sys.stdout.write(json.dumps({"type": "_closed", "code": ws.close_code}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
