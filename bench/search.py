"""Full-text search: Outpost's ``with_search_index`` vs a bare FTS5 query, and the index
build rate.

A table of N documents (default 100,000) whose ``body`` is 8-24 words drawn from a
Zipf-like vocabulary of 5,000 made-up words, and a ``site`` filter field (16 values).

- **build**: the documents are written with no search index; then the gateway is
  reopened with a schema that adds ``search_body``, and the time ``Gateway.open``
  spends over the previous open (schema application, the FTS5 build) gives docs/s.
- **outpost**: ``notes:search`` = ``with_search_index("search_body", lambda q:
  q.search("body", text)).take(10)`` through ``gw.run_query`` (reader thread, snapshot,
  read set, return validation); half the queries also ``.eq("site", s)``.
- **baseline**: one bare FTS5 statement on the same rows, written for exactly this query:
  the FTS5 table joined to its rowid map, MATCH, ORDER BY bm25 then newest, LIMIT 10,
  then the documents of those ten; and ``loads`` of each body, on a read-only sqlite3
  connection on the event loop's thread: no runtime, no thread hop.

Queries are 1-3 words, the last typed partly (a prefix), drawn the same for both sides.
Each round runs both sides back to back in alternating slices; latency p50/p99 per side
are medians over rounds, and the headline is the median of per-round ratios of p50s
(baseline p50 / outpost p50; goal >= 0.5).

    .venv/bin/python bench/search.py
    .venv/bin/python bench/search.py --docs 20000 --rounds 3     # quick
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    affinity_text,
    filesystem_of,
    make_workdir,
    median,
    percentile,
    verdict,
    write_app,
)

from gateway import Gateway, Settings
from gateway.store import SearchIndexInfo
from gateway.store.layout import DB_FILENAME
from gateway.store.search_text import match_expression, tokenize
from gateway.values import encode_index_key, loads

RATIO_GOAL = 0.5
SEED_CHUNK = 5_000

SCHEMA_PLAIN = """
from gateway import define_schema, define_table, v
schema = define_schema({"notes": define_table({"body": v.string(), "site": v.string()})})
"""
SCHEMA_SEARCH = """
from gateway import define_schema, define_table, v
schema = define_schema({"notes": define_table({"body": v.string(), "site": v.string()})
    .search_index("search_body", search_field="body", filter_fields=["site"])})
"""
NOTES = """
from gateway import mutation, query, v


@mutation(args={"docs": v.array(v.object({"body": v.string(), "site": v.string()}))})
async def seed(ctx, args):
    for doc in args["docs"]:
        await ctx.db.insert("notes", doc)


@query(args={"text": v.string(), "site": v.optional(v.string())})
async def search(ctx, args):
    def build(q):
        q = q.search("body", args["text"])
        return q.eq("site", args["site"]) if "site" in args else q
    return await ctx.db.query("notes").with_search_index("search_body", build).take(10)
