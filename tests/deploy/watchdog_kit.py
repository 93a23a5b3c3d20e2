"""systemd's watchdog against a really blocked event loop, in the booted Debian root.

An action runs on the event loop (``gateway/runtime/runtime.py``), so an action that
calls ``time.sleep`` blocks the loop for real: the ``WATCHDOG=1`` task stops, and
systemd, ``WatchdogSec`` after the last ping, sends SIGABRT and (``Restart=on-failure``)
starts the gateway again. ``STALL`` is an app's module with that action; the app is the
greenhouse example plus it. A drop-in shortens ``WatchdogSec`` to ``WATCHDOG_S`` so the
test stays quick; ``MEASURE`` (run in the root with the installed virtualenv's Python)
stalls the loop and times each step on ``CLOCK_MONOTONIC``, the clock of systemd's
``WatchdogTimestampMonotonic`` (the last ping) and of the journal's monotonic stamps.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from install_kit import REPO

WATCHDOG_S = 5  # the drop-in's WatchdogSec; the unit ships 30 s
SHIPPED_WATCHDOG_S = 30
STALL_APP = "/opt/src-stall"  # greenhouse + convex/stall.py, inside the root
DROP_IN = "/etc/systemd/system/outpost.service.d/watchdog-test.conf"
MEASURE_FILE = "/root/watchdog.py"
STALL = '''"""An action that blocks the event loop: the watchdog test's way to stop the feeding."""

import time

from gateway import action, v


@action(args={"seconds": v.number()})
async def loop(ctx, args):
    """Sleep without yielding: the event loop, and every other call, waits."""
    time.sleep(args["seconds"])
