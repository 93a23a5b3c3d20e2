"""The process owner (``Service``: HTTP + gateway + what comes) fails at each step of
its start in turn: the steps before it stop in reverse (the gateway's own steps inside
its "gateway" step), the port is free again and the data directory opens again."""

from __future__ import annotations

import asyncio
import resource
import socket
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import pytest
from lifecycle_kit import GATEWAY_STEPS

from gateway import Gateway, Settings
from gateway.errors import StartError
from gateway.lifecycle import Phase
from gateway.process_tuning import SWITCH_INTERVAL_S
from gateway.service import Service

GREENHOUSE = Path(__file__).resolve().parent.parent / "examples" / "greenhouse"
BEFORE = [
    "open files",
    "gil switching",
    "http",
    "gateway",
]  # the gateway's steps run inside "gateway"
AFTER = [
    "admin socket",
    "mqtt broker",
    "mqtt bridge",
    "replication",
    "attach",
    "http actions",
    "reload watcher",
    "tls renewal",
    "discovery",
    "ready",
    "systemd",
]


class Recorder:
    def __init__(self, fail_at: str | None = None, *, hold_at: str | None = None) -> None:
        self.fail_at, self.hold_at = fail_at, hold_at
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.holding = asyncio.Event()

    async def __call__(self, phase: Phase, name: str) -> None:
        if phase == "stop":
            self.stopped.append(name)
            return
        if name == self.fail_at:
            raise PermissionError(13, "Permission denied (injected)")
        if name == self.hold_at:
            self.holding.set()
            await asyncio.Event().wait()  # a slow step: only a cancel ends it
        self.started.append(name)


def _expected(step: str) -> tuple[list[str], list[str]]:
    """What starts before ``step`` fails, and the order it stops in."""
    if step in GATEWAY_STEPS:
        inner = GATEWAY_STEPS[: GATEWAY_STEPS.index(step)]
        return [*BEFORE, *inner], [*inner[::-1], "http", "gil switching", "open files"]
    if step in BEFORE:
        outer = BEFORE[: BEFORE.index(step)]
        return outer, outer[::-1]
    after = AFTER[: AFTER.index(step)]
    started = [*BEFORE, *GATEWAY_STEPS, *after]
    return started, [
        *after[::-1],
        "gateway",
        *GATEWAY_STEPS[::-1],
        "http",
        "gil switching",
        "open files",
    ]


def _service(tmp_path: Path, hook: Recorder, on_ready=None) -> Service:
    settings = Settings(port=0, data_dir=str(tmp_path / "data"), mqtt_broker="off")
    return Service(GREENHOUSE, settings, while_serving=_idle, on_ready=on_ready, step_hook=hook)


async def _idle(gateway: Gateway) -> None:
    await asyncio.Event().wait()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_a_clean_start_and_stop(tmp_path: Path) -> None:
    hook, ready = Recorder(), []
    service = _service(tmp_path, hook, on_ready=ready.append)
    async with service:
        assert ready == [service]
        assert hook.started == [*BEFORE, *GATEWAY_STEPS, *AFTER]
        assert _listening(service.port)
    assert hook.stopped == [
        *AFTER[::-1],
        "gateway",
        *GATEWAY_STEPS[::-1],
        "http",
        "gil switching",
        "open files",
    ]
    assert not _listening(service.port)


async def test_serving_shortens_the_gil_switch_interval_and_stop_restores_it(
    tmp_path: Path,
) -> None:
    found = sys.getswitchinterval()
    sys.setswitchinterval(0.004)
    try:
        async with _service(tmp_path, Recorder()):
            assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        assert sys.getswitchinterval() == pytest.approx(0.004)
    finally:
        sys.setswitchinterval(found)


@pytest.mark.parametrize("step", [*BEFORE, *GATEWAY_STEPS, *AFTER])
async def test_a_failure_at_each_step_unwinds_what_started(step: str, tmp_path: Path) -> None:
    hook = Recorder(fail_at=step)
    service = _service(tmp_path, hook)
    with pytest.raises(StartError) as caught:
        await service.start()
    assert str(caught.value) == f"cannot start: {step}: Permission denied (injected)"
    started, stopped = _expected(step)
    assert hook.started == started
    assert hook.stopped == stopped
    if "http" in started:
        assert not _listening(service.port)
    await service.stop()  # after a failed start, stop is a no-op
    async with Gateway.open(GREENHOUSE, tmp_path / "data"):
        pass


async def test_a_port_in_use_fails_the_http_step(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = Settings(port=port, data_dir=str(tmp_path / "data"), mqtt_broker="off")
        with pytest.raises(StartError) as caught:
            await Service(GREENHOUSE, settings).start()
    assert str(caught.value) == (
        f"cannot start: http: cannot listen on 127.0.0.1:{port} (address already in use); "
        "pick another --port or stop the process using it"
    )


async def test_a_start_cancelled_mid_step_unwinds(tmp_path: Path) -> None:
    """What a SIGTERM during a slow start does (``outpost serve`` cancels the start)."""
    hook = Recorder(hold_at="scheduler")
    service = _service(tmp_path, hook)
    starting = asyncio.create_task(service.start())
    await hook.holding.wait()
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert hook.stopped == [
        *GATEWAY_STEPS[: GATEWAY_STEPS.index("scheduler")][::-1],
        "http",
        "gil switching",
        "open files",
    ]
    assert not _listening(service.port)


HANGS = """
    import asyncio, pathlib
    from gateway import action

    @action
    async def hang(ctx, args):
        pathlib.Path(ctx.env["MARKER"]).write_text("in flight")
        await asyncio.sleep(600)
"""


async def test_stop_is_bounded_with_a_call_in_flight(make_app, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    app = make_app(fns=textwrap.dedent(HANGS))
    settings = Settings(
        port=0, data_dir=str(tmp_path / "data"), shutdown_timeout_s=1.0, env={"MARKER": str(marker)}
    )
    service = Service(app, settings)
    await service.start()
    async with aiohttp.ClientSession() as client:
        url = f"http://127.0.0.1:{service.port}/api/action"
        call = asyncio.create_task(client.post(url, json={"path": "fns:hang", "args": {}}))
        deadline = time.monotonic() + 10
        while not marker.exists():
            assert time.monotonic() < deadline, "the action never started"
            await asyncio.sleep(0.01)
        began = time.monotonic()
        await service.stop()
        assert time.monotonic() - began < 1.0 + 0.5
        try:
            response = await call
            response.release()
        except aiohttp.ClientError:
            pass  # the server cut the call: what a bounded stop does
    async with Gateway.open(app, tmp_path / "data"):
        pass


async def test_the_open_file_limit_is_raised_while_serving_and_restored(tmp_path: Path) -> None:
    found = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = found[1]
    if hard == resource.RLIM_INFINITY or hard < 256:
        pytest.skip("needs a finite hard open-file limit")
    low = hard // 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        async with _service(tmp_path, Recorder()):
            assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (low, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, found)
