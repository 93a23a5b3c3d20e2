"""The uplink against a fake upstream: drains in order, survives outages, gaps, black
holes and a wrong key, and prunes what is acknowledged."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from edge_upstream_kit import (
    KEY,
    PADDED_SCHEMA,
    BlackHole,
    FakeUpstream,
    eventually,
    write_app,
)

from gateway import Gateway
from gateway.replication.batch import MAX_BATCH_BYTES, PUSH_PATH
from gateway.replication.client import PushClient
from gateway.replication.outbox import CUT_CHANGES, Cut, Outbox
from gateway.replication.uplink import PIPELINE_BATCHES, PIPELINE_BYTES, Uplink
from gateway.replication.worker_link import WorkerSender


@pytest.fixture(params=["in-process", "worker"])
def sending(request: pytest.FixtureRequest) -> str:
    """Where batches are cut and pushed: in the gateway's process, or its worker's."""
    return str(request.param)


@asynccontextmanager
async def _uplink(
    sending: str, gw: Gateway, url: str, *, key: str = KEY, request_timeout_s: float = 5.0
) -> AsyncIterator[Uplink]:
    client: PushClient | WorkerSender
    if sending == "worker":
        client = WorkerSender(
            gw.store.path,
            url,
            path=PUSH_PATH,
            connect_timeout_s=0.5,
            request_timeout_s=request_timeout_s,
            replicated=lambda: gw.store.catalog.replication,
        )
    else:
        client = PushClient(url, connect_timeout_s=0.5, request_timeout_s=request_timeout_s)
    uplink = Uplink(
        gw.store,
        client,
        key=key,
        schema=lambda: "test-schema",
        backoff_min_s=0.05,
        backoff_max_s=0.2,
        unauthorized_retry_s=0.2,
        idle_poll_s=0.2,
    )
    await uplink.start()
    try:
        yield uplink
    finally:
        await uplink.close()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


async def _backlog(gw: Gateway) -> int:
    rows, _ = await gw.store.read(
        lambda tx: tx.conn.execute("SELECT count(*) FROM change_log").fetchone()[0]
    )
    return int(rows)


async def test_inserts_patches_and_deletes_arrive_once_in_order(
    tmp_path: Path, upstream: FakeUpstream, sending: str
) -> None:
    app = write_app(tmp_path / "app")
    async with (
        Gateway.open(app, tmp_path / "d") as gw,
        _uplink(sending, gw, upstream.url) as uplink,
    ):
        ids = [await gw.run_mutation("readings:add", {"n": n}) for n in range(20)]
        await gw.run_mutation("readings:bump", {"id": ids[0]})
        await gw.run_mutation("readings:remove", {"id": ids[1]})
        await gw.run_mutation("readings:local", {"n": 5})  # never leaves the box
        await eventually(lambda: len(upstream.applied) == 22)
        assert [s for _, s in upstream.seqs()] == list(range(1, 23))
        assert upstream.docs[ids[0]]["n"] == 1
        assert upstream.docs[ids[1]] is None
        assert {c["table"] for c in upstream.applied} == {"readings"}
        batch = upstream.batches[0]
        assert batch["gateway"] == gw.store.gateway_id and batch["epoch"] == gw.store.epoch
        assert batch["schema"] == "test-schema" and isinstance(batch["clockTrusted"], bool)
        await eventually(lambda: uplink.acked == 22)
        assert await _backlog(gw) == 0  # acknowledged entries are pruned


async def test_an_outage_is_ridden_out_with_backoff(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture, sending: str
) -> None:
    app = write_app(tmp_path / "app")
    upstream.down = True
    with caplog.at_level(logging.INFO, logger="gateway.replication"):
        async with (
            Gateway.open(app, tmp_path / "d") as gw,
            _uplink(sending, gw, upstream.url) as uplink,
        ):
            await gw.run_mutation("readings:add_many", {"start": 0, "count": 3000})
            await eventually(lambda: uplink.state == "down")
            tries = len(upstream.batches)
            await eventually(lambda: len(upstream.batches) >= tries)  # retrying, not spinning
            assert len(upstream.batches) == 0
            upstream.down = False
            await eventually(lambda: uplink.acked == 3000)
            assert [s for _, s in upstream.seqs()] == list(range(1, 3001))
            assert max(len(b["changes"]) for b in upstream.batches) <= 1000
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1  # one line per outage
    assert any("reachable again" in m for m in messages)


async def test_an_upstream_that_goes_away_and_comes_back_on_the_same_port(
    tmp_path: Path, sending: str
) -> None:
    app = write_app(tmp_path / "app")
    fake = FakeUpstream()
    await fake.start()
    port = fake.port
    async with Gateway.open(app, tmp_path / "d") as gw, _uplink(sending, gw, fake.url) as uplink:
        await gw.run_mutation("readings:add_many", {"start": 0, "count": 10})
        await eventually(lambda: uplink.acked == 10)
        await fake.stop()  # connection refused from now on
        await gw.run_mutation("readings:add_many", {"start": 10, "count": 10})
        await eventually(lambda: uplink.state == "down")
        back = FakeUpstream()
        back.marks = fake.marks  # the same upstream, restarted
        await back.start(port)
        try:
            await eventually(lambda: uplink.acked == 20)
            assert [s for _, s in back.seqs()] == list(range(11, 21))
        finally:
            await back.stop()


async def test_a_gap_is_answered_by_resending_from_the_upstreams_mark(
    tmp_path: Path, upstream: FakeUpstream, sending: str
) -> None:
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        async with _uplink(sending, gw, upstream.url) as uplink:
            await gw.run_mutation("readings:add_many", {"start": 0, "count": 5})
            await eventually(lambda: uplink.acked == 5)
        # The upstream lost its answer for 6..8: the edge thinks 8 is acknowledged.
        await gw.run_mutation("readings:add_many", {"start": 5, "count": 3})
        await Outbox(gw.store).acknowledge(8)
        upstream.marks[(gw.store.gateway_id, gw.store.epoch)] = 5  # ... but it has only 5
        await gw.run_mutation("readings:add_many", {"start": 8, "count": 2})
        epoch = gw.store.epoch
        async with _uplink(sending, gw, upstream.url) as uplink:
            # 9.. is refused (gap at 5 < acknowledged 8: pruned), so a new epoch starts.
            await eventually(lambda: uplink.acked == 10)
        assert gw.store.epoch == epoch + 1
        assert upstream.seqs()[-2:] == [(epoch + 1, 9), (epoch + 1, 10)]


async def test_a_gap_ahead_of_the_cursor_resends_only_the_missing_part(
    tmp_path: Path, upstream: FakeUpstream, sending: str
) -> None:
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        async with _uplink(sending, gw, upstream.url) as uplink:
            await gw.run_mutation("readings:add_many", {"start": 0, "count": 5})
            await eventually(lambda: uplink.acked == 5)
            upstream.gap_once_at = 6
            await gw.run_mutation("readings:add_many", {"start": 5, "count": 5})
            await eventually(lambda: uplink.acked == 10)
        assert [s for _, s in upstream.seqs()] == list(range(1, 11))


async def test_a_black_holing_link_is_detected_by_timeouts(tmp_path: Path, sending: str) -> None:
    app = write_app(tmp_path / "app")
    hole = BlackHole()
    await hole.start()
    try:
        async with (
            Gateway.open(app, tmp_path / "d") as gw,
            _uplink(sending, gw, hole.url, request_timeout_s=0.3) as uplink,
        ):
            await gw.run_mutation("readings:add", {"n": 1})
            await eventually(lambda: uplink.state == "down" and hole.connections >= 2)
            assert uplink.acked == 0
    finally:
        await hole.stop()


async def test_a_wrong_key_is_one_clear_line_and_slow_retries(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture, sending: str
) -> None:
    app = write_app(tmp_path / "app")
    wrong = "wrong-key-" + "z" * 30
    with caplog.at_level(logging.INFO):
        async with (
            Gateway.open(app, tmp_path / "d") as gw,
            _uplink(sending, gw, upstream.url, key=wrong) as uplink,
        ):
            await gw.run_mutation("readings:add", {"n": 1})
            await eventually(lambda: len(upstream.batches) >= 3)
            assert uplink.state == "unauthorized" and upstream.applied == []
            uplink.key = KEY  # the key file fixed; the next retry goes through
            await eventually(lambda: uplink.acked == 1)
    refused = [r for r in caplog.records if "refused this gateway" in r.getMessage()]
    assert len(refused) == 1 and "upstream_key" in refused[0].getMessage()
    assert all(wrong not in r.getMessage() for r in caplog.records)


async def test_large_batches_go_gzipped_unless_the_upstream_refuses(
    tmp_path: Path, upstream: FakeUpstream, sending: str
) -> None:
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        async with _uplink(sending, gw, upstream.url) as uplink:
            await gw.run_mutation("readings:add_many", {"start": 0, "count": 500})
            await eventually(lambda: uplink.acked == 500)
        assert upstream.gzipped >= 1
        upstream.refuse_gzip = True
        async with _uplink(sending, gw, upstream.url) as uplink:
            await gw.run_mutation("readings:add_many", {"start": 500, "count": 500})
            await eventually(lambda: uplink.acked == 1000)
        assert [s for _, s in upstream.seqs()] == list(range(1, 1001))


class _FlakyOutbox(Outbox):
    """Fails its first read, as a store error would."""

    failed = False

    async def next_cut(self, after: int) -> Cut | None:
        if not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("disk I/O error")
        return await super().next_cut(after)


async def test_an_unexpected_error_is_logged_and_the_uplink_carries_on(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        await gw.run_mutation("readings:add", {"n": 1})
        uplink = Uplink(
            gw.store,
            PushClient(upstream.url),
            key=KEY,
            schema=lambda: "s",
            outbox=_FlakyOutbox(gw.store),
            backoff_max_s=0.1,
        )
        with caplog.at_level(logging.ERROR, logger="gateway.replication"):
            await uplink.start()
            try:
                await eventually(lambda: uplink.acked == 1)
            finally:
                await uplink.close()
    assert any("uplink failed" in r.getMessage() for r in caplog.records)


async def test_an_upstream_mark_ahead_of_the_store_starts_a_new_epoch(
    tmp_path: Path, upstream: FakeUpstream, sending: str
) -> None:
    """A store that went back in time unnoticed (restored in place): the upstream has
    seen seqs this store never wrote, so what it sends now would be dropped as seen."""
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        epoch = gw.store.epoch
        upstream.marks[(gw.store.gateway_id, epoch)] = 1000
        await gw.run_mutation("readings:add_many", {"start": 0, "count": 5})
        async with _uplink(sending, gw, upstream.url) as uplink:
            await eventually(lambda: uplink.acked == 5)
        assert gw.store.epoch == epoch + 1
        assert upstream.seqs() == [(epoch + 1, s) for s in range(1, 6)]


async def test_batches_in_flight_that_overtake_each_other_still_apply_once_in_order(
    tmp_path: Path, upstream: FakeUpstream, sending: str
) -> None:
    # The fake answers every other batch late: the one behind it reaches the mark first,
    # is refused as a gap, and is sent again. The first batch of an epoch goes alone, or
    # the batch behind it would start the mark past it.
    upstream.delay_s = 0.05
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        for start in range(0, 6000, 1000):
            await gw.run_mutation("readings:add_many", {"start": start, "count": 1000})
        async with _uplink(sending, gw, upstream.url) as uplink:
            await eventually(lambda: uplink.acked == 6000)
    assert [s for _, s in upstream.seqs()] == list(range(1, 6001))
    first, second = upstream.batches[:2]
    # The first alone: the second starts past it (a batch that overtook it would have
    # started the mark, and the first been re-sent).
    assert (int(first["first"]), int(second["first"])) == (1, int(first["last"]) + 1)


@pytest.mark.parametrize(("pad", "most"), [(0, PIPELINE_BATCHES), (200_000, 2)])
async def test_batches_in_flight_are_capped_by_count_and_by_bytes(
    tmp_path: Path, upstream: FakeUpstream, sending: str, pad: int, most: int
) -> None:
    """Small changes: ``PIPELINE_BATCHES`` in flight; big ones (4 MiB batches of 200 KB
    documents): no more than ``PIPELINE_BYTES`` of them, so two."""
    assert MAX_BATCH_BYTES < PIPELINE_BYTES < 2 * MAX_BATCH_BYTES
    upstream.delay_s = 0.05
    upstream.late_every_other = False  # in order: no gap re-sends to count twice
    app = write_app(tmp_path / "app", PADDED_SCHEMA)
    count = 20 * CUT_CHANGES if not pad else 20 * (MAX_BATCH_BYTES // pad)
    async with Gateway.open(app, tmp_path / "d") as gw:
        step = 1000 if not pad else 40  # a mutation writes at most 16 MiB
        for start in range(0, count, step):
            size = min(step, count - start)
            await gw.run_mutation("readings:add_many", {"start": start, "count": size, "pad": pad})
        async with _uplink(sending, gw, upstream.url) as uplink:
            await eventually(lambda: uplink.acked == count, timeout_s=60)
    assert upstream.most_open == most
    assert [s for _, s in upstream.seqs()] == list(range(1, count + 1))


def test_the_schema_digest_is_worked_out_again_only_for_a_new_schema() -> None:
    from gateway import define_schema, define_table, v
    from gateway.replication.edge import _digest_of
    from gateway.replication.uplink import schema_digest

    first = define_schema({"r": define_table({"n": v.float64()}).replicate("up")})
    second = define_schema({"r": define_table({"n": v.string()}).replicate("up")})
    current = [first]
    calls = []

    def schema() -> object:
        calls.append(1)
        return current[0]

    digest = _digest_of(schema)
    assert digest() == digest() == schema_digest(first)
    current[0] = second  # outpost dev swapped a new schema in
    assert digest() == schema_digest(second) != schema_digest(first)
    assert len(calls) == 3


class _ScriptedSender:
    """Cuts from the real outbox; each push answers the mark ``marks`` gives its first
    seq (else its last), as an upstream that answered the pushes in another order than
    they reached the edge would."""

    def __init__(self, outbox: Outbox, marks: dict[int, int]) -> None:
        self._outbox = outbox
        self._marks = marks
        self.firsts: list[int] = []

    async def next_cut(self, after: int) -> Cut | None:
        return await self._outbox.next_cut(after)

    async def push(self, batch: dict[str, object], cut: Cut) -> int:
        self.firsts.append(cut.first)
        return self._marks.get(cut.first, cut.last)

    async def close(self) -> None:
        pass


async def test_an_answer_older_than_a_confirmation_taken_since_is_no_news(
    tmp_path: Path,
) -> None:
    """Batches 2 and 3 travel together. The upstream answered 3 first (its mark then:
    3's last), then took abandoned copies of later batches and answered 2 with a mark
    past 3: the answer to 3, taken second, is older than the edge's confirmation, not a
    mark gone back. No new epoch, nothing sent twice."""
    n = CUT_CHANGES
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        await gw.run_mutation("readings:add_many", {"start": 0, "count": 6 * n})
        epoch = gw.store.epoch
        sender = _ScriptedSender(Outbox(gw.store), {n + 1: 5 * n, 2 * n + 1: 3 * n})
        uplink = Uplink(gw.store, sender, key=KEY, schema=lambda: "s", idle_poll_s=0.2)
        await uplink.start()
        try:
            await eventually(lambda: uplink.acked == 6 * n)
        finally:
            await uplink.close()
        assert gw.store.epoch == epoch
    assert sender.firsts == [1 + k * n for k in range(6)]


async def test_a_mark_below_what_was_confirmed_when_the_push_left_starts_a_new_epoch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The upstream answers batch 3, sent after batch 1 was confirmed, with a mark below
    batch 1's last: it lost what it acknowledged, so the stream starts a new epoch."""
    n = CUT_CHANGES
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        await gw.run_mutation("readings:add_many", {"start": 0, "count": 4 * n})
        epoch = gw.store.epoch
        sender = _ScriptedSender(Outbox(gw.store), {2 * n + 1: n // 2})
        uplink = Uplink(gw.store, sender, key=KEY, schema=lambda: "s", idle_poll_s=0.2)
        with caplog.at_level(logging.WARNING, "gateway.replication"):
            await uplink.start()
            try:
                await eventually(lambda: gw.store.epoch != epoch)
            finally:
                await uplink.close()
    assert "behind this gateway's acknowledged" in caplog.text
