"""``outpost backup`` of a large store while a mutation loop keeps writing, beside a
plain copy of the same file with nothing writing (``shutil.copyfile``: the floor any
backup pays to read and write the bytes). Prints the store's size, both times, their
ratio, and the writes the gateway took during its backup.

    .venv/bin/python bench/backup.py                 # 1,400,000 documents, ~1.4 GB
    .venv/bin/python bench/backup.py --docs 200000   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gateway import Gateway  # noqa: E402
from gateway.backup import backup  # noqa: E402
from gateway.store.layout import DB_FILENAME  # noqa: E402

SCHEMA = """
from gateway import define_schema, define_table, v
schema = define_schema({
    "readings": define_table({"n": v.float64(), "device": v.string(), "pad": v.string()})
        .index("by_device", ["device"]),
})
"""
FUNCTIONS = """
from gateway import mutation

@mutation
async def add_many(ctx, args):
    for n in range(int(args["start"]), int(args["start"]) + int(args["count"])):
        await ctx.db.insert("readings", {"n": float(n), "device": f"d{n % 50}", "pad": "x" * 600})

@mutation
async def add(ctx, args):
    await ctx.db.insert("readings", {"n": 1.0, "device": "d1", "pad": "y"})
"""


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(dir=args.dir, prefix="outpost-bench-backup-"))
    try:
        app = root / "app"
        (app / "convex").mkdir(parents=True)
        (app / "convex" / "schema.py").write_text(SCHEMA)
        (app / "convex" / "readings.py").write_text(FUNCTIONS)
        data = root / "data"
        async with Gateway.open(app, data) as gw:
            for start in range(0, args.docs, 4000):
                count = min(4000, args.docs - start)
                await gw.run_mutation("readings:add_many", {"start": start, "count": count})
            size = (data / DB_FILENAME).stat().st_size
            started = time.perf_counter()
            await asyncio.to_thread(shutil.copyfile, data / DB_FILENAME, root / "copy")
            floor_s = time.perf_counter() - started
            (root / "copy").unlink()
            stop, writes = asyncio.Event(), 0

            async def load() -> None:
                nonlocal writes
                while not stop.is_set():
                    await gw.run_mutation("readings:add", {})
                    writes += 1

            task = asyncio.create_task(load())
            await asyncio.sleep(0.5)
            before, started = writes, time.perf_counter()
            result = await asyncio.to_thread(backup, data, root / "backup.tar")
            backup_s = time.perf_counter() - started
            during = writes - before
            stop.set()
            await task
        print(f"store {size / 1e6:,.0f} MB ({args.docs:,} documents)")
        print(f"plain copy, nothing writing   {floor_s:5.1f} s")
        print(
            f"outpost backup under writes   {backup_s:5.1f} s "
            f"({during / backup_s:,.0f} writes/s went on)"
        )
        print(
            f"SUMMARY backup: {result.bytes / 1e6:,.0f} MB in {backup_s:.1f} s, "
            f"{backup_s / floor_s:.1f}x a plain copy; {during:,} writes during it"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_400_000)
    parser.add_argument("--dir", default=None, help="where the store goes (default: a temp dir)")
    asyncio.run(main(parser.parse_args()))