'''

MEASURE = (
    f"""
WATCHDOG_S = {WATCHDOG_S}
SHIPPED_S = {SHIPPED_WATCHDOG_S}
"""
    + """
import json, subprocess, sys, threading, time, urllib.request

API = "http://127.0.0.1:3210"
DEADLINE = time.monotonic() + WATCHDOG_S + 60


def show():
    props = ["MainPID", "ActiveState", "NRestarts", "WatchdogTimestampMonotonic"]
    out = subprocess.run(
        ["systemctl", "show", *(f"-p{p}" for p in props), "outpost.service"],
        capture_output=True, text=True, check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def ready():
    try:
        with urllib.request.urlopen(API + "/health/ready", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def stall():
    body = {"path": "stall:loop", "args": {"seconds": 10 * WATCHDOG_S}, "format": "json"}
    request = urllib.request.Request(
        API + "/api/action", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        urllib.request.urlopen(request, timeout=20 * WATCHDOG_S).read()
    except OSError:
        pass  # the process is killed under it: the connection drops


def wait(what, done):
    while not done():
        if time.monotonic() > DEADLINE:
            sys.exit(f"timed out waiting for {what}; systemctl show: {show()}")
        time.sleep(0.05)


def journal_since(mono_s):
    out = subprocess.run(
        ["journalctl", "-u", "outpost.service", "-o", "json", "--no-pager", "-n", "200"],
        capture_output=True, text=True, check=True,
    ).stdout
    entries = [json.loads(line) for line in out.splitlines()]
    return [
        (int(e["__MONOTONIC_TIMESTAMP"]) / 1e6, str(e.get("MESSAGE", "")))
        for e in entries
        if int(e["__MONOTONIC_TIMESTAMP"]) / 1e6 >= mono_s
    ]


def first(entries, text, after=0.0):
    for at, message in entries:
        if at >= after and text in message:
            return at
    sys.exit(f"no journal line with {text!r} after {after}: {entries}")


wait("the gateway's readiness", ready)
before = show()
old_pid, restarts = before["MainPID"], int(before["NRestarts"])
# A ping within half the timeout: the watchdog is on for this process.
wait("a watchdog ping", lambda: int(show()["WatchdogTimestampMonotonic"]) > 0)
blocked_at = time.monotonic()
threading.Thread(target=stall, daemon=True).start()
last_ping = 0.0
while True:  # the last ping is the last WatchdogTimestamp the old process set
    now = show()
    if now["MainPID"] != old_pid:
        break
    if now["ActiveState"] == "active":
        last_ping = max(last_ping, int(now["WatchdogTimestampMonotonic"]) / 1e6)
    if time.monotonic() > DEADLINE:
        sys.exit(f"not restarted: {now}")
    time.sleep(0.05)


def restarted():
    now = show()
    return now["ActiveState"] == "active" and now["MainPID"] not in ("0", old_pid)


wait("a new main process, active", restarted)
active_at = time.monotonic()
wait("/health/ready 200 again", ready)
ready_at = time.monotonic()
after = show()
assert int(after["NRestarts"]) == restarts + 1, (before, after)

entries = journal_since(blocked_at - 1)
timeout_at = first(entries, "Watchdog timeout", blocked_at)
first(entries, "with signal SIGABRT", timeout_at)  # WatchdogSignal's default
exited_at = first(entries, "Main process exited", timeout_at)
first(entries, "Failed with result 'watchdog'", timeout_at)
started_at = first(entries, "Started ", exited_at)
print("watchdog figures:")
for at, message in entries:
    print(f"  journal +{at - blocked_at:6.3f} s  {message}")
assert blocked_at - WATCHDOG_S / 2 - 1 <= last_ping <= blocked_at + 0.5, (last_ping, blocked_at)

overhead = timeout_at - last_ping - WATCHDOG_S
restart = ready_at - timeout_at
print(f"pid {old_pid} -> {after['MainPID']}; WatchdogSec={WATCHDOG_S}s")
print(f"  loop blocked -> watchdog timeout  {timeout_at - blocked_at:6.3f} s"
      f"  (last ping -> timeout {timeout_at - last_ping:.3f} s, overhead {overhead * 1000:.0f} ms)")
print(f"  timeout -> old process gone       {exited_at - timeout_at:6.3f} s")
print(f"  gone -> new one READY (Started)   {started_at - exited_at:6.3f} s  (RestartSec=2s)")
print(f"  READY -> active seen by systemctl {active_at - started_at:6.3f} s")
print(f"  active -> /health/ready 200       {ready_at - active_at:6.3f} s")
print(f"  loop blocked -> ready again       {ready_at - blocked_at:6.3f} s")
print(f"  with the shipped WatchdogSec={SHIPPED_S}s: blocked -> killed in "
      f"{SHIPPED_S / 2 + overhead:.1f}..{SHIPPED_S + overhead:.1f} s, ready again "
      f"{restart:.1f} s later: {SHIPPED_S / 2 + overhead + restart:.1f}..{SHIPPED_S + overhead + restart:.1f} s")
print("ok: watchdog")
"""
)


def stage_stall_app(root_dir: Path) -> None:
    """The greenhouse example plus ``convex/stall.py`` at ``STALL_APP``, and ``MEASURE``,
    in the root at ``root_dir``."""
    target = root_dir / STALL_APP.lstrip("/")
    shutil.copytree(
        REPO / "examples" / "greenhouse", target, ignore=shutil.ignore_patterns("__pycache__")
    )
    (target / "convex" / "stall.py").write_text(STALL)
    (root_dir / MEASURE_FILE.lstrip("/")).write_text(MEASURE)


def booted_watchdog(install: str) -> str:
    """The booted script's part: shorten the watchdog, install the stalling app (one
    restart, on the new setting), measure."""
    return f"""
mkdir -p "$(dirname {DROP_IN})"
printf '[Service]\\nWatchdogSec={WATCHDOG_S}s\\n' >{DROP_IN}
systemctl daemon-reload
{install} --app {STALL_APP}
/opt/outpost/venv/bin/python {MEASURE_FILE} || fail "the watchdog did not restart a blocked gateway"
"""
