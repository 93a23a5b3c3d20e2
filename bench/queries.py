"""Indexed range query returning 100 documents: Outpost's runtime vs bare sqlite3.

``items:page`` is ``ctx.db.query("items").with_index("by_group", lambda q: q.eq("group",
g)).take(100)`` called through ``gw.run_query`` (reader thread, snapshot, read set,
argument and return validation). In the same run, on the same database file:

- **baseline, direct**: the same SELECT (``indexes`` joined to ``documents`` over the
  same key range, in key order, LIMIT 100) and ``gateway.values.loads`` of each body,
  on a read-only sqlite3 connection, called on the event loop's thread.
- **baseline, thread hop**: the same function run on a thread pool (one thread per
  Outpost reader thread, one connection each) via ``loop.run_in_executor`` — the same
  event-loop-to-thread round trip Outpost pays once per query.

The first round checks that all three return the same documents.

    .venv/bin/python bench/queries.py
    .venv/bin/python bench/queries.py --pin          # one core (taskset -c 0)
    .venv/bin/python bench/queries.py --callers 8    # concurrent callers
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import (
    Measurement,
    Meter,
    affinity_text,
    filesystem_of,
    fmt,
    make_workdir,
    median,
    pin_to_cpu,
    verdict,
    write_app,
)

from gateway import Gateway, Settings
from gateway.store.layout import DB_FILENAME
from gateway.values import encode_index_key, loads

TABLE = "items"
INDEX = "by_group"
PATH = "items:page"
RATIO_GOAL = 0.5

APP = {
    "schema.py": """
from gateway import define_schema, define_table, v

item = {
    "group": v.string(),
    "n": v.float64(),
    "label": v.string(),
    "reading": v.object({"celsius": v.float64(), "humidity": v.float64()}),
    "tags": v.array(v.string()),
}

schema = define_schema({"items": define_table(item).index("by_group", ["group"])})
""",
    "items.py": """
from gateway import mutation, query, v

from .schema import item


@mutation(args={"docs": v.array(v.object(item))})
async def seed(ctx, args):
    for doc in args["docs"]:
        await ctx.db.insert("items", doc)


@query(args={"group": v.string(), "limit": v.float64()}, returns=v.array(v.any()))
async def page(ctx, args):
    return await (
        ctx.db.query("items")
        .with_index("by_group", lambda q: q.eq("group", args["group"]))
        .take(int(args["limit"]))
    )
