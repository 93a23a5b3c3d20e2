"""``outpost status`` against a real ``outpost serve``: ``--json``, the text, a hub's
gateways, and a gateway that is not running (one line, exit 1, the offline backlog)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from edge_upstream_kit import write_app
from outpost_serve_kit import OUTPOST, serving


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(OUTPOST), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OUTPOST_MQTT_BROKER": "off", **extra}
    env.pop("OUTPOST_PORT", None)
    env.pop("OUTPOST_UPSTREAM_URL", None)
    return env


async def test_status_of_a_running_edge_then_of_a_stopped_one(tmp_path: Path) -> None:
    app, data, env = write_app(tmp_path / "app"), tmp_path / "d", _env()
    where = (str(app), "--data-dir", str(data))
    async with serving(app, data, env) as url:
        for n in range(3):
            code, _, err = await _cli(env, "run", "readings:add", f'{{"n": {n}}}', "--url", url,
                                      "--app", str(app), "--data-dir", str(data))  # fmt: skip
            assert code == 0, err
        code, out, err = await _cli(env, "status", *where, "--url", url, "--json")
        assert code == 0, err
        status = json.loads(out)
        assert status["running"] is True and status["link"]["state"] == "off"
        assert status["backlog"]["entries"] == 3 and len(status["gateway"]) == 32
        assert status["disk"]["full"] is False and status["disk"]["freeBytes"] > 0
        code, text, _ = await _cli(env, "status", *where, "--url", url)
        assert code == 0 and "3 entries" in text and "downlink  off" in text
        assert "disk      ok, " in text and str(data) in text
    code, out, err = await _cli(env, "status", *where, "--url", url, "--json")
    assert code == 1 and err.count("\n") == 1 and "no gateway is running" in err
    offline = json.loads(out)
    assert offline["running"] is False and offline["backlog"]["entries"] == 3


async def test_status_of_a_hub_lists_its_gateways(tmp_path: Path) -> None:
    app, data, env = write_app(tmp_path / "app"), tmp_path / "d", _env(OUTPOST_HUB="true")
    where = (str(app), "--data-dir", str(data))
    code, _, err = await _cli(env, "gateway", "add", "edge1", *where)
    assert code == 0, err
    async with serving(app, data, env) as url:
        code, out, err = await _cli(env, "status", *where, "--url", url, "--json")
        assert code == 0, err
        status = json.loads(out)
        code, text, _ = await _cli(env, "status", *where, "--url", url)
    assert status["hub"] is True
    assert [(g["gateway"], g["registered"]) for g in status["gateways"]] == [("edge1", True)]
    assert "edge1  registered  never pushed" in text
