"""A live search query through npm ``convex``'s ``ConvexClient``: each mutation resolves
only after the subscription shows its effect on the search results."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from pathlib import Path

from sync.search_client_kit import SEARCH_CLIENT_NOTES, SEARCH_CLIENT_SCHEMA
from sync.sync_kit import serving

SEARCH_NPM_SCRIPT = Path(__file__).resolve().parent / "node" / "search_client.mjs"


async def _search_node(script: Path, prefix: Path, payload: dict) -> dict:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CONVEX_NPM_PREFIX": str(prefix)},
    )
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(payload).encode()), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_sync_npm_convex_client_live_search(make_app, tmp_path, convex_npm: Path) -> None:
    app = make_app(
        schema=textwrap.dedent(SEARCH_CLIENT_SCHEMA), notes=textwrap.dedent(SEARCH_CLIENT_NOTES)
    )
    async with serving(app, tmp_path / "data") as api:
        url = f"http://127.0.0.1:{api.port}"
        report = await _search_node(SEARCH_NPM_SCRIPT, convex_npm, {"url": url})
    assert "failure" not in report, report
    assert report["atResolve"] == [
        [],
        ["Pump failure"],
        ["Pump failure"],  # the south document is outside the filter
        [],  # no longer matches
        ["fan stuck"],  # matches again through the prefix "fa"
        [],
    ], report
    assert not [e for e in report["logged"] if e[0] == "error"], report["logged"]
