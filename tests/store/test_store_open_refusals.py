"""A store that cannot be opened now is refused in one line and left as it is.

Only real damage is moved aside (``test_store_layout.py``); a lock held by another
process, a second gateway on the directory, a connection that cannot open or a
read-only filesystem stop the open and change no file. Locks are held by real second
processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import gateway.store.store as store_module
from gateway.errors import StoreUnavailableError
from gateway.store import Store
from gateway.store.datadir import claim
from gateway.store.layout import DB_FILENAME, connect, is_corruption
from gateway.store.lock import StoreLock

ROWS = 500
REPO = Path(__file__).resolve().parents[2]

# Another process takes SQLite's exclusive lock on the store (the reproduction)
# and keeps it until its stdin closes.
HOLD_SQLITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode=EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
conn.execute("CREATE TABLE zz(x)")
print("held", flush=True)
sys.stdin.read()
"""

# Another process opens the store as a gateway would, and keeps it open.
HOLD_STORE = """
import asyncio, sys
from gateway.store import Store

async def main():
    store = await Store.open(sys.argv[1])
    print("held", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await store.close()

asyncio.run(main())
"""


def make_store(data_dir: Path, rows: int = ROWS) -> Path:
    """A closed store with ``rows`` rows in a table of its own; returns the file."""
    asyncio.run(_open_and_close(data_dir))
    db = data_dir / DB_FILENAME
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE filler (n INTEGER, text TEXT)")
    conn.executemany("INSERT INTO filler VALUES (?, ?)", ((i, "x" * 200) for i in range(rows)))
    conn.commit()
    conn.close()
    return db


async def _open_and_close(data_dir: Path) -> None:
    store = await Store.open(data_dir)
    await store.close()


def fingerprint(data_dir: Path) -> dict[str, str]:
    """Name -> SHA-256 of every store file (the lock file aside: it is ours)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data_dir.iterdir())
        if p.name.startswith(DB_FILENAME)
    }


def row_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM filler").fetchone()[0])
    finally:
        conn.close()


def no_damaged_copy(data_dir: Path) -> bool:
    return not any(".damaged-" in p.name for p in data_dir.iterdir())


@contextmanager
def holding(script: str, target: Path) -> Iterator[subprocess.Popen[str]]:
    """Run ``script`` in another process until it prints "held"; stop it on exit."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = _readline(proc, deadline_s=30)
        assert line == "held\n", f"holder did not start: {line!r}"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _readline(proc: subprocess.Popen[str], deadline_s: float) -> str:
    """One stdout line, read on a plain thread so the wait has a deadline."""
    out: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: out.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(deadline_s)
    return out[0] if out else ""


async def test_a_locked_store_is_refused_and_left_untouched(tmp_path: Path) -> None:
    data = tmp_path / "d"
    db = await asyncio.to_thread(make_store, data)
    with holding(HOLD_SQLITE_LOCK, db):
        before = fingerprint(data)
        with pytest.raises(StoreUnavailableError) as caught:
            await Store.open(data, busy_timeout_ms=200)
        assert fingerprint(data) == before
    message = str(caught.value)
    assert "is locked by another process" in message and str(db) in message
    assert "left as it is" in message and "\n" not in message
    assert no_damaged_copy(data)
    assert row_count(db) == ROWS
    async with await Store.open(data):  # the holder gone, the same store opens
        pass
    assert row_count(db) == ROWS


async def test_a_lock_met_by_quick_check_itself_is_not_damage(tmp_path: Path) -> None:
    """A connection whose own pragmas get through leaves ``quick_check`` to meet the
    lock: still a refusal, never a quarantine."""

    def without_pragmas(
        path: Path, *, readonly: bool = False, busy_timeout_ms: int = 5000
    ) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 100")
        return conn

    data = tmp_path / "d"
    db = await asyncio.to_thread(make_store, data)
    with holding(HOLD_SQLITE_LOCK, db):
        before = fingerprint(data)
        with pytest.raises(StoreUnavailableError, match="is locked by another process"):
            await Store.open(data, connect=without_pragmas)
        assert fingerprint(data) == before
    assert no_damaged_copy(data)
    assert row_count(db) == ROWS


