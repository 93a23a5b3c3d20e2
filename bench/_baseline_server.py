"""Bare aiohttp baseline for ``bench/http_api.py``, run as its own process (not a benchmark).

``POST /api/query`` with ``{"path", "args": {"group", "limit"}, "format"}`` runs the
SELECT Outpost's ``items:page`` amounts to (``indexes`` joined to ``documents`` over
the group's key range, in key order, LIMIT) on a read-only sqlite3 connection in a
thread pool (one connection per thread, as many threads as Outpost has readers),
``json.loads`` of each body, and answers ``json.dumps`` of the documents in the same
envelope as Outpost (``{"status":"success","value":[...],"logLines":[]}``).

Only the standard library and aiohttp: the group -> index key map comes from a JSON
file the bench writes (hex of ``gateway.values.encode_index_key([group])``). Prints
``listening on http://HOST:PORT`` when ready; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

SQL = (
    "SELECT i.key, d.body FROM indexes i JOIN documents d ON d.id = i.doc_id "
    "WHERE i.index_id = ? AND i.key >= ? AND i.key < ? ORDER BY i.key LIMIT ?"
)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


class Reader:
    """The SELECT + decode; one read-only connection per pool thread."""

    def __init__(self, db: str, index_id: int, keys: dict[str, bytes]) -> None:
        self._db = db
        self._index_id = index_id
        self._keys = keys
        self._local = threading.local()

    def query(self, group: str, limit: int) -> list[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self._db}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            self._local.conn = conn
        start = self._keys[group]
        rows = conn.execute(SQL, (self._index_id, start, start + b"\xff", limit)).fetchall()
        return [json.loads(body) for _key, body in rows]


async def serve(args: argparse.Namespace, keys: dict[str, bytes]) -> None:
    reader = Reader(args.db, args.index_id, keys)
    pool = ThreadPoolExecutor(args.threads, thread_name_prefix="baseline-reader")
    loop = asyncio.get_running_loop()

    async def query(request: web.Request) -> web.Response:
        body = await request.json()
        call = body["args"]
        docs = await loop.run_in_executor(
            pool, reader.query, call["group"], int(call.get("limit", 100))
        )
        text = _encode({"status": "success", "value": docs, "logLines": []})
        return web.Response(text=text, content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/api/query", query)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on http://{args.host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        pool.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", required=True, help="the store's SQLite file")
    p.add_argument("--index-id", type=int, required=True)
    p.add_argument("--keys", required=True, help="JSON file: group -> hex index key")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    with open(args.keys) as f:
        keys = {group: bytes.fromhex(key) for group, key in json.load(f).items()}
    asyncio.run(serve(args, keys))


if __name__ == "__main__":
    main()
