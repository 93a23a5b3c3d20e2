"""Mutation throughput: 64 concurrent callers through Outpost vs bare sqlite3.

Each caller runs ``readings:ingest`` (args validated, one insert into a table with one
secondary index) until the shared list of rows is used up; the writer commits them in
groups (DESIGN decision 1). In the same run, on the same rows:

- **sqlite3 baseline**: a hand-written loop that encodes each document exactly as the
  store does (``gateway.values`` ``encode_id`` / ``dumps`` / ``encode_index_key``) and
  INSERTs the document row plus its ``by_creation_time`` and ``by_device`` index rows,
  one ``execute`` per row, with the same pragmas (WAL, synchronous=FULL) and the same
  table definitions (copied from Outpost's file), replaying the batch sizes Outpost
  formed: one transaction (one fsync) per batch.
- **executemany floor**: the same rows already encoded, one ``executemany`` per table
  per batch, same batches. Nothing can write these rows faster through sqlite3.

Bytes written are this process's ``/proc/self/io`` ``write_bytes`` delta over each
phase alone (the writer is a thread of this process, so it is included in Outpost's).

    .venv/bin/python bench/mutations.py                          # commit_interval_ms=0
    .venv/bin/python bench/mutations.py --commit-interval-ms 100
    .venv/bin/python bench/mutations.py --pin                    # one core (taskset -c 0)
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
    percentile,
    pin_to_cpu,
    verdict,
    write_app,
)

from gateway import Gateway, Settings
from gateway.store.layout import DB_FILENAME
from gateway.values import IdGenerator, dumps, encode_id, encode_index_key, loads

TABLE = "readings"
INDEX = "by_device"
PATH = "readings:ingest"
RATIO_GOAL = 0.4

APP = {
    "schema.py": """
from gateway import define_schema, define_table, v

schema = define_schema(
    {
        "readings": define_table(
            {"device": v.string(), "celsius": v.float64(), "humidity": v.float64(),
             "seq": v.float64()}
        ).index("by_device", ["device"]),
    }
)
""",
    "readings.py": """
from gateway import mutation, v


@mutation(
    args={"device": v.string(), "celsius": v.float64(), "humidity": v.float64(),
          "seq": v.float64()},
    returns=v.id("readings"),
)
async def ingest(ctx, args):
    return await ctx.db.insert("readings", args)
""",
}

Row = dict[str, Any]


def make_rows(n: int, devices: int) -> list[Row]:
    return [
        {
            "device": f"sensor-{i % devices:03d}",
            "celsius": 15.0 + (i % 230) * 0.1,
            "humidity": 0.3 + (i % 50) * 0.01,
            "seq": float(i),
        }
        for i in range(n)
    ]


WARMUP_ROW: Row = {"device": "warmup", "celsius": 0.0, "humidity": 0.0, "seq": -1.0}


@dataclass
class Layout:
    """What the baseline needs to write the rows Outpost writes."""

    table_number: int
    by_creation_time: int
    secondary: int
    ddl: list[str]


@dataclass
class OutpostRound:
    m: Measurement
    commits: int
    batch_sizes: list[int]
    handoffs: int
    latencies: list[float]
    layout: Layout


# --- Outpost --------------------------------------------------------------------------


async def outpost_round(
    app_dir: Path, data_dir: Path, rows: list[Row], callers: int, settings: Settings
) -> OutpostRound:
    async with Gateway.open(app_dir, data_dir, settings) as gw:
        info = gw.store.catalog.table(TABLE)
        assert info is not None, "the schema did not create the table"
        assert info.indexes[INDEX].fields == ("device", "_creationTime", "_id")
        await gw.run_mutation(PATH, WARMUP_ROW)
        stats = gw.store.writer.stats
        commits0, jobs0, handoffs0 = stats.commits, stats.jobs, stats.handoffs
        feed = iter(rows)
        latencies: list[float] = []

        async def caller() -> None:
            for row in feed:  # shared: each row is taken by exactly one caller
                t = time.perf_counter()
                await gw.run_mutation(PATH, row)
                latencies.append(time.perf_counter() - t)

        meter = Meter(("outpost-writer",))
        await asyncio.gather(*(caller() for _ in range(callers)))
        m = meter.stop()
        commits = stats.commits - commits0
        if commits > len(stats.batch_sizes):
            sys.exit("more commits than WriterStats.batch_sizes keeps: lower --mutations")
        sizes = list(stats.batch_sizes)[len(stats.batch_sizes) - commits :]
        if stats.jobs - jobs0 != len(rows) or sum(sizes) != len(rows):
            sys.exit(f"expected {len(rows)} jobs, writer counted {stats.jobs - jobs0}")
        handoffs = stats.handoffs - handoffs0
        ix = info.indexes[INDEX]
        by_ct = info.indexes["by_creation_time"]
        number = info.number
    db = data_dir / DB_FILENAME
    layout = Layout(number, by_ct.index_id, ix.index_id, _ddl_of(db))
    _check_same_bytes(db, rows, layout)
    return OutpostRound(m, commits, sizes, handoffs, latencies, layout)


def _ddl_of(db: Path) -> list[str]:
    """The CREATE statements of Outpost's ``documents`` and ``indexes`` tables."""
    conn = sqlite3.connect(db)
    try:
        found = conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('documents', 'indexes') "
            "AND sql IS NOT NULL ORDER BY type DESC"
        ).fetchall()
    finally:
        conn.close()
    return [sql for (sql,) in found]


