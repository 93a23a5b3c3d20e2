"""Child program for the kill -9 durability test (tests/e2e/test_kill9.py).

    python kill9_child.py DATA_DIR [CONCURRENCY] [LIFETIME_S]

Opens a Gateway with the greenhouse example app on DATA_DIR and runs
``readings:ingest`` from CONCURRENCY callers in a loop until it is killed. Protocol
on stdout, one line per event, each written with a single ``os.write`` (atomic on a
pipe, so the parent never sees half a line):

    ready <pid>                 startup finished (store open, schema applied)
    ack <id>                    run_mutation returned this id: the batch is COMMITted
    stats <jobs> <commits>      writer counters, every STATS_EVERY (32) acks
    error <repr>                a mutation failed; the child exits with status 2

An ``ack`` line is written only after ``run_mutation`` returned, so every id the
parent reads was acknowledged as durable. LIFETIME_S (default 120) bounds an orphan.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from gateway import Gateway, Settings

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "greenhouse"
DEVICES = ("kill9-d0", "kill9-d1", "kill9-d2", "kill9-d3")
STATS_EVERY = 32


def emit(line: str) -> None:
    try:
        os.write(1, (line + "\n").encode())
    except BrokenPipeError:  # the parent is gone: nothing left to report to
        os._exit(3)


async def run(data_dir: Path, concurrency: int) -> None:
    async with Gateway.open(APP_DIR, data_dir, Settings()) as gw:
        emit(f"ready {os.getpid()}")
        stats = gw.store.writer.stats
        acked = 0

        async def caller(k: int) -> None:
            nonlocal acked
            device = DEVICES[k % len(DEVICES)]
            n = 0
            while True:
                n += 1
                args = {"device": device, "celsius": 15.0 + (k * 7 + n) % 20}
                try:
                    new_id = await gw.run_mutation("readings:ingest", args)
                except Exception as exc:
                    emit(f"error {exc!r}")
                    os._exit(2)
                emit(f"ack {new_id}")
                acked += 1
                if acked % STATS_EVERY == 0:
                    emit(f"stats {stats.jobs} {stats.commits}")

        async with asyncio.TaskGroup() as tg:
            for k in range(concurrency):
                tg.create_task(caller(k))


async def main() -> None:
    data_dir = Path(sys.argv[1])
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    lifetime_s = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    try:
        async with asyncio.timeout(lifetime_s):
            await run(data_dir, concurrency)
    except TimeoutError:
        emit("error lifetime exceeded (the parent never killed this child)")
        os._exit(4)


if __name__ == "__main__":
    asyncio.run(main())
