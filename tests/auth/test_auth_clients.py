"""The official clients' auth, unchanged: npm ``ConvexClient.setAuth`` and
``ConvexHttpClient.setAuth`` under Node, PyPI ``convex`` ``set_auth``, against a gateway
whose app trusts the tests' issuer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from auth.auth_app import write_app
from auth.auth_issuer import Issuer
from compat.conftest import convex_npm  # noqa: F401 - the npm install fixture
from sync.sync_kit import SyncApi, serving

HERE = Path(__file__).resolve().parent
CHILD_DEADLINE_S = 60.0


@pytest.fixture
async def api(issuer: Issuer, tmp_path: Path) -> AsyncIterator[SyncApi]:
    async with serving(write_app(tmp_path / "app", issuer.url), tmp_path / "data") as api:
        yield api


async def run_child(cmd: list[str], payload: dict[str, Any], env: dict[str, str]) -> Any:
    """Run a client process while this loop serves it; its stdout is one JSON report."""
    child = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    try:
        out, err = await asyncio.wait_for(
            child.communicate(json.dumps(payload).encode()), CHILD_DEADLINE_S
        )
    except TimeoutError:
        child.kill()
        await child.wait()
        raise
    assert child.returncode == 0, f"{cmd} exited {child.returncode}:\n{err.decode()}"
    return json.loads(out)


async def test_npm_clients_set_auth(api: SyncApi, issuer: Issuer, convex_npm: Path) -> None:  # noqa: F811
    url = f"http://127.0.0.1:{api.port}"
    refreshing = [issuer.sign(subject=f"r{n}", lifetime_s=12) for n in range(3)]
    payload = {
        "url": url,
        "good": issuer.sign(subject="ada"),
        "bad": issuer.sign(kid="gone"),
        "refreshing": refreshing,
    }
    script = str(HERE / "node" / "auth_clients.mjs")
    report = await run_child(["node", script], payload, {"CONVEX_NPM_PREFIX": str(convex_npm)})
    assert "failure" not in report, report
    http = report["http"]
    assert (http["subject"], http["mutation"]) == ("ada", f"{issuer.url}|ada")
    assert (
        json.loads(http["bad"])["code"] == "Unauthenticated"
        and "no key with kid 'gone'" in http["bad"]
    )
    assert http["cleared"] is None
    good = report["good"]
    assert "failure" not in good, good
    assert good["changes"] == [True] and good["seen"][-1] == "ada"
    assert good["mutation"] == f"{issuer.url}|ada"
    bad = report["bad"]
    assert "failure" not in bad, bad
    # AuthError told the client: it tried a fresh token once, then went on without auth
    # (onChange(false)) and the query ran anonymously; no loop of fetches/reconnects.
    assert bad["changes"] == [False] and bad["seen"][-1] is None, bad
    assert bad["fetchesAfterSettling"] <= 3, bad
    refresh = report["refresh"]
    assert "failure" not in refresh, refresh
    # Each fresh token was a new Authenticate on the same socket, each accepted.
    assert refresh["fetches"] >= 3 and set(refresh["changes"]) == {True}, refresh
    assert refresh["mutation"] == f"{issuer.url}|r2" and refresh["seen"][-1] == "r2", refresh


async def test_pip_set_auth(api: SyncApi, issuer: Issuer) -> None:
    url = f"http://127.0.0.1:{api.port}"
    script = str(HERE / "pip_auth_client.py")
    report = await run_child([sys.executable, script], {"url": url, "good": issuer.sign()}, {})
    assert report == {
        "anonymous": None,
        "subject": "user-1",
        "mutation": f"{issuer.url}|user-1",
        "subscribed": "user-1",
        "cleared": None,
        "http": "user-1",
    }