def _encode(
    row: Row, doc_id: str, creation_time: float, layout: Layout
) -> tuple[str, bytes, bytes]:
    """(body, by_creation_time key, secondary key): the baseline's encoding of one row."""
    doc = {"_id": doc_id, "_creationTime": creation_time, **row}
    body = dumps(doc)
    ct_key = encode_index_key([creation_time, doc_id])
    sec_key = encode_index_key([row["device"], creation_time, doc_id])
    return body, ct_key, sec_key


def _check_same_bytes(db: Path, rows: list[Row], layout: Layout) -> None:
    """The baseline's encoding gives byte-for-byte the rows Outpost stored."""
    conn = sqlite3.connect(db)
    try:
        sample = conn.execute(
            "SELECT id, body FROM documents WHERE tbl = ? ORDER BY id LIMIT 6",
            (layout.table_number,),
        ).fetchall()
        for doc_id, body in sample:
            doc = loads(body)
            assert isinstance(doc, dict)
            if doc["seq"] < 0:
                continue  # the warm-up row
            row = rows[int(doc["seq"])]
            want = _encode(row, doc_id, doc["_creationTime"], layout)
            keys = dict(
                conn.execute("SELECT index_id, key FROM indexes WHERE doc_id = ?", (doc_id,))
            )
            got = (body, keys.get(layout.by_creation_time), keys.get(layout.secondary))
            if got != want:
                sys.exit(
                    "baseline encoding differs from Outpost's:\n"
                    f"  outpost  {got}\n  baseline {want}"
                )
    finally:
        conn.close()


# --- baselines ------------------------------------------------------------------------


def _open_baseline(path: Path, layout: Layout) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for sql in layout.ddl:
        conn.execute(sql)
    return conn


