"""``outpost export`` / ``outpost import`` as a user runs them."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import zipfile
from pathlib import Path

from gateway import Gateway, Int64
from gateway.cli.snapshot_cmd import ProgressBar

OUTPOST = Path(sys.executable).parent / "outpost"

SCHEMA = """
    from gateway import define_schema, define_table, v

    schema = define_schema({
        "readings": define_table({"device": v.string(), "n": v.int64(), "raw": v.bytes()})
            .index("by_device", ["device"]),
    })
"""

FNS = """
    from gateway import mutation, query

    @mutation
    async def add(ctx, args):
        return await ctx.db.insert("readings", args)

    @query
    async def by_device(ctx, args):
        return await (ctx.db.query("readings")
                      .with_index("by_device", lambda q: q.eq("device", args["device"]))
                      .collect())
"""


def outpost(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUTPOST, *map(str, args)], capture_output=True, text=True, timeout=60, cwd="/"
    )


async def run(*args: object) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(outpost, *args)


async def test_export_then_import_on_data_dirs(make_app, tmp_path: Path) -> None:
    app = make_app(schema=SCHEMA, m=FNS)
    zip_path = tmp_path / "backup.zip"
    async with Gateway.open(app, tmp_path / "a") as gw:
        docs = [
            await gw.run_mutation("m:add", {"device": "d1", "n": Int64(-(2**63)), "raw": b"\0"}),
            await gw.run_mutation("m:add", {"device": "d2", "n": Int64(2**63 - 1), "raw": b""}),
        ]
        before = await gw.run_query("m:by_device", {"device": "d1"})
        # export while the gateway runs: a read-only snapshot of the data dir
        done = await run("export", zip_path, "--app", app, "--data-dir", tmp_path / "a")
    assert done.returncode == 0, done.stderr
    assert "exported 2 documents in 1 tables" in done.stdout
    assert "readings/documents.jsonl" in zipfile.ZipFile(zip_path).namelist()

    again = await run("export", zip_path, "--app", app, "--data-dir", tmp_path / "a")
    assert again.returncode == 2 and "exists" in again.stderr

    done = await run("import", zip_path, "--app", app, "--data-dir", tmp_path / "b", "--progress")
    assert done.returncode == 0, done.stderr
    assert "imported 2 documents in 1 tables" in done.stdout
    assert "importing readings  2/2 [" in done.stderr

    async with Gateway.open(app, tmp_path / "b") as gw:
        assert await gw.run_query("m:by_device", {"device": "d1"}) == before
        assert [d["_id"] for d in await gw.run_query("m:by_device", {"device": "d2"})] == [docs[1]]
        # import refused while the store is open (here: this process's gateway)
        refused = await run("import", zip_path, "--app", app, "--data-dir", tmp_path / "b")
    assert refused.returncode == 1
    assert "open in another process" in refused.stderr

    # after the gateway stopped: refused because the tables are not empty...
    refused = await run("import", zip_path, "--app", app, "--data-dir", tmp_path / "b")
    assert refused.returncode == 1 and "already has 2 documents" in refused.stderr
    # ... unless --replace
    done = await run("import", zip_path, "--app", app, "--data-dir", tmp_path / "b", "--replace")
    assert done.returncode == 0, done.stderr
    assert "replacing 2 documents" in done.stdout


async def test_bad_zip_and_missing_store(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    done = await run("import", bad, "--data-dir", tmp_path / "d")
    assert done.returncode == 1 and "is not a ZIP file" in done.stderr
    done = await run("import", tmp_path / "none.zip", "--data-dir", tmp_path / "d")
    assert done.returncode == 1 and "no such file" in done.stderr
    done = await run("export", tmp_path / "x.zip", "--data-dir", tmp_path / "nothing")
    assert done.returncode == 1 and "no store at" in done.stderr


def test_progress_bar_draws_one_line_per_table() -> None:
    out = io.StringIO()
    bar = ProgressBar("exporting", out)
    bar("a", 256, 512)
    bar("a", 512, 512)
    bar("b", 0, 0)
    bar.finish()
    lines = out.getvalue().split("\n")
    assert lines[0].endswith("exporting a  512/512 [" + "#" * 30 + "]")
    assert "exporting a  256/512 [" + "#" * 15 + "." * 15 + "]" in lines[0]
    assert lines[1] == "\rexporting b  0/0 [" + "#" * 30 + "]"
