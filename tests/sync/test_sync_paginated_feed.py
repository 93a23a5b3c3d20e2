"""A paginated subscription from npm ``ConvexClient`` while others insert into its range.

``node/paginated_client.mjs`` fills a batch of the compat app (``feed:put_many``),
subscribes to ``feed:page`` with ``onPaginatedUpdate_experimental`` and loads page after
page while a ``ConvexHttpClient`` inserts into the batch: inside the pages loaded so far,
inside the data not loaded yet, and past its end (where the last page takes them). The
inserts of each round are in flight while the next page subscribes. Every update must be
in order with every id once; at the end the concatenated pages must be exactly the batch
as the database holds it (read here with ``feed:listing``): no gaps, no duplicates.

CI tier: 1,000 items + 200 concurrent inserts, in both orders. Soak tier: 10,000 items +
2,000 concurrent inserts (``pytest -m soak`` or ``OUTPOST_SOAK=1``; ``-s`` shows the
figures). ``OUTPOST_FEED_SEED`` replays a run's choice of insert positions.

This test found a lost invalidation (now fixed; the raw-protocol test below pins it): a
commit landing after a new subscription's first run took its snapshot, but before the
round tracked its read set, never reached it. It showed as documents missing from a
page that was subscribing while they were inserted.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compat import conftest as compat
from convex.http_client import ConvexHttpClient
from e2e.conftest import soak_selected

NODE_SCRIPT = Path(__file__).resolve().parent / "node" / "paginated_client.mjs"


@pytest.fixture
def soak_tier(request: pytest.FixtureRequest) -> None:
    """Skip unless the soak tier was asked for (as tests/e2e does for its own)."""
    if not soak_selected(request.config):
        pytest.skip("soak tier: select it with `pytest -m soak` or OUTPOST_SOAK=1")


def run_feed(
    server: Any,
    convex_npm: Path,
    *,
    order: str,
    initial: int,
    inserts: int,
    page_size: int,
    deadline_ms: int,
) -> dict[str, Any]:
    """One run of the Node script, checked against the database; returns its report."""
    seed = int(os.environ.get("OUTPOST_FEED_SEED") or random.SystemRandom().getrandbits(31))
    batch = f"feed-{order}-{uuid.uuid4().hex[:8]}"
    payload = {
        "url": server.url,
        "batch": batch,
        "order": order,
        "initial": initial,
        "inserts": inserts,
        "pageSize": page_size,
        "seed": seed,
        "deadlineMs": deadline_ms,
    }
    report: dict[str, Any] = compat.run_node(str(NODE_SCRIPT), convex_npm, payload)
    final = report.pop("final")
    where = f"seed={seed} (OUTPOST_FEED_SEED replays it), batch={batch}"
    summary = {k: v for k, v in report.items() if k not in ("missing", "unexpected")}
    assert not report["violations"], (
        f"{where}: an update out of order or with an id twice: {report}"
    )
    assert not [e for e in report["logged"] if e[0] == "error"], f"{where}: {report['logged']}"

    chunks = ConvexHttpClient(server.url).query("feed:listing", {"batch": batch, "order": order})
    db = [(item_id, n) for chunk in chunks for item_id, n in chunk]
    assert len(db) == initial + inserts, f"{where}: the batch holds {len(db)} items"
    assert len({item_id for item_id, _ in db}) == len(db)
    shown = [(item_id, n) for item_id, n in final or []]
    assert "failure" not in report, f"{where}: {summary}\nmissing={report.get('missing')}"
    assert report["status"] == "Exhausted"
    assert report["acked"] == inserts and report["expectedCount"] == len(db)
    assert shown == db, f"{where}: the pages differ from the database ({summary})"
    # The inserts overlapped the page loads: each round was in flight while a page
    # subscribed, and all three kinds of position were hit.
    assert report["ackedWhileLoading"] > 0, report
    assert set(report["inserted"]) == {"loaded", "ahead", "beyond"}, report["inserted"]
    report["seed"] = seed
    return report


def figures(tier: str, order: str, report: dict[str, Any]) -> str:
    t = report["timings"]
    return (
        f"paginated feed [{tier}] order={order} seed={report['seed']}: "
        f"{report['expectedCount']} documents ({report['expectedCount'] - report['acked']} "
        f"before + {report['acked']} inserted concurrently: {report['inserted']}, "
        f"{report['ackedWhileLoading']} acknowledged while pages were loading); "
        f"{report['pagesRequested']} pages, {report['callbacks']} updates, 0 gaps, "
        f"0 duplicates; fill {t['fillMs']} ms, load {t['loadMs']} ms, "
        f"converge {t['convergeMs']} ms, total {t['totalMs']} ms"
    )


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sync_npm_paginated_subscription_with_concurrent_inserts(
    server: Any, convex_npm: Path, order: str
) -> None:
    report = run_feed(
        server,
        convex_npm,
        order=order,
        initial=1_000,
        inserts=200,
        page_size=50,
        deadline_ms=5_000,
    )
    print(figures("ci", order, report))


@pytest.fixture
def long_node_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(compat, "NODE_DEADLINE_S", 900.0)
    yield


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sync_npm_paginated_subscription_soak(
    soak_tier: None, long_node_runs: None, server: Any, convex_npm: Path, order: str
) -> None:
    report = run_feed(
        server,
        convex_npm,
        order=order,
        initial=10_000,
        inserts=2_000,
        page_size=100,
        deadline_ms=60_000,
    )
    print(figures("soak", order, report))


# --- the race, deterministically, on the raw protocol ----------------------------------


async def test_sync_commit_during_a_first_run_reaches_the_subscription(
    sync_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit after a new query's snapshot, before the round that ran it is done.

    ``sync_api`` (tests/sync/conftest.py): a served gateway on the notes app and a raw
    protocol client for it.

    ``Runtime.run_queries`` is wrapped so that, the first time, one insert commits
    (acknowledged) after the snapshot was taken and before the round tracks the query's
    read set: the first Transition rightly shows the snapshot (count 0), but a later
    Transition, at a ts past that commit, must show it (count 1).
    """
    gateway = sync_api.gateway
    run_queries = gateway.runtime.run_queries
    raced: list[Any] = []

    async def snapshot_then_commit(calls: Any) -> Any:
        results, ts = await run_queries(calls)
        if not raced:
            raced.append(await gateway.run_mutation("notes:add", {"topic": "r", "body": "x"}))
        return results, ts

    monkeypatch.setattr(gateway.runtime, "run_queries", snapshot_then_commit)
    client = await sync_api.open()
    try:
        await client.modify(
            {"type": "Add", "queryId": 0, "udfPath": "notes:count", "args": [{"topic": "r"}]}
        )
        await client.transition()
        assert raced, "the wrapped run_queries did not run"
        assert client.results[0] == ("ok", 0.0)  # the snapshot before the commit
        # Another write (elsewhere) moves the client's ts past the raced commit.
        await client.call("Mutation", "notes:add", {"topic": "elsewhere", "body": "y"})
        response, _ = await client.response("MutationResponse")
        assert response["success"] is True
        assert client.results[0] == ("ok", 1.0), (
            f"at ts {client.version['ts']} the subscription still shows {client.results[0]}"
        )
    finally:
        await client.close()
