"""Choosing the announcer (Avahi's service file or our responder) and failing softly.

No packet leaves this machine here: the responder is a stand-in wherever it would
start; the real one is tested between two network namespaces (test_discovery_netns.py).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from gateway.discovery import AvahiPaths, Plan, gateway_announcements, start_announcing
from gateway.discovery.avahi import avahi_running

GATEWAY_ID = "aa212d0be4de42d5a2b533bb16d6056a"


class FakeResponder:
    """Records that it was started and closed, as ``ZeroconfResponder`` would be."""

    def __init__(self) -> None:
        self.started: list[Plan] = []
        self.closed = 0

    async def start(self, plan: Plan) -> FakeResponder:
        self.started.append(plan)
        return self

    async def close(self) -> None:
        self.closed += 1


def _plan(mqtt_port: int | None = None) -> Plan:
    announcements = gateway_announcements(
        name="greenhouse", gateway_id=GATEWAY_ID, api_port=3210, site_port=None, mqtt_port=mqtt_port
    )
    return Plan(announcements, ["10.213.0.1"], GATEWAY_ID)


def _avahi(tmp_path: Path, *, pid: int | None) -> AvahiPaths:
    services = tmp_path / "services"
    services.mkdir(exist_ok=True)
    pid_file = tmp_path / "avahi.pid"
    if pid is not None:
        pid_file.write_text(f"{pid}\n")
    return AvahiPaths(pid_file=pid_file, services_dir=services)


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid  # reaped: no process has it (until the kernel hands it out again)


def test_avahi_runs_only_when_its_pid_file_names_a_live_process(tmp_path: Path) -> None:
    assert avahi_running(_avahi(tmp_path, pid=os.getpid()).pid_file)
    assert avahi_running(_avahi(tmp_path, pid=1).pid_file)  # alive, maybe another user's
    assert not avahi_running(_avahi(tmp_path, pid=_dead_pid()).pid_file)
    (tmp_path / "avahi.pid").write_text("garbage")
    assert not avahi_running(tmp_path / "avahi.pid")
    assert not avahi_running(tmp_path / "missing.pid")


async def test_when_avahi_runs_the_service_file_is_written_and_removed_at_stop(
    tmp_path: Path,
) -> None:
    paths, responder = _avahi(tmp_path, pid=os.getpid()), FakeResponder()
    announcer = await start_announcing(_plan(1883), avahi_paths=paths, responder=responder.start)
    assert announcer is not None and responder.started == []  # one responder only: Avahi's
    [written] = paths.services_dir.iterdir()
    assert written.name == "outpost-aa212d0be4de.service"
    assert "<type>_mqtt._tcp</type>" in written.read_text()
    assert written.stat().st_mode & 0o777 == 0o644
    await announcer.close()
    await announcer.close()  # twice is safe
    assert list(paths.services_dir.iterdir()) == []


async def test_a_stale_service_file_of_the_same_gateway_is_replaced(tmp_path: Path) -> None:
    paths = _avahi(tmp_path, pid=os.getpid())
    stale = paths.services_dir / "outpost-aa212d0be4de.service"
    stale.write_text("<service-group>left by a kill -9</service-group>")
    announcer = await start_announcing(_plan(), avahi_paths=paths, responder=FakeResponder().start)
    assert announcer is not None
    assert "<port>3210</port>" in stale.read_text()
    await announcer.close()


async def test_without_avahi_our_responder_announces(tmp_path: Path) -> None:
    responder = FakeResponder()
    paths = _avahi(tmp_path, pid=None)
    announcer = await start_announcing(_plan(), avahi_paths=paths, responder=responder.start)
    assert announcer is responder and responder.started == [_plan()]
    assert list(paths.services_dir.iterdir()) == []


async def test_an_avahi_directory_we_cannot_write_falls_back_to_our_responder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = _avahi(tmp_path, pid=os.getpid())
    paths.services_dir.rmdir()
    paths.services_dir.write_text("a file where the directory should be")
    responder = FakeResponder()
    with caplog.at_level(logging.WARNING, logger="gateway.discovery"):
        announcer = await start_announcing(_plan(), avahi_paths=paths, responder=responder.start)
    assert announcer is responder
    [line] = [r.getMessage() for r in caplog.records]
    assert "avahi-daemon runs but" in line and "not writable" in line


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (OSError(errno.EADDRINUSE, "Address already in use"), "UDP port 5353 is held"),
        (OSError(errno.ENODEV, "No such device"), "No such device"),
        (RuntimeError("no interfaces"), "no interfaces"),
    ],
)
async def test_a_failure_to_announce_is_one_warning_and_no_announcer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: Exception, said: str
) -> None:
    async def failing(plan: Plan) -> FakeResponder:
        raise error

    with caplog.at_level(logging.DEBUG):
        announcer = await start_announcing(
            _plan(), avahi_paths=_avahi(tmp_path, pid=None), responder=failing
        )
    assert announcer is None
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.startswith("not announced on the LAN (") and said in line
    assert "serving anyway" in line