"""


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


def _corpus(rng: random.Random, n: int, vocab: list[str]) -> list[dict[str, str]]:
    weights = [1 / (i + 1) for i in range(len(vocab))]  # Zipf: a few words are common
    docs = []
    for _ in range(n):
        words = rng.choices(vocab, weights, k=rng.randint(8, 24))
        docs.append({"body": " ".join(words), "site": f"s{rng.randrange(16)}"})
    return docs


def _queries(rng: random.Random, n: int, vocab: list[str]) -> list[dict[str, str]]:
    weights = [1 / (i + 1) ** 0.5 for i in range(len(vocab))]
    out = []
    for _ in range(n):
        words = rng.choices(vocab, weights, k=rng.randint(1, 3))
        words[-1] = words[-1][: rng.randint(3, len(words[-1]))]
        q = {"text": " ".join(words)}
        if rng.random() < 0.5:
            q["site"] = f"s{rng.randrange(16)}"
        out.append(q)
    return out


class BareSearch:
    """One bare FTS5 statement for exactly this query, on its own read-only connection."""

    def __init__(self, path: Path, ix: SearchIndexInfo) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        fts = f"fts_{ix.index_id}"
        top = (
            f"SELECT m.doc_id AS doc_id, bm25({fts}) AS score, m.ctime AS ctime FROM {fts} "
            f"JOIN {fts}_docs m ON m.rowid = {fts}.rowid WHERE {fts} MATCH ?{{}} "
            "ORDER BY score, ctime DESC LIMIT 10"
        )
        tail = " ORDER BY top.score, top.ctime DESC"
        outer = "SELECT d.body FROM ({}) AS top JOIN documents d ON d.id = top.doc_id" + tail
        self.plain = outer.format(top.format(""))
        self.filtered = outer.format(top.format(f" AND {fts}.f0 = ?"))

    def run(self, q: dict[str, str]) -> list[Any]:
        match = match_expression(tokenize(q["text"]))
        if "site" in q:
            rows = self.conn.execute(self.filtered, (match, encode_index_key([q["site"]])))
        else:
            rows = self.conn.execute(self.plain, (match,))
        return [loads(body) for (body,) in rows]


async def _build(args: argparse.Namespace, work: Path) -> tuple[Path, Path, float, float]:
    rng = random.Random(7)
    vocab = _vocabulary(rng, 5_000)
    docs = _corpus(rng, args.docs, vocab)
    app = write_app(work, {"schema.py": SCHEMA_PLAIN, "notes.py": NOTES})
    data = work / "data"
    t0 = time.perf_counter()
    async with Gateway.open(app, data, Settings()) as gw:
        opened = time.perf_counter() - t0
        for i in range(0, len(docs), SEED_CHUNK):
            await gw.run_mutation("notes:seed", {"docs": docs[i : i + SEED_CHUNK]})
    (app / "convex" / "schema.py").write_text(SCHEMA_SEARCH)
    t0 = time.perf_counter()
    async with Gateway.open(app, data, Settings()):
        build = time.perf_counter() - t0 - opened
    return app, data, build, opened


async def _measure(args: argparse.Namespace, app: Path, data: Path) -> list[dict[str, Any]]:
    queries = _queries(random.Random(11), args.queries, _vocabulary(random.Random(7), 5_000))
    rounds = []
    async with Gateway.open(app, data, Settings()) as gw:
        ix = gw.store.catalog.by_name["notes"].search["search_body"]
        bare = BareSearch(data / DB_FILENAME, ix)
        for q in queries[:50]:  # both sides return the same documents
            assert await gw.run_query("notes:search", q) == bare.run(q), q
        for _r in range(args.rounds):
            lat: dict[str, list[float]] = {"outpost": [], "baseline": []}
            size = max(1, len(queries) // args.slices)
            for s in range(0, len(queries), size):
                chunk = queries[s : s + size]
                for q in chunk:
                    t = time.perf_counter()
                    await gw.run_query("notes:search", q)
                    lat["outpost"].append(time.perf_counter() - t)
                for q in chunk:
                    t = time.perf_counter()
                    bare.run(q)
                    lat["baseline"].append(time.perf_counter() - t)
            rounds.append(
                {side: (percentile(v, 0.5), percentile(v, 0.99)) for side, v in lat.items()}
            )
        bare.conn.close()
    return rounds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--docs", type=int, default=100_000, help="documents (100,000)")
    p.add_argument("--queries", type=int, default=1000, help="queries per round and side (1000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (5)")
    p.add_argument("--slices", type=int, default=10, help="turns per round and side (10)")
    p.add_argument("--dir", default=None, help="where the database file goes (default: $TMPDIR)")
    p.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = p.parse_args()
    work = make_workdir(args.dir)
    try:
        print(f"search bench: {args.docs:,} documents, {affinity_text()}, {filesystem_of(work)}")
        app, data, build_s, _opened = asyncio.run(_build(args, work))
        rate = args.docs / build_s if build_s > 0 else float("inf")
        print(f"  index build: {build_s:.2f} s for {args.docs:,} documents = {rate:,.0f} docs/s")
        rounds = asyncio.run(_measure(args, app, data))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    us = 1e6
    for side in ("outpost", "baseline"):
        p50 = median(r[side][0] for r in rounds) or 0.0
        p99 = median(r[side][1] for r in rounds) or 0.0
        print(f"  {side:9s} p50 {p50 * us:8.0f} us   p99 {p99 * us:8.0f} us")
    ratio = median(r["baseline"][0] / r["outpost"][0] for r in rounds) or 0.0
    ok = ratio >= RATIO_GOAL
    print(
        f"SUMMARY search [{args.docs:,} docs]: outpost p50 vs bare FTS5 p50 = ratio {ratio:.2f} "
        f"(goal >= {RATIO_GOAL}: {verdict(ok)}); index build {rate:,.0f} docs/s"
    )
    if args.check and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