""",
}

SQL = (
    "SELECT i.key, d.body FROM indexes i JOIN documents d ON d.id = i.doc_id "
    "WHERE i.index_id = ? AND i.key >= ? AND i.key < ? ORDER BY i.key LIMIT ?"
)


def group_name(g: int) -> str:
    return f"group-{g:03d}"


def make_docs(groups: int, per_group: int) -> list[dict[str, Any]]:
    return [
        {
            "group": group_name(i % groups),
            "n": float(i),
            "label": f"item number {i:06d}",
            "reading": {"celsius": 15.0 + (i % 230) * 0.1, "humidity": 0.3 + (i % 50) * 0.01},
            "tags": ["greenhouse", f"zone-{i % 7}"],
        }
        for i in range(groups * per_group)
    ]


class Baseline:
    """The same SELECT + decode with bare sqlite3; one read-only connection per thread."""

    def __init__(self, db: Path, index_id: int, limit: int) -> None:
        self._db = db
        self._index_id = index_id
        self._limit = limit
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self._db}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def query(self, group: str) -> list[Any]:
        start = encode_index_key([group])
        end = start + b"\xff"  # every key whose first value is exactly ``group``
        rows = self._conn().execute(SQL, (self._index_id, start, end, self._limit)).fetchall()
        return [loads(body) for _key, body in rows]

    def close(self) -> None:
        for conn in self._conns:
            conn.close()


async def timed(
    call: Callable[[str], Awaitable[Any]],
    groups: list[str],
    queries: range,
    callers: int,
    threads: tuple[str, ...],
) -> Measurement:
    feed = iter(queries)

    async def caller() -> None:
        for i in feed:
            await call(groups[i % len(groups)])

    meter = Meter(threads)
    await asyncio.gather(*(caller() for _ in range(callers)))
    return meter.stop()


async def run(args: argparse.Namespace, work: Path) -> list[dict[str, Measurement]]:
    app_dir = write_app(work, APP)
    data_dir = work / "data"
    settings = Settings(reader_threads=args.reader_threads)
    groups = [group_name(g) for g in range(args.groups)]
    limit = float(args.limit)
    rounds: list[dict[str, Measurement]] = []
    async with Gateway.open(app_dir, data_dir, settings) as gw:
        docs = make_docs(args.groups, args.per_group)
        for i in range(0, len(docs), 200):
            await gw.run_mutation("items:seed", {"docs": docs[i : i + 200]})
        info = gw.store.catalog.table(TABLE)
        assert info is not None
        base = Baseline(data_dir / DB_FILENAME, info.indexes[INDEX].index_id, args.limit)
        pool = ThreadPoolExecutor(args.reader_threads, thread_name_prefix="bench-hop")
        loop = asyncio.get_running_loop()

        async def outpost(group: str) -> Any:
            return await gw.run_query(PATH, {"group": group, "limit": limit})

        async def direct(group: str) -> Any:
            return base.query(group)

        async def hop(group: str) -> Any:
            return await loop.run_in_executor(pool, base.query, group)

        try:
            for group in groups:  # same documents from all three, and warm caches
                want = [d["_id"] for d in await outpost(group)]
                if len(want) != min(args.limit, args.per_group):
                    sys.exit(f"{PATH} returned {len(want)} documents, expected {args.limit}")
                if [d["_id"] for d in await direct(group)] != want or [
                    d["_id"] for d in await hop(group)
                ] != want:
                    sys.exit(f"baseline and Outpost disagree on group {group!r}")
            sides: list[tuple[str, Callable[[str], Awaitable[Any]], tuple[str, ...]]] = [
                ("outpost", outpost, ("outpost-reader",)),
                ("direct", direct, ()),
                ("hop", hop, ("bench-hop",)),
            ]
            q, c = args.queries, args.callers
            for r in range(1, args.rounds + 1):
                # The three sides take turns in short slices (order rotating), so a burst
                # of load from elsewhere on the machine falls on all of them alike.
                result: dict[str, Measurement] = {}
                for s in range(args.slices):
                    part = range(s * q // args.slices, (s + 1) * q // args.slices)
                    for name, call, threads in sides[s % 3 :] + sides[: s % 3]:
                        m = await timed(call, groups, part, c, threads)
                        result[name] = result[name] + m if name in result else m
                rounds.append(result)
                o, d, h = result["outpost"], result["direct"], result["hop"]
                print(
                    f"round {r}: outpost {o.rate(q):7,.0f}/s (cpu loop {o.main_cpu:.2f}s readers "
                    f"{o.thread_cpu['outpost-reader']:.2f}s of {o.seconds:.2f}s wall) | baseline "
                    f"direct {d.rate(q):7,.0f}/s | baseline hop {h.rate(q):7,.0f}/s "
                    f"| ratio {o.rate(q) / h.rate(q):.2f}",
                    flush=True,
                )
        finally:
            pool.shutdown()
            base.close()
    return rounds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--queries", type=int, default=2000, help="queries per round and side (2000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (5)")
    p.add_argument("--slices", type=int, default=10, help="turns per round and side (10)")
    p.add_argument("--limit", type=int, default=100, help="documents per query (100)")
    p.add_argument("--groups", type=int, default=16, help="index values (16)")
    p.add_argument("--per-group", type=int, default=250, help="documents per value (250)")
    p.add_argument("--callers", type=int, default=1, help="concurrent callers (1)")
    p.add_argument("--reader-threads", type=int, default=Settings().reader_threads)
    p.add_argument("--pin", action="store_true", help="run on one core (re-execs, like taskset)")
    p.add_argument("--cpu", type=int, default=0, help="the core --pin uses (0)")
    p.add_argument("--dir", default=None, help="where the database file goes (default: $TMPDIR)")
    p.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = p.parse_args()
    if args.pin:
        pin_to_cpu(args.cpu)
    if args.queries < args.slices:
        p.error("--queries must be at least --slices")
    work = make_workdir(args.dir)
    label = (
        f"limit={args.limit} callers={args.callers} reader_threads={args.reader_threads} "
        f"pin={'cpu' + str(args.cpu) if args.pin else 'no'}"
    )
    print(f"bench/queries.py  {label}  queries={args.queries} rounds={args.rounds}")
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {affinity_text()}")
    print(f"files in {work} on {filesystem_of(work)}; {args.groups * args.per_group} documents")
    try:
        rounds = asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    q = args.queries
    o = median(r["outpost"].rate(q) for r in rounds) or 0
    d = median(r["direct"].rate(q) for r in rounds) or 0
    h = median(r["hop"].rate(q) for r in rounds) or 0
    loop_us = (median(r["outpost"].main_cpu for r in rounds) or 0) / q * 1e6
    reader_us = (median(r["outpost"].thread_cpu["outpost-reader"] for r in rounds) or 0) / q * 1e6
    # Paired per round (the sides ran interleaved), then the median over rounds.
    ratio_hop = median(r["outpost"].rate(q) / r["hop"].rate(q) for r in rounds) or 0.0
    ratio_direct = median(r["outpost"].rate(q) / r["direct"].rate(q) for r in rounds) or 0.0
    ok = verdict(ratio_hop >= RATIO_GOAL)
    print()
    print(f"medians over {len(rounds)} rounds ({q} queries of {args.limit} documents each):")
    print(f"  {'':36} {'queries/s':>10} {'docs/s':>10} {'us/query':>9}")
    for name, rate in (
        ("outpost (gw.run_query)", o),
        ("sqlite3 baseline + thread hop", h),
        ("sqlite3 baseline, direct", d),
    ):
        us = 1e6 / rate if rate else None
        print(f"  {name:36} {fmt(rate):>10} {fmt(rate * args.limit):>10} {fmt(us):>9}")
    print(
        f"  ratio outpost/baseline+hop {ratio_hop:.2f} (goal >= {RATIO_GOAL}: {ok}; median of "
        f"per-round ratios, ratio of medians {o / h if h else 0:.2f})"
    )
    print(f"  ratio outpost/baseline direct {ratio_direct:.2f}")
    print(
        f"  outpost cpu per query: event loop {loop_us:.0f} us, reader threads {reader_us:.0f} us"
    )
    print(
        f"SUMMARY queries [{label}]: outpost {fmt(o)}/s vs sqlite3 baseline {fmt(h)}/s with "
        f"thread hop = ratio {ratio_hop:.2f} (goal >= {RATIO_GOAL}: {ok}); "
        f"vs {fmt(d)}/s direct = ratio {ratio_direct:.2f}"
    )
    if args.check and ratio_hop < RATIO_GOAL:
        sys.exit(1)


if __name__ == "__main__":
    main()
