"""kill -9 while mutations write a search index: the FTS5 tables always match the documents.

A child process runs a Gateway on a search app with 8 concurrent callers inserting,
patching and deleting (so group-commit batches mix them); it prints each inserted id
after ``run_mutation`` returned. The test SIGKILLs it after a random number of acks,
round after round on one data directory, then opens the file with sqlite3: integrity
check ok, FTS5's own ``integrity-check`` ok, every acknowledged insert present, and the
index holding exactly the documents whose body is a string, with their terms.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
import textwrap
from contextlib import closing
from pathlib import Path

from gateway.store.search_text import indexed_text

KILL9_SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "notes": define_table(v.any())
            .search_index("search_body", search_field="body", filter_fields=["site"]),
    })
"""
KILL9_NOTES = """
    from gateway import mutation

    @mutation
    async def churn(ctx, args):
        new_id = await ctx.db.insert("notes", {"body": args["body"], "site": args["site"]})
        old = await ctx.db.query("notes").order("desc").take(3)
        deleted = None
        if len(old) == 3:
            if args["n"] % 3 == 0:
                deleted = old[2]["_id"]
                await ctx.db.delete("notes", deleted)
            else:
                await ctx.db.patch("notes", old[1]["_id"], {"body": args["body"] + " patched"})
        return [new_id, deleted]
"""
KILL9_CHILD = """
import asyncio, random, sys
from gateway import Gateway, Settings

WORDS = ["pump", "fail", "valve", "leak", "north", "x1", "Ärger"]

async def caller(gw, rng):
    n = 0
    while True:
        n += 1
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
        new_id, deleted = await gw.run_mutation(
            "notes:churn", {"body": body, "site": rng.choice("ab"), "n": n})
        print(new_id, deleted or "-", flush=True)

async def main():
    async with Gateway.open(sys.argv[1], sys.argv[2], Settings(commit_interval_ms=2)) as gw:
        print("ready", flush=True)
        await asyncio.gather(*(caller(gw, random.Random(i)) for i in range(8)))

asyncio.run(main())
"""


REPO = Path(__file__).resolve().parents[2]


async def _kill9_round(
    child: Path, app: Path, data: Path, acks_wanted: int
) -> list[tuple[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(child),
        str(app),
        str(data),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    acked: list[tuple[str, str]] = []
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.strip() == b"ready", line
        while len(acked) < acks_wanted:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "the child stopped"
            new_id, deleted = line.decode().split()
            acked.append((new_id, deleted))
    finally:
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 30)
    return acked


def _kill9_check(db: Path, acked: list[tuple[str, str]]) -> None:
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (index_id,) = conn.execute("SELECT index_id FROM search_defs").fetchone()
        fts = f"fts_{index_id}"
        conn.execute(f"INSERT INTO {fts} ({fts}) VALUES ('integrity-check')")
        docs = {
            doc_id: json.loads(body)
            for doc_id, body in conn.execute(
                "SELECT d.id, d.body FROM documents d JOIN tables t ON t.number = d.tbl "
                "WHERE t.name = 'notes'"
            )
        }
        indexed = dict(
            conn.execute(
                f"SELECT m.doc_id, f.terms FROM {fts}_docs m JOIN {fts} f ON f.rowid = m.rowid"
            )
        )
        (map_rows,) = conn.execute(f"SELECT COUNT(*) FROM {fts}_docs").fetchone()
    assert docs and map_rows == len(indexed)
    assert indexed == {i: indexed_text(d["body"]) for i, d in docs.items()}
    # Every acknowledged insert is stored unless acknowledged work deleted it.
    deleted = {d for _new, d in acked}
    assert {new for new, _d in acked} - deleted <= set(docs)
    assert not (deleted & set(docs))


async def test_kill9_mid_stream_keeps_the_search_index_whole(make_app, tmp_path) -> None:
    app = make_app(schema=textwrap.dedent(KILL9_SCHEMA), notes=textwrap.dedent(KILL9_NOTES))
    child = tmp_path / "kill9_search_child.py"
    child.write_text(KILL9_CHILD)
    data = tmp_path / "data"
    rng = random.Random(os.environ.get("OUTPOST_KILL9_SEED", "search"))
    acked: list[tuple[str, str]] = []
    for _round in range(3):
        acked += await _kill9_round(child, app, data, rng.randint(20, 120))
        _kill9_check(data / "outpost.sqlite3", acked)