class _Clock:
    """Strictly increasing wall-clock nanoseconds (what the store's clock gives)."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        now = time.time_ns()
        self.last = now if now > self.last else self.last + 1
        return self.last


def _batches(rows: list[Row], sizes: Sequence[int]) -> Iterator[list[Row]]:
    pos = 0
    for size in sizes:
        yield rows[pos : pos + size]
        pos += size


def baseline_round(
    path: Path, rows: list[Row], sizes: Sequence[int], layout: Layout
) -> Measurement:
    """Hand-written: encode each row and INSERT its three rows; one transaction a batch."""
    conn = _open_baseline(path, layout)
    ids, clock = IdGenerator(), _Clock()
    number, ct_ix, sec_ix = layout.table_number, layout.by_creation_time, layout.secondary
    put_doc = "INSERT INTO documents (id, tbl, ts, body) VALUES (?, ?, ?, ?)"
    put_key = "INSERT INTO indexes (index_id, key, doc_id) VALUES (?, ?, ?)"

    def write(batch: list[Row]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        for row in batch:
            ts = clock.next()
            creation_time = ts / 1_000_000
            doc_id = encode_id(number, ids.new_internal_id(ts // 1_000_000))
            body, ct_key, sec_key = _encode(row, doc_id, creation_time, layout)
            conn.execute(put_doc, (doc_id, number, ts, body))
            conn.execute(put_key, (ct_ix, ct_key, doc_id))
            conn.execute(put_key, (sec_ix, sec_key, doc_id))
        conn.execute("COMMIT")

    try:
        write([WARMUP_ROW])
        meter = Meter()
        for batch in _batches(rows, sizes):
            write(batch)
        return meter.stop()
    finally:
        conn.close()


def floor_round(path: Path, rows: list[Row], sizes: Sequence[int], layout: Layout) -> Measurement:
    """The same rows encoded beforehand; one executemany per table per batch."""
    conn = _open_baseline(path, layout)
    ids, clock = IdGenerator(), _Clock()
    docs: list[tuple[str, int, int, str]] = []
    keys: list[tuple[int, bytes, str]] = []
    for row in rows:
        ts = clock.next()
        doc_id = encode_id(layout.table_number, ids.new_internal_id(ts // 1_000_000))
        body, ct_key, sec_key = _encode(row, doc_id, ts / 1_000_000, layout)
        docs.append((doc_id, layout.table_number, ts, body))
        keys.append((layout.by_creation_time, ct_key, doc_id))
        keys.append((layout.secondary, sec_key, doc_id))
    try:
        meter = Meter()
        pos = 0
        for size in sizes:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO documents (id, tbl, ts, body) VALUES (?, ?, ?, ?)",
                docs[pos : pos + size],
            )
            conn.executemany(
                "INSERT INTO indexes (index_id, key, doc_id) VALUES (?, ?, ?)",
                keys[2 * pos : 2 * (pos + size)],
            )
            conn.execute("COMMIT")
            pos += size
        return meter.stop()
    finally:
        conn.close()


# --- main -----------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--callers", type=int, default=64, help="concurrent callers (default 64)")
    p.add_argument(
        "--mutations",
        type=int,
        default=None,
        help="mutations per round (default 6400; 2560 when --commit-interval-ms > 0)",
    )
    p.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (5)")
    p.add_argument("--commit-interval-ms", type=float, default=0.0, help="Settings value (0)")
    p.add_argument("--max-batch", type=int, default=Settings().max_batch_mutations)
    p.add_argument("--devices", type=int, default=16, help="distinct secondary-index values")
    p.add_argument("--pin", action="store_true", help="run on one core (re-execs, like taskset)")
    p.add_argument("--cpu", type=int, default=0, help="the core --pin uses (0)")
    p.add_argument("--dir", default=None, help="where the database files go (default: $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the database files")
    p.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = p.parse_args()
    if args.pin:
        pin_to_cpu(args.cpu)
    n = args.mutations or (6400 if args.commit_interval_ms == 0 else 2560)
    settings = Settings(
        commit_interval_ms=args.commit_interval_ms, max_batch_mutations=args.max_batch
    )
    work = make_workdir(args.dir)
    label = (
        f"callers={args.callers} mutations={n} commit_interval_ms={args.commit_interval_ms:g} "
        f"pin={'cpu' + str(args.cpu) if args.pin else 'no'}"
    )
    print(f"bench/mutations.py  {label}  rounds={args.rounds}")
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {affinity_text()}")
    print(f"files in {work} on {filesystem_of(work)}")
    rows = make_rows(n, args.devices)
    app_dir = write_app(work, APP)
    results: list[tuple[OutpostRound, Measurement, Measurement]] = []
    try:
        for r in range(1, args.rounds + 1):
            out = asyncio.run(
                outpost_round(app_dir, work / f"outpost-{r}", rows, args.callers, settings)
            )
            base = baseline_round(work / f"baseline-{r}.sqlite3", rows, out.batch_sizes, out.layout)
            flo = floor_round(work / f"floor-{r}.sqlite3", rows, out.batch_sizes, out.layout)
            results.append((out, base, flo))
            writer_cpu = out.m.thread_cpu["outpost-writer"]
            lat50 = percentile(out.latencies, 0.5) * 1e3
            lat99 = percentile(out.latencies, 0.99) * 1e3
            print(
                f"round {r}: outpost {out.m.rate(n):8,.0f}/s ({out.commits} commits, median batch "
                f"{median(out.batch_sizes):g}, latency p50 {lat50:.1f} p99 {lat99:.1f} ms, "
                f"cpu loop {out.m.main_cpu:.2f}s writer {writer_cpu:.2f}s "
                f"of {out.m.seconds:.2f}s wall)"
                f" | baseline {base.rate(n):8,.0f}/s | floor {flo.rate(n):8,.0f}/s"
                f" | ratio {out.m.rate(n) / base.rate(n):.2f}",
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    outs = [o for o, _, _ in results]
    o_rate = median(o.m.rate(n) for o in outs)
    b_rate = median(b.rate(n) for _, b, _ in results)
    f_rate = median(f.rate(n) for _, _, f in results)
    o_bytes = median(o.m.bytes_per(n) for o in outs)
    b_bytes = median(b.bytes_per(n) for _, b, _ in results)
    f_bytes = median(f.bytes_per(n) for _, _, f in results)
    commits = median(o.commits for o in outs) or 0
    batch = median(median(o.batch_sizes) for o in outs) or 0
    handoffs = median(o.handoffs for o in outs) or 0
    p50 = median(percentile(o.latencies, 0.5) for o in outs) or 0
    p99 = median(percentile(o.latencies, 0.99) for o in outs) or 0
    loop_cpu = median(o.m.main_cpu for o in outs) or 0
    writer_cpu = median(o.m.thread_cpu["outpost-writer"] for o in outs) or 0
    wall = median(o.m.seconds for o in outs) or 0
    # Paired: each round's Outpost and baseline ran back to back, so their ratio is less
    # exposed to the machine's load drifting between rounds than a ratio of medians.
    ratio = median(o.m.rate(n) / b.rate(n) for o, b, _ in results) or 0.0
    ratio_of_medians = (o_rate or 0) / b_rate if b_rate else 0.0

    print()
    print(f"medians over {len(results)} rounds ({n} mutations each, {args.callers} callers):")
    print(f"  {'':34} {'mutations/s':>12} {'bytes/row':>10}")
    print(f"  {'outpost (runtime + group commit)':34} {fmt(o_rate):>12} {fmt(o_bytes):>10}")
    print(f"  {'sqlite3 baseline (encode+execute)':34} {fmt(b_rate):>12} {fmt(b_bytes):>10}")
    print(f"  {'executemany floor (pre-encoded)':34} {fmt(f_rate):>12} {fmt(f_bytes):>10}")
    # With an interval the writer holds each batch open on purpose: every caller waits
    # for its answer, so at most ``callers`` mutations go per interval. The ratio goal is
    # for the default (0); here the figure to check is how close Outpost gets to the bound.
    bound = args.callers / (args.commit_interval_ms / 1000) if args.commit_interval_ms else None
    ratio_met = ratio >= RATIO_GOAL if bound is None else (o_rate or 0) >= 0.9 * bound
    ratio_ok = (
        verdict(ratio_met)
        if bound is None
        else f"n/a with an interval; {fmt(o_rate)}/s is {(o_rate or 0) / bound:.0%} of the "
        f"{args.callers} callers / {args.commit_interval_ms:g} ms = {fmt(bound)}/s bound: "
        f"{verdict(ratio_met)}"
    )
    print(
        f"  ratio outpost/baseline {ratio:.2f} (median of per-round ratios; ratio of medians "
        f"{ratio_of_medians:.2f}) (goal >= {RATIO_GOAL}: {ratio_ok})"
    )
    print(
        f"  ratio outpost/floor {(o_rate or 0) / f_rate if f_rate else 0:.2f}; "
        f"baseline/floor {(b_rate or 0) / f_rate if f_rate else 0:.2f}"
    )
    print(f"  median batch size {batch:g} (goal > 1: {verdict(batch > 1)})")
    print(
        f"  COMMITs {commits:g} for {n} mutations = 1 per {n / commits if commits else 0:.1f} "
        f"(goal <= {n // 10}: {verdict(commits <= n / 10)}); handoffs {handoffs:g}"
    )
    print(f"  outpost latency p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms")
    print(
        f"  outpost cpu per mutation: event loop {loop_cpu / n * 1e6:.0f} us, writer thread "
        f"{writer_cpu / n * 1e6:.0f} us; wall {wall / n * 1e6:.0f} us"
    )
    goals = ratio_met and batch > 1 and commits <= n / 10
    print(
        f"SUMMARY mutations [{label}]: outpost {fmt(o_rate)}/s vs sqlite3 baseline "
        f"{fmt(b_rate)}/s = ratio {ratio:.2f} (goal >= {RATIO_GOAL}: {ratio_ok}); "
        f"median batch {batch:g}; COMMITs {commits:g}/{n}; "
        f"bytes/row {fmt(o_bytes)} vs {fmt(b_bytes)}"
    )
    if args.check and not goals:
        sys.exit(1)


if __name__ == "__main__":
    main()