async def test_a_second_store_in_this_process_is_refused_by_pid(tmp_path: Path) -> None:
    first = await Store.open(tmp_path)
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            await Store.open(tmp_path)
    finally:
        await first.close()
    assert str(caught.value) == (
        f"the data directory {tmp_path} is in use by another Outpost process "
        f"(PID {os.getpid()}); stop it first or use another --data-dir"
    )
    async with await Store.open(tmp_path):  # released by close
        pass


async def test_another_process_holding_the_store_is_named_until_it_is_killed(
    tmp_path: Path,
) -> None:
    data = tmp_path / "d"
    db = await asyncio.to_thread(make_store, data)
    with holding(HOLD_STORE, data) as holder:
        with pytest.raises(
            StoreUnavailableError, match=f"another Outpost process \\(PID {holder.pid}\\)"
        ):
            await Store.open(data)
        holder.send_signal(signal.SIGKILL)  # the kernel drops the lock with the process
        holder.wait(timeout=30)
        async with await Store.open(data):
            pass
    assert row_count(db) == ROWS


@pytest.mark.parametrize("failing", ["outpost-writer", "outpost-reader-1"])
async def test_a_connection_that_cannot_open_fails_the_open_promptly(
    tmp_path: Path, failing: str
) -> None:
    """One thread's connection fails for real (its directory does not exist); the
    threads started before and beside it are stopped."""

    def broken_for_one(
        path: Path, *, readonly: bool = False, busy_timeout_ms: int = 5000
    ) -> sqlite3.Connection:
        if threading.current_thread().name == failing:
            path = path.parent / "missing" / path.name
        return connect(path, readonly=readonly, busy_timeout_ms=busy_timeout_ms)

    with pytest.raises(StoreUnavailableError, match="cannot open the store") as caught:
        await asyncio.wait_for(Store.open(tmp_path, connect=broken_for_one, reader_threads=3), 10)
    assert str(tmp_path / DB_FILENAME) in str(caught.value)
    left = [t.name for t in threading.enumerate() if t.name.startswith("outpost-")]
    assert left == []
    async with await Store.open(tmp_path):  # the lock went with the failed open
        pass


async def test_a_data_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.write_text("not a directory")
    with pytest.raises(StoreUnavailableError, match="is a file, not a directory"):
        await Store.open(target)
    assert target.read_text() == "not a directory"


READ_ONLY_BIND = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def in_read_only_mount(directory: Path, *command: str) -> list[str]:
    """``command`` run with ``directory`` bind-mounted read-only over itself, in a
    private mount namespace: nothing outside that one process sees the mount."""
    return [
        "unshare", "-m", "--propagation", "private",
        "sh", "-c", READ_ONLY_BIND, "sh", str(directory), *command,
    ]  # fmt: skip


@pytest.fixture
def read_only_mount(tmp_path: Path) -> None:
    """Skip unless this process may make a read-only bind mount (root, mount ns)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    probe = subprocess.run(
        in_read_only_mount(probe_dir, "touch", str(probe_dir / "x")),
        capture_output=True,
        text=True,
        timeout=30,
    )
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"no read-only bind mounts here: {probe.stderr.strip()}")


OPEN_AND_REPORT = """
import asyncio, sys
from gateway.errors import OutpostError
from gateway.store import Store

try:
    asyncio.run(Store.open(sys.argv[1]))
except OutpostError as exc:
    print(type(exc).__name__, exc)
else:
    print("opened")
"""


@pytest.mark.usefixtures("read_only_mount")
def test_a_read_only_filesystem_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A real read-only filesystem (see ``in_read_only_mount``)."""
    data = tmp_path / "d"
    db = make_store(data)
    before = fingerprint(data)
    done = subprocess.run(
        in_read_only_mount(data, sys.executable, "-c", OPEN_AND_REPORT, str(data)),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.stdout == (
        f"StoreUnavailableError the data directory {data} is on a read-only filesystem; "
        "remount it read-write or use another --data-dir (nothing was changed)\n"
    ), done.stderr
    assert fingerprint(data) == before
    assert no_damaged_copy(data)
    assert row_count(db) == ROWS


# --- the same refusals as `outpost serve` shows them ------------------------------------

OUTPOST = Path(sys.executable).parent / "outpost"
GREENHOUSE = REPO / "examples" / "greenhouse"
# The greenhouse app has MQTT routes; these tests are not about the broker (which
# would take port 1883, shared by every test running at once).
NO_BROKER = {"OUTPOST_MQTT_BROKER": "off"}


def serve_command(data: Path) -> list[str]:
    return [str(OUTPOST), "serve", str(GREENHOUSE), "--data-dir", str(data), "--port", "0"]


def serve_env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}, **NO_BROKER}


