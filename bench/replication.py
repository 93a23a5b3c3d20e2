"""Replication drain: an edge `outpost serve` empties a backlog into a hub `outpost serve`
on loopback, vs a bare aiohttp client POSTing the same batches to a bare aiohttp server
that writes them with sqlite3 ``executemany`` (WAL, synchronous=FULL). Also the edge's
ingest latency (one small mutation) while draining vs idle.

Placement: by default the upstream (the hub, or the baseline's server) runs on CPU 1 and
everything else (the edge or the baseline's client, and this process's load) on CPU 0,
as if the upstream were its own machine, which it is in a deployment: on a shared core
the edge's ingest latency would measure the hub's work, not the edge's. ``--no-pin``
lets the scheduler place them.

Idle latency is timed after the fill, on the same store and backlog (the hub not yet
up), so draining is the only difference. The backlog is filled fast: the edge starts
with ``upstream_url`` pointing at the hub's port before the hub runs, and mutations
insert ``--per-mutation`` documents each. The drain is timed from the hub's start to the
hub's mark for the edge reaching the backlog's last seq (read from the hub's store,
read-only, ten times a second, by a process of its own), so it includes the hub's
start-up and the edge's backoff before it notices (up to a minute after a long outage);
the steady rate, from the first applied batch to the last, is what the ratio uses. The
draining latency counts the samples sent in that same window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    fmt,
    free_port,
    make_workdir,
    median,
    percentile,
    start_listening,
    stop_process,
    verdict,
    write_app,
)

BATCH = 1000  # the edge's MAX_BATCH_CHANGES: the baseline sends batches of the same size
SCHEMA = """
from gateway import define_schema, define_table, v

schema = define_schema({
    "readings": define_table({"n": v.float64(), "device": v.string()}).replicate("up"),
})
"""
FUNCTIONS = """
from gateway import mutation

@mutation
async def add(ctx, args):
    return await ctx.db.insert("readings", {"n": args["n"], "device": "sensor-1"})

@mutation
async def add_many(ctx, args):
    for n in range(int(args["start"]), int(args["start"]) + int(args["count"])):
        await ctx.db.insert("readings", {"n": float(n), "device": "sensor-1"})
