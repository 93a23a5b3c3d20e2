"""kill -9 durability: every acknowledged mutation survives, the file stays sound.

A child process (kill9_child.py) opens a Gateway with the greenhouse app and runs
``readings:ingest`` from 16 concurrent callers, so group commit batches hold many
mutations; it prints each id only after ``run_mutation`` returned (the batch was
COMMITted). The test starts the child on the same data directory round after round
and SIGKILLs it mid-stream: after a random number of acks, at a random moment, or
at a random moment of startup (store recovery, schema apply). After every kill it
opens the SQLite file directly: ``PRAGMA integrity_check`` is ``ok``, no store was
moved aside as damaged, and every id ever acknowledged is there, once. At the end a
Gateway reopens the store and its queries see exactly what SQLite holds.

What this proves and what it does not: a SIGKILL loses the process but not the
operating system's page cache, so this is crash consistency of the store and the
ack-after-COMMIT contract. It is not a power-loss test of ``synchronous=FULL``.

CI tier: 5 kills. Soak tier: 100 kills (``pytest -m soak`` or ``OUTPOST_SOAK=1``).
Figures print at the end of each tier (``-s`` shows them). ``OUTPOST_KILL9_SEED``
replays a run's random choices (the seed is printed with the figures).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway import Gateway, Settings

HERE = Path(__file__).resolve().parent
CHILD = HERE / "kill9_child.py"
GREENHOUSE = HERE.parents[1] / "examples" / "greenhouse"
DB_NAME = "outpost.sqlite3"
DEVICES = ("kill9-d0", "kill9-d1", "kill9-d2", "kill9-d3")  # as in kill9_child.py
CONCURRENCY = 16

STARTUP_DEADLINE_S = 30.0  # a child that is not ready by then is a failure
PROGRESS_DEADLINE_S = 30.0  # nor is one that stops acknowledging
EXIT_DEADLINE_S = 30.0  # a SIGKILLed child's pipe closes and it is reaped by then
MAX_ACKS_PER_ROUND = 400
MAX_TIME_AFTER_READY_S = 0.25


@dataclass
class Tally:
    """Everything the tier measured, for the figures and the failure message."""

    tier: str
    seed: int
    kills: int = 0
    acked: list[str] = field(default_factory=list)
    acked_set: set[str] = field(default_factory=set)
    late_acks: int = 0  # ack lines still in the pipe when the kill landed
    modes: Counter[str] = field(default_factory=Counter)
    killed_before_ready: int = 0
    ack_seconds: float = 0.0  # ready -> kill, summed over rounds
    startup_seconds: list[float] = field(default_factory=list)
    jobs: int = 0  # writer counters from each round's last ``stats`` line
    commits: int = 0
    docs: int = 0
    readings: int = 0
    problems: list[str] = field(default_factory=list)

    def figures(self, wall_s: float) -> str:
        acks = len(self.acked)
        rate = acks / self.ack_seconds if self.ack_seconds else 0.0
        batch = f"{self.jobs / self.commits:.1f}" if self.commits else "n/a"
        startup = (
            f"{sorted(self.startup_seconds)[len(self.startup_seconds) // 2]:.2f}s"
            if self.startup_seconds
            else "n/a"
        )
        modes = ", ".join(f"{m}={n}" for m, n in sorted(self.modes.items()))
        return (
            f"kill9 [{self.tier}] seed={self.seed} kills={self.kills} ({modes}; "
            f"{self.killed_before_ready} before ready)\n"
            f"  acked={acks} by children (of which {self.late_acks} read after the kill), "
            f"{len(self.acked_set)} in all; docs={self.docs} readings={self.readings} "
            f"committed-but-unacked={self.readings - len(self.acked_set)}\n"
            f"  acks/s={rate:.0f} over {self.ack_seconds:.2f}s of writing; "
            f"mean batch={batch} mutations/commit; median startup={startup}; "
            f"wall={wall_s:.1f}s\n"
            f"  discrepancies={len(self.problems)}" + "".join(f"\n    - {p}" for p in self.problems)
        )


class RoundFailed(Exception):
    """The round found a discrepancy; the tier stops (the store is now suspect)."""


async def test_kill9_ci(tmp_path: Path) -> None:
    await run_tier(tmp_path, tier="ci", kills=5)


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_kill9_soak(tmp_path: Path) -> None:
    await run_tier(tmp_path, tier="soak", kills=100)


async def run_tier(tmp_path: Path, *, tier: str, kills: int) -> None:
    seed = int(os.environ.get("OUTPOST_KILL9_SEED") or random.SystemRandom().getrandbits(32))
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    logs_dir = tmp_path / "child-logs"
    data_dir.mkdir()
    logs_dir.mkdir()
    tally = Tally(tier, seed)
    started = time.monotonic()
    try:
        for round_no in range(kills):
            mode = "acks" if round_no == 0 else rng.choices(MODES, WEIGHTS)[0]
            await kill_round(data_dir, logs_dir, rng, tally, round_no, mode)
            check_store(data_dir, tally, f"after kill {round_no + 1} ({mode})")
            if tally.problems:
                raise RoundFailed
        await check_through_gateway(data_dir, tally)
    except RoundFailed:
        pass
    finally:
        print("\n" + tally.figures(time.monotonic() - started), flush=True)
    assert not tally.problems, (
        f"kill -9 found {len(tally.problems)} discrepancies (seed {seed}, "
        f"child logs in {logs_dir}):\n" + "\n".join(tally.problems)
    )
    assert tally.kills == kills
    assert len(tally.acked_set) > 0


MODES = ("acks", "time", "startup")
WEIGHTS = (0.45, 0.45, 0.10)


async def kill_round(
    data_dir: Path,
    logs_dir: Path,
    rng: random.Random,
    tally: Tally,
    round_no: int,
    mode: str,
) -> None:
    """Start a child on ``data_dir``, SIGKILL it mid-stream, collect its acks."""
    loop = asyncio.get_running_loop()
    err_path = logs_dir / f"round-{round_no:03d}.stderr"
    acks: list[str] = []
    stats: tuple[int, int] | None = None
    ready_at: float | None = None
    where = f"round {round_no + 1} ({mode})"

    def stderr_tail() -> str:
        text = err_path.read_text(errors="replace") if err_path.exists() else ""
        return text[-2000:] or "(empty)"

    def handle(raw: bytes) -> None:
        nonlocal stats, ready_at
        line = raw.decode(errors="replace").rstrip("\n")
        kind, _, rest = line.partition(" ")
        if kind == "ack":
            acks.append(rest)
        elif kind == "ready":
            ready_at = loop.time()
        elif kind == "stats":
            jobs, commits = rest.split()
            stats = (int(jobs), int(commits))
        else:
            tally.problems.append(f"{where}: child said {line!r}; stderr: {stderr_tail()}")
            raise RoundFailed

    with err_path.open("wb") as err:
        spawned_at = loop.time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            str(data_dir),
            str(CONCURRENCY),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdout is not None
    killed = False
    try:

        async def read_until(stop_at: float, done: Callable[[], bool]) -> bool:
            """Read lines until ``done()`` or ``stop_at``; False on EOF (child died)."""
            while not done():
                remaining = stop_at - loop.time()
                if remaining <= 0:
                    return True
                try:
                    raw = await asyncio.wait_for(proc.stdout.readline(), remaining)
                except TimeoutError:
                    return True
                if not raw:
                    return False
                handle(raw)
            return True

        typical = sorted(tally.startup_seconds)[-1] if tally.startup_seconds else 0.5
        if mode == "startup":
            kill_at = spawned_at + rng.uniform(0.0, 1.2 * typical)
            alive = await read_until(kill_at, lambda: False)
        else:
            alive = await read_until(spawned_at + STARTUP_DEADLINE_S, lambda: ready_at is not None)
            if alive and ready_at is None:
                tally.problems.append(
                    f"{where}: child not ready after {STARTUP_DEADLINE_S}s; stderr: {stderr_tail()}"
                )
                raise RoundFailed
            if mode == "acks":
                target = rng.randint(1, MAX_ACKS_PER_ROUND)
                alive = await read_until(
                    loop.time() + PROGRESS_DEADLINE_S, lambda: len(acks) >= target
                )
                if alive and len(acks) < target:
                    tally.problems.append(
                        f"{where}: only {len(acks)} of {target} acks within "
                        f"{PROGRESS_DEADLINE_S}s; stderr: {stderr_tail()}"
                    )
                    raise RoundFailed
            else:
                assert ready_at is not None
                kill_at = ready_at + rng.uniform(0.0, MAX_TIME_AFTER_READY_S)
                alive = await read_until(kill_at, lambda: False)
        if not alive:
            rc = await asyncio.wait_for(proc.wait(), EXIT_DEADLINE_S)
            tally.problems.append(
                f"{where}: child exited by itself (status {rc}) before the kill; "
                f"stderr: {stderr_tail()}"
            )
            raise RoundFailed

        os.kill(proc.pid, signal.SIGKILL)
        killed = True
        killed_at = loop.time()
        seen_before_kill = len(acks)
        # Lines already in the pipe were written, so acknowledged, before the kill.
        rest = await asyncio.wait_for(proc.stdout.read(), EXIT_DEADLINE_S)
        lines = rest.split(b"\n")
        if lines[-1]:
            tally.problems.append(f"{where}: a partial line in the pipe: {lines[-1]!r}")
        for raw in lines[:-1]:
            handle(raw)
        rc = await asyncio.wait_for(proc.wait(), EXIT_DEADLINE_S)
        if rc != -signal.SIGKILL:
            tally.problems.append(f"{where}: exit status {rc}, not -SIGKILL; {stderr_tail()}")
    finally:
        if proc.returncode is None:
            if not killed:
                proc.kill()
            await proc.wait()

    tally.kills += 1
    tally.modes[mode] += 1
    tally.late_acks += len(acks) - seen_before_kill
    if ready_at is None:
        tally.killed_before_ready += 1
    else:
        tally.startup_seconds.append(ready_at - spawned_at)
        tally.ack_seconds += killed_at - ready_at
    if stats is not None:
        tally.jobs += stats[0]
        tally.commits += stats[1]
    for new_id in acks:
        if new_id in tally.acked_set:
            tally.problems.append(f"{where}: id {new_id} acknowledged twice")
        tally.acked_set.add(new_id)
        tally.acked.append(new_id)


def check_store(data_dir: Path, tally: Tally, where: str) -> None:
    """Open the killed store read-only and hold it to every acknowledgement so far."""
    damaged = sorted(p.name for p in data_dir.glob(f"{DB_NAME}.damaged-*"))
    if damaged:
        tally.problems.append(f"{where}: the store was moved aside as damaged: {damaged}")
    db = data_dir / DB_NAME
    if not db.exists():
        if tally.acked_set:
            tally.problems.append(f"{where}: {db} is gone")
        return
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            tally.problems.append(f"{where}: integrity_check says {integrity[:10]}")
        try:
            ids = [row[0] for row in conn.execute("SELECT id FROM documents")]
            readings = conn.execute(
                "SELECT count(*) FROM documents d JOIN tables t ON d.tbl = t.number "
                "WHERE t.name = 'readings'"
            ).fetchone()[0]
        except sqlite3.OperationalError as exc:  # killed before the layout was created
            if tally.acked_set:
                tally.problems.append(f"{where}: cannot read documents: {exc}")
            return
    counts = Counter(ids)
    twice = [i for i, n in counts.items() if n > 1]
    if twice:
        tally.problems.append(f"{where}: {len(twice)} ids stored more than once: {twice[:5]}")
    missing = tally.acked_set - counts.keys()
    if missing:
        tally.problems.append(
            f"{where}: {len(missing)} of {len(tally.acked_set)} acknowledged ids are missing "
            f"from the store, e.g. {sorted(missing)[:5]}"
        )
    if len(ids) < len(tally.acked_set) or readings < len(tally.acked_set):
        tally.problems.append(
            f"{where}: {len(ids)} documents ({readings} readings) < "
            f"{len(tally.acked_set)} acknowledged"
        )
    tally.docs, tally.readings = len(ids), readings


async def check_through_gateway(data_dir: Path, tally: Tally) -> None:
    """Reopen the killed store in-process: the runtime sees exactly what SQLite holds."""
    with closing(sqlite3.connect(f"file:{data_dir / DB_NAME}?mode=ro", uri=True)) as conn:
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT d.id FROM documents d JOIN tables t ON d.tbl = t.number "
                "WHERE t.name = 'readings'"
            )
        }
    async with Gateway.open(GREENHOUSE, data_dir, Settings()) as gw:
        paged: list[str] = []
        cursor = None
        while True:
            page = await gw.run_query(
                "readings:page", {"paginationOpts": {"numItems": 1000, "cursor": cursor}}
            )
            paged.extend(doc["_id"] for doc in page["page"])
            if page["isDone"]:
                break
            cursor = page["continueCursor"]
        counted = 0
        for device in DEVICES:
            counted += int((await gw.run_query("readings:stats", {"device": device}))["count"])
        after = await gw.run_mutation("readings:ingest", {"device": DEVICES[0], "celsius": 1.0})
    where = "reopened through Gateway"
    if len(paged) != len(set(paged)):
        tally.problems.append(f"{where}: readings:page returned an id twice")
    if set(paged) != stored:
        tally.problems.append(
            f"{where}: readings:page saw {len(paged)} readings, SQLite holds {len(stored)} "
            f"({len(set(paged) - stored)} extra, {len(stored - set(paged))} unseen)"
        )
    if counted != len(stored):
        tally.problems.append(
            f"{where}: readings:stats counts {counted} readings, SQLite holds {len(stored)}"
        )
    missing = tally.acked_set - set(paged)
    if missing:
        tally.problems.append(f"{where}: {len(missing)} acknowledged ids not seen by queries")
    # The mutation run after the reopen is acknowledged too: hold the store to it.
    tally.acked_set.add(after)
    check_store(data_dir, tally, "after the clean reopen")