def refusal_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one ``outpost:`` line a refused start prints (log lines aside), no traceback."""
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("outpost: ")]
    return line


def test_serve_on_a_locked_store_exits_with_one_line_and_keeps_the_store(
    tmp_path: Path,
) -> None:
    """The issue's reproduction, at the default 5 s busy timeout."""
    data = tmp_path / "d"
    db = make_store(data)
    with holding(HOLD_SQLITE_LOCK, db):
        before = fingerprint(data)
        done = subprocess.run(
            serve_command(data), capture_output=True, text=True, timeout=60, env=serve_env()
        )
        assert fingerprint(data) == before
    line = refusal_line(done)
    assert f"the store {db} is locked by another process (database is locked)" in line
    assert "left as it is" in line
    assert no_damaged_copy(data)
    assert row_count(db) == ROWS


def test_a_second_serve_on_one_data_directory_names_the_first(tmp_path: Path) -> None:
    data = tmp_path / "d"
    first = subprocess.Popen(
        serve_command(data),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=serve_env(),
    )
    try:
        ready = _readline(first, deadline_s=60)
        assert ready.startswith("Outpost listening on http://"), ready
        second = subprocess.run(
            serve_command(data), capture_output=True, text=True, timeout=60, env=serve_env()
        )
        line = refusal_line(second)
        assert (
            f"the data directory {data} is in use by another Outpost process "
            f"(PID {first.pid}); stop it first or use another --data-dir"
        ) in line
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
        assert first.stdout is not None
        first.stdout.close()


async def test_an_open_cancelled_while_claiming_leaves_the_directory_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim runs on a worker thread that a cancel cannot stop: the lock it takes
    after the cancel must not stay held by this process."""
    entered, go_on, claimed = threading.Event(), threading.Event(), threading.Event()

    def slow_claim(data_dir: Path) -> StoreLock:
        entered.set()
        go_on.wait(30)
        try:
            return claim(data_dir)
        finally:
            claimed.set()

    monkeypatch.setattr(store_module, "claim", slow_claim)
    opening = asyncio.ensure_future(Store.open(tmp_path))
    assert await asyncio.to_thread(entered.wait, 30)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    go_on.set()
    monkeypatch.undo()
    assert await asyncio.to_thread(claimed.wait, 30)
    deadline = asyncio.get_running_loop().time() + 5
    while True:  # the worker thread finishes its claim, then the loop releases it
        try:
            store = await Store.open(tmp_path)
            break
        except StoreUnavailableError:
            assert asyncio.get_running_loop().time() < deadline, "the lock stayed held"
            await asyncio.sleep(0.01)
    await store.close()


@pytest.mark.parametrize(
    ("code", "damage"),
    [
        (11, True),  # SQLITE_CORRUPT
        (267, True),  # SQLITE_CORRUPT_VTAB: an extended code of CORRUPT
        (26, True),  # SQLITE_NOTADB
        (5, False),  # SQLITE_BUSY
        (261, False),  # SQLITE_BUSY_RECOVERY
        (8, False),  # SQLITE_READONLY
        (266, False),  # SQLITE_IOERR_READ
        (13, False),  # SQLITE_FULL
        (14, False),  # SQLITE_CANTOPEN
        (None, False),  # no code at all
    ],
)
def test_only_corruption_codes_count_as_damage(code: int | None, damage: bool) -> None:
    exc = sqlite3.OperationalError("some failure")
    if code is not None:
        exc.sqlite_errorcode = code
    assert is_corruption(exc) is damage
