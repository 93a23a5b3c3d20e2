"""The CLI over the admin socket of a real ``outpost serve``: ``run`` and ``status`` work
with the admin key file removed (no key is read), ``--url`` still means HTTP with the
key, and a data directory too long for a socket falls back to HTTP with the key."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from admin_socket_kit import short_dir, write_secret_app
from outpost_serve_kit import OUTPOST, serving

from gateway.admin_key import admin_key_path
from gateway.admin_socket import MAX_SOCKET_PATH_BYTES, admin_socket_path


def _env() -> dict[str, str]:
    env = {**os.environ, "OUTPOST_MQTT_BROKER": "off", "OUTPOST_DISCOVERY": "false"}
    for name in ("OUTPOST_PORT", "OUTPOST_UPSTREAM_URL", "OUTPOST_DATA_DIR"):
        env.pop(name, None)
    return env


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(OUTPOST), *args, env=_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_run_and_status_use_the_socket_without_the_admin_key(tmp_path: Path) -> None:
    app = write_secret_app(tmp_path / "app")
    with short_dir() as data:
        where = ("--app", str(app), "--data-dir", str(data))
        async with serving(app, data, _env()) as url:
            admin_key_path(data).unlink()  # the CLI must not need it
            code, out, err = await _cli("run", "secrets:secret", *where)
            assert code == 0, err
            assert json.loads(out) == "only admins"
            code, out, err = await _cli("status", str(app), "--data-dir", str(data), "--json")
            assert code == 0, err
            assert json.loads(out)["running"] is True
            # --url means HTTP, where only the key (gone now) makes an admin.
            code, _, err = await _cli("run", "secrets:secret", *where, "--url", url)
            assert code == 1 and "Could not find public function" in err
        assert not admin_socket_path(data).exists()


async def test_a_data_dir_too_long_for_a_socket_uses_http_and_the_key(tmp_path: Path) -> None:
    app = write_secret_app(tmp_path / "app")
    data = tmp_path / ("d" * MAX_SOCKET_PATH_BYTES)
    async with serving(app, data, _env()) as url:
        port = url.rsplit(":", 1)[1]
        where = ("--app", str(app), "--data-dir", str(data), "--port", port)
        code, out, err = await _cli("run", "secrets:secret", *where)
        assert code == 0, err
        assert json.loads(out) == "only admins"
        code, out, err = await _cli("status", *where, "--json")
        assert code == 0, err
