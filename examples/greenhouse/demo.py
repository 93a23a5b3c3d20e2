"""The demo: the greenhouse app driven in-process, printing what it does.

Run with ``scripts/demo`` (or ``python -m examples.greenhouse.demo [DATA_DIR]``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from gateway import Gateway, Settings

APP_DIR = Path(__file__).resolve().parent


def show(title: str, value: object) -> None:
    print(f"\n== {title}\n{value}")


async def main(data_dir: Path) -> None:
    started = time.monotonic()
    async with Gateway.open(APP_DIR, data_dir, Settings()) as gw:
        print(f"Outpost gateway {gw.store.gateway_id} on {gw.store.path}")
        print(f"{len(gw.app.functions)} functions: {', '.join(sorted(gw.app.functions))}")
        for name, zone, limit in [
            ("gh-1", "north", 30.0),
            ("gh-2", "north", 28.0),
            ("gh-3", "south", 35.0),
        ]:
            await gw.run_mutation(
                "devices:register", {"name": name, "zone": zone, "max_celsius": limit}
            )
        rng = random.Random(7)
        calls = [
            gw.call(
                "mutation",
                "readings:ingest",
                {"device": f"gh-{1 + i % 3}", "celsius": round(rng.uniform(18, 34), 1)},
            )
            for i in range(300)
        ]
        results = await asyncio.gather(*calls)
        stats = gw.store.writer.stats
        alerts = [line for r in results for line in r.log_lines]
        show(
            "300 concurrent sensor readings",
            f"committed in {stats.commits} COMMITs (group commit), {len(alerts)} alerts, "
            f"e.g. {alerts[:2]}",
        )
        show(
            "latest 3 from gh-1",
            await gw.run_query("readings:latest", {"device": "gh-1", "limit": 3}),
        )
        show("stats for gh-2", await gw.run_query("readings:stats", {"device": "gh-2"}))
        show(
            "hot readings on gh-3 (> 33 °C)",
            len(await gw.run_query("readings:hot", {"device": "gh-3", "above": 33.0})),
        )
        report = await gw.call("action", "devices:zone_report", {"zone": "north"})
        show("action devices:zone_report (north)", f"{report.value}\nlog lines: {report.log_lines}")
        pages, cursor = 0, None
        while True:
            page = await gw.run_query(
                "readings:page", {"paginationOpts": {"numItems": 100, "cursor": cursor}}
            )
            pages, cursor = pages + 1, page["continueCursor"]
            if page["isDone"]:
                break
        show("paginated through every reading", f"{pages} pages")
        failed = await gw.call("mutation", "devices:remove", {"name": "gh-9"})
        show(
            "a ConvexError reaches the caller with its data",
            f"{failed.error_message}\nerrorData: {failed.error_data}",
        )
        bad = await gw.call("mutation", "readings:ingest", {"device": "gh-1", "celsius": "hot"})
        show("bad arguments get Convex's message", bad.error_message)
    print(f"\nDone in {time.monotonic() - started:.2f} s. Data kept in {data_dir}")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", nargs="?", help="where the store lives (default: a temp dir)")
    args = parser.parse_args()
    data_dir = (
        Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="outpost-demo-"))
    )
    asyncio.run(main(data_dir))


if __name__ == "__main__":
    run()