"""
# The marks through their by_creation_time index rows: a scan of ``documents`` by table
# (it has no index by table) would read the whole store ten times a second, on the
# edge's CPU, and show up as the edge's ingest latency.
MARKS_SQL = (
    "SELECT d.body FROM indexes i JOIN documents d ON d.id = i.doc_id WHERE i.index_id = "
    "(SELECT x.index_id FROM index_defs x JOIN tables t ON t.number = x.tbl "
    "WHERE t.name = '_replication_marks' AND x.name = 'by_creation_time')"
)


# --- the baseline ------------------------------------------------------------------------


def baseline_server(port: int, db: str) -> None:
    """A bare aiohttp server: each POSTed batch -> one executemany and one COMMIT."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, tbl TEXT, ts TEXT, body TEXT)"
    )

    async def push(request: web.Request) -> web.Response:
        batch = (await request.json())["args"]
        rows = [
            (c["id"], c["table"], c["ts"], json.dumps(c["doc"], separators=(",", ":")))
            for c in batch["changes"]
        ]
        conn.execute("BEGIN")
        conn.executemany("INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        return web.json_response({"status": "success", "value": {"applied": batch["last"]}})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/api/mutation", push)
    print(f"baseline listening on http://127.0.0.1:{port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _batch(first: int, count: int) -> dict[str, Any]:
    """The same shape and sizes as the edge's batches (``gateway/replication/batch.py``)."""
    changes = [
        {
            "seq": float(seq),
            "op": "insert",
            "table": "readings",
            "id": f"k{seq:031d}",
            "ts": str(1_700_000_000_000_000_000 + seq),
            "doc": {
                "_id": f"k{seq:031d}",
                "_creationTime": 1_700_000_000_000.0 + seq,
                "n": float(seq),
                "device": "sensor-1",
            },
        }
        for seq in range(first, first + count)
    ]
    args = {"gateway": "bench", "key": "k" * 40, "epoch": 1.0, "first": float(first)}
    args |= {"last": float(first + count - 1), "clockTrusted": True, "schema": "s"}
    return {
        "path": "_system/replication:push",
        "args": args | {"changes": changes},
        "format": "json",
    }


async def baseline_round(workdir: Path, upstream_dir: Path, docs: int) -> float:
    """Seconds for the bare client to push ``docs`` documents, one batch in flight."""
    port = free_port()
    db = upstream_dir / "baseline.sqlite3"
    cmd = [sys.executable, __file__, "--baseline-server", str(port), "--db", str(db)]
    cmd = _pinned(cmd, "upstream")
    proc, url = start_listening(cmd, "baseline listening", workdir / "baseline.log")
    try:
        async with aiohttp.ClientSession() as session:
            start = time.perf_counter()
            for first in range(1, docs + 1, BATCH):
                body = json.dumps(_batch(first, min(BATCH, docs - first + 1)))
                async with session.post(
                    f"{url}/api/mutation", data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    assert (await response.json())["status"] == "success"
            return time.perf_counter() - start
    finally:
        stop_process(proc)
        for path in await asyncio.to_thread(lambda: list(upstream_dir.glob("baseline.sqlite3*"))):
            path.unlink()


# --- Outpost -----------------------------------------------------------------------------


def _env(upstream: str, hub: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env |= {"OUTPOST_MQTT_BROKER": "off", "OUTPOST_UPSTREAM_URL": upstream}
    if hub:
        env["OUTPOST_HUB"] = "true"
    return env


PIN = {"edge": "0", "upstream": "1"}  # CPUs (``--no-pin``: empty, none)


def _pinned(cmd: list[str], role: str) -> list[str]:
    cpu = PIN.get(role, "")
    return ["taskset", "-c", cpu, *cmd] if cpu else cmd


def _serve(
    app: Path, data: Path, port: int, upstream: str, hub: bool, log: Path
) -> tuple[subprocess.Popen[str], str]:
    outpost = Path(sys.executable).parent / "outpost"
    cmd = [str(outpost), "serve", str(app), "--data-dir", str(data), "--port", str(port)]
    cmd = _pinned(cmd, "upstream" if hub else "edge")
    # start_listening passes this process's environment on: set it for this server.
    for key in [k for k in os.environ if k.startswith("OUTPOST_")]:
        del os.environ[key]
    os.environ.update(_env(upstream, hub))
    return start_listening(cmd, "Outpost listening on", log)


def _gateway_id(app: Path, data: Path) -> str:
    code = (
        "import asyncio,sys\nfrom gateway import Gateway\n"
        "async def main():\n"
        "    async with Gateway.open(sys.argv[1], sys.argv[2]) as gw:\n"
        "        print(gw.store.gateway_id)\n"
        "asyncio.run(main())\n"
    )
    env = _env("", False)
    out = subprocess.run(
        [sys.executable, "-c", code, str(app), str(data)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return out.stdout.strip().splitlines()[-1]


def watch_marks(db: str, backlog: int) -> None:
    """The watcher process: the hub's mark, ten times a second, on one read-only
    connection; prints ``first <monotonic time> <mark>`` when a first batch is applied
    and ``drained <monotonic time>`` when the mark reaches ``backlog``. A process of its
    own: in the benchmark's, its queries would hold up the ingest sampler beside it and
    show up as the edge's latency."""
    conn: sqlite3.Connection | None = None
    first = False
    while True:
        try:
            if conn is None:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            rows = conn.execute(MARKS_SQL).fetchall()
        except sqlite3.Error:  # not there yet (the hub is starting)
            rows = []
            if conn is not None:
                conn.close()
            conn = None
        mark = max((int(json.loads(body)["applied"]) for (body,) in rows), default=0)
        if mark and not first:
            first = True
            print(f"first {time.monotonic()} {mark}", flush=True)
        if mark >= backlog:
            print(f"drained {time.monotonic()}", flush=True)
            return
        time.sleep(0.1)


async def _call(session: aiohttp.ClientSession, url: str, path: str, args: dict[str, Any]) -> Any:
    body = {"path": path, "args": args, "format": "json"}
    async with session.post(f"{url}/api/mutation", json=body) as response:
        answer = await response.json()
    assert answer["status"] == "success", answer
    return answer["value"]


async def _watch(hub_data: Path, backlog: int, drained: asyncio.Event) -> tuple[float, int, float]:
    """Wait for the hub's mark to reach ``backlog`` (``watch_marks``); (when the first
    batch was seen applied, the mark then, when the last was), on ``time.monotonic``'s
    clock: the steady rate leaves out the hub's start and the edge's backoff before it
    noticed the hub."""
    db = str(hub_data / "outpost.sqlite3")
    cmd = [sys.executable, __file__, "--watch-marks", db, "--backlog", str(backlog)]
    watcher = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    assert watcher.stdout is not None
    first_at, first_mark = 0.0, 0
    try:
        async for line in watcher.stdout:
            word, *rest = line.decode().split()
            if word == "first":
                first_at, first_mark = float(rest[0]), int(rest[1])
            elif word == "drained":
                drained.set()
                return first_at, first_mark, float(rest[0])
        raise RuntimeError("the mark watcher stopped before the drain ended")
    finally:
        if watcher.returncode is None:
            watcher.kill()
        await watcher.wait()


async def _ingest_latencies(
    session: aiohttp.ClientSession, url: str, until: asyncio.Event, most: int
) -> list[tuple[float, float]]:
    """One small mutation every 20 ms until ``until`` (or ``most`` samples): (when it
    was sent on ``time.monotonic``'s clock, how long it took)."""
    samples: list[tuple[float, float]] = []
    while not until.is_set() and len(samples) < most:
        sent, start = time.monotonic(), time.perf_counter()
        await _call(session, url, "readings:add", {"n": 1.0})
        samples.append((sent, time.perf_counter() - start))
        await asyncio.sleep(0.02)
    return samples


async def outpost_round(
    workdir: Path, upstream_dir: Path, docs: int, per_mutation: int, idle_samples: int
) -> dict[str, float]:
    app = write_app(workdir / "app", {"schema.py": SCHEMA, "readings.py": FUNCTIONS})
    edge_data, hub_data = workdir / "edge", upstream_dir / "hub"
    edge_id = await asyncio.to_thread(_gateway_id, app, edge_data)
    outpost = Path(sys.executable).parent / "outpost"
    added = await asyncio.to_thread(
        subprocess.run,
        [str(outpost), "gateway", "add", edge_id, "--json", str(app), "--data-dir", str(hub_data)],
        capture_output=True,
        text=True,
        check=True,
        env=_env("", True),
    )
    (edge_data / "upstream_key").write_text(json.loads(added.stdout)["key"])
    hub_port = free_port()
    edge, edge_url = _serve(
        app, edge_data, 0, f"http://127.0.0.1:{hub_port}", False, workdir / "edge.log"
    )
    hub: subprocess.Popen[str] | None = None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
            fill_start = time.perf_counter()
            sem = asyncio.Semaphore(4)

            async def fill(start: int) -> None:
                async with sem:
                    count = min(per_mutation, docs - start)
                    await _call(
                        session, edge_url, "readings:add_many", {"start": start, "count": count}
                    )

            await asyncio.gather(*(fill(s) for s in range(0, docs, per_mutation)))
            fill_s = time.perf_counter() - fill_start
            # Idle: the same store with its backlog, the uplink failing to reach the hub
            # (not yet started), so the comparison isolates the draining.
            idle = await _ingest_latencies(session, edge_url, asyncio.Event(), idle_samples)
            backlog = len(idle) + docs
            drained = asyncio.Event()
            drain_start = time.monotonic()
            sampler = asyncio.create_task(_ingest_latencies(session, edge_url, drained, 10**9))
            hub, _ = await asyncio.to_thread(
                _serve, app, hub_data, hub_port, "", True, workdir / "hub.log"
            )
            first_at, first_mark, drained_at = await _watch(hub_data, backlog, drained)
            drain_s = drained_at - drain_start
            # Draining: from the first applied batch on (before it the edge is backing
            # off, as idle as in the idle phase, and would dilute the figure).
            busy = [took for sent, took in await sampler if sent >= first_at]
    finally:
        stop_process(edge)
        if hub is not None:
            stop_process(hub)
    steady_s = drained_at - first_at
    return {
        "drain_s": drain_s,
        "steady_docs_per_s": (backlog - first_mark) / steady_s if steady_s > 0 else 0.0,
        "docs_per_s": backlog / drain_s,
        "fill_s": fill_s,
        "idle_p99_ms": percentile([took for _, took in idle], 0.99) * 1000,
        "busy_p99_ms": percentile(busy, 0.99) * 1000,
        "busy_samples": float(len(busy)),
    }


async def main(args: argparse.Namespace) -> int:
    if args.no_pin or (os.cpu_count() or 1) < 2:
        PIN.clear()
    elif PIN:
        os.sched_setaffinity(0, {int(PIN["edge"])})  # the load generator beside the edge
    base = make_workdir(args.dir)
    print(
        f"replication drain: {args.docs:,} documents, {args.rounds} rounds, batches of {BATCH}; "
        + (f"upstream on CPU {PIN['upstream']}, edge on CPU {PIN['edge']}" if PIN else "unpinned")
    )
    if args.docs < 1_000_000:
        print(f"NOTE: ran with --docs {args.docs:,}, fewer than the issue's 1,000,000")
    ratios, rows = [], []
    for n in range(args.rounds):
        work = base / f"round{n}"
        work.mkdir()
        try:
            upstream = Path(tempfile.mkdtemp(dir=args.upstream_dir)) if args.upstream_dir else work
            try:
                out = await outpost_round(
                    work, upstream, args.docs, args.per_mutation, args.idle_samples
                )
                base_s = await baseline_round(work, upstream, args.docs)
            finally:
                await asyncio.to_thread(shutil.rmtree, upstream, True)
        finally:  # two stores of --docs documents each: ~1 GB a round at 1,000,000
            await asyncio.to_thread(shutil.rmtree, work, True)
        out["baseline_docs_per_s"] = args.docs / base_s
        out["baseline_s"] = base_s
        ratios.append(out["steady_docs_per_s"] / out["baseline_docs_per_s"])
        rows.append(out)
        print(
            f"round {n + 1}: outpost {fmt(out['docs_per_s'])} docs/s over the whole drain "
            f"({out['drain_s']:.1f} s), steady {fmt(out['steady_docs_per_s'])} docs/s; "
            f"fill {out['fill_s']:.1f} s; baseline {fmt(out['baseline_docs_per_s'])} docs/s "
            f"({base_s:.1f} s)  ingest p99 idle {out['idle_p99_ms']:.1f} ms, draining "
            f"{out['busy_p99_ms']:.1f} ms ({out['busy_samples']:.0f} samples)",
            flush=True,
        )

    def med(key: str) -> float:
        value = median(r[key] for r in rows)
        assert value is not None
        return value

    ratio = median(ratios) or 0.0
    p99_ratio = med("busy_p99_ms") / med("idle_p99_ms")
    print(
        f"outpost  edge -> hub   {fmt(med('steady_docs_per_s'))} docs/s steady; time to drain "
        f"{med('drain_s'):.1f} s from the hub's start ({fmt(med('docs_per_s'))} docs/s)"
    )
    baseline = fmt(med("baseline_docs_per_s"))
    print(f"baseline aiohttp + sqlite3   {baseline} docs/s, {med('baseline_s'):.1f} s")
    print(
        f"edge ingest p99: idle {med('idle_p99_ms'):.1f} ms, draining {med('busy_p99_ms'):.1f} ms"
    )
    ok = ratio >= 0.5 and p99_ratio <= 2.0
    print(
        f"SUMMARY replication: steady drain {ratio:.2f}x baseline (goal >= 0.5x) "
        f"{verdict(ratio >= 0.5)}; "
        f"ingest p99 draining/idle {p99_ratio:.2f}x (goal <= 2x) {verdict(p99_ratio <= 2.0)}"
        f"; docs {args.docs:,}"
    )
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000, help="backlog size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--per-mutation", type=int, default=4000, help="documents per fill mutation"
    )
    parser.add_argument(  # about as many as a drain of 1,000,000 documents takes
        "--idle-samples", type=int, default=500, help="ingest calls timed idle"
    )
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temp dir)")
    parser.add_argument(
        "--upstream-dir",
        default=None,
        help="where the upstream's store goes (the hub's, the baseline server's): another "
        "disk, or /dev/shm, keeps the upstream's writes off the edge's disk (default: --dir)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument(
        "--no-pin", action="store_true", help="no CPU placement (upstream and edge share CPUs)"
    )
    parser.add_argument("--baseline-server", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--db", default="", help=argparse.SUPPRESS)
    parser.add_argument("--watch-marks", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backlog", type=int, default=0, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.watch_marks is not None:
        watch_marks(parsed.watch_marks, parsed.backlog)
        sys.exit(0)
    if parsed.baseline_server is not None:
        baseline_server(parsed.baseline_server, parsed.db)
        sys.exit(0)
    sys.exit(asyncio.run(main(parsed)))
