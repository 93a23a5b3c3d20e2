"""``GET /metrics``: Prometheus's text format, parsed back; counters that move with
writes; open to this machine, and from elsewhere only with the admin key."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import aiohttp
import pytest

from gateway import Gateway
from gateway.http import HttpServer, load_or_create_admin_key
from gateway.metrics import Metric, render

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)$")


def parse(text: str) -> dict[str, tuple[str, float]]:
    """name -> (type, value), holding the format to its rules: HELP then TYPE then the
    sample, every name once, every value a float."""
    found: dict[str, tuple[str, float]] = {}
    lines = text.splitlines()
    assert text.endswith("\n")
    for i in range(0, len(lines), 3):
        help_line, type_line, sample = lines[i : i + 3]
        name = help_line.split(" ")[2]
        assert help_line.startswith(f"# HELP {name} ")
        kind = type_line.removeprefix(f"# TYPE {name} ")
        assert kind in ("counter", "gauge")
        match = _SAMPLE.match(sample)
        assert match is not None and match[1] == name, sample
        assert name not in found
        found[name] = (kind, float(match[2]))
    return found


def test_render_escapes_help_and_prints_every_value_as_a_float() -> None:
    text = render([Metric("a_total", "counter", "back\\slash\nnewline", 3)])
    assert text == "# HELP a_total back\\\\slash\\nnewline\n# TYPE a_total counter\na_total 3\n"
    assert parse(render([Metric("b", "gauge", "x", 0.5)])) == {"b": ("gauge", 0.5)}


async def test_metrics_move_with_writes(api) -> None:  # type: ignore[no-untyped-def]
    async def scrape() -> dict[str, tuple[str, float]]:
        async with api.session.get("/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return parse(await resp.text())

    before = await scrape()
    for n in range(3):
        await api.post("/api/mutation", {"path": "messages:send", "args": {"body": f"m{n}"}})
    after = await scrape()
    assert after["outpost_writer_jobs_total"][1] >= before["outpost_writer_jobs_total"][1] + 3
    assert after["outpost_writer_commits_total"][0] == "counter"
    assert after["outpost_process_written_bytes_total"][1] > 0  # the SD wear meter
    assert after["outpost_process_resident_bytes"][1] > 10 * 2**20
    assert after["outpost_clock_trusted"][1] in (0.0, 1.0)


async def test_a_wrong_admin_key_is_refused_even_locally(api) -> None:  # type: ignore[no-untyped-def]
    async with api.session.get("/metrics", headers={"Authorization": "Convex nope"}) as resp:
        assert resp.status == 403


def _lan_address() -> str:
    """This machine's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return ""
        address: str = probe.getsockname()[0]
    return "" if address.startswith("127.") else address


async def test_from_the_lan_metrics_take_the_admin_key(app_dir: Path, tmp_path: Path) -> None:
    address = _lan_address()
    if not address:
        pytest.skip("this machine has no address but loopback to reach itself from")
    data = tmp_path / "data"
    async with Gateway.open(app_dir, data) as gw, HttpServer(gw) as server:
        port = await server.start(address, 0)
        key = load_or_create_admin_key(data)
        async with aiohttp.ClientSession(f"http://{address}:{port}") as session:
            async with session.get("/metrics") as resp:
                assert resp.status == 403
                assert "admin key" in (await resp.json(content_type=None))["message"]
            headers = {"Authorization": f"Convex {key}"}
            async with session.get("/metrics", headers=headers) as resp:
                assert resp.status == 200
                assert "outpost_writer_commits_total" in parse(await resp.text())
