"""The hybrid logical clock: monotonic across restarts, deaf to absurd wall clocks."""

from __future__ import annotations

import asyncio
import math

import pytest

from gateway.store import ClockDriftError, HybridClock
from gateway.store.hlc import ABSURD_FUTURE_NS, NS_PER_S

DAY = 86400 * NS_PER_S
T0 = 1_790_000_000 * NS_PER_S


class Wall:
    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


def test_follows_a_sane_wall_clock() -> None:
    wall = Wall(T0)
    clock = HybridClock(0, wall_ns=wall, synced=lambda: False)
    first = clock.peek()
    assert first.ts_ns == T0 and first.wall_trusted
    clock.advance_to(first.ts_ns)
    wall.ns += 5_000
    assert clock.peek().ts_ns == T0 + 5_000


def test_never_goes_backwards_when_the_wall_clock_does() -> None:
    wall = Wall(T0)
    clock = HybridClock(0, wall_ns=wall, synced=lambda: False)
    clock.advance_to(clock.peek().ts_ns)
    wall.ns = T0 - DAY  # NTP stepped back a day
    nxt = clock.peek().ts_ns
    assert nxt == T0 + 1


def test_restart_with_a_clock_in_the_past_continues_from_the_persisted_ts() -> None:
    # A Pi without an RTC boots in 1970 and reopens a store last written at T0.
    clock = HybridClock(T0, wall_ns=Wall(0), synced=lambda: False)
    stamps = []
    for _ in range(3):
        ts = clock.peek().ts_ns
        clock.advance_to(ts)
        stamps.append(ts)
    assert stamps == [T0 + 1, T0 + 2, T0 + 3]


def test_an_absurd_forward_jump_is_not_followed_while_unsynchronised() -> None:
    wall = Wall(T0)
    clock = HybridClock(T0, wall_ns=wall, synced=lambda: False)
    wall.ns = T0 + 40 * 365 * DAY  # RTC garbage: 40 years ahead
    reading = clock.peek()
    assert reading.ts_ns == T0 + 1
    assert not reading.wall_trusted and not clock.wall_trusted


def test_a_big_jump_is_followed_once_ntp_says_the_clock_is_synchronised() -> None:
    wall = Wall(T0)
    clock = HybridClock(T0, wall_ns=wall, synced=lambda: True)
    wall.ns = T0 + 30 * DAY  # the box was off for a month; NTP just synced
    assert clock.peek().ts_ns == T0 + 30 * DAY


def test_past_2200_is_never_trusted_even_if_synced() -> None:
    clock = HybridClock(T0, wall_ns=Wall(ABSURD_FUTURE_NS + 1), synced=lambda: True)
    assert clock.peek().ts_ns == T0 + 1


def test_peer_timestamps_fold_in_only_within_bounded_drift() -> None:
    clock = HybridClock(T0, wall_ns=Wall(T0), synced=lambda: True)
    clock.observe(T0 + 10 * NS_PER_S)
    assert clock.last_ts_ns == T0 + 10 * NS_PER_S
    with pytest.raises(ClockDriftError, match="ahead"):
        clock.observe(T0 + DAY)
    assert clock.last_ts_ns == T0 + 10 * NS_PER_S


async def test_store_timestamps_survive_a_restart_with_the_clock_set_back(
    make_app, tmp_path
) -> None:
    from gateway.store import Store

    async def write_one(store: Store) -> int:
        _, ts = await store.write(lambda tx: tx.insert("t", {"x": 1.0}, tx.ts / 1e6))
        return ts

    store = await Store.open(tmp_path, wall_ns=Wall(T0), synced=lambda: False)
    first = await write_one(store)
    await store.close()
    store = await Store.open(tmp_path, wall_ns=Wall(T0 - 365 * DAY), synced=lambda: False)
    try:
        second = await write_one(store)
    finally:
        await store.close()
    # Counting on from T0, past the first document's _creationTime (T0 / 1e6 ms): the
    # next float up is ~244 ns later, so the next ts is within a microsecond.
    assert first == T0 and T0 < second < T0 + 1_000


async def test_creation_times_follow_commit_order_while_the_clock_counts_on(tmp_path) -> None:
    """A wall clock behind the HLC: each commit's ts is 1 ns on, finer than a
    ``_creationTime`` float can tell; the next commit's creation times still come after
    every one handed out before (as ``Execution.creation_time`` hands them out)."""
    from gateway.store import Store

    def insert_three(tx):
        handed, creation = [], tx.ts / 1e6
        for _ in range(3):
            tx.insert("t", {"x": 1.0}, creation)
            handed.append(creation)
            creation = math.nextafter(creation, math.inf)
        return handed

    store = await Store.open(tmp_path, wall_ns=Wall(T0), synced=lambda: False)
    try:
        writes = [await store.write(insert_three)]
        store.writer.clock._wall_ns = Wall(T0 - DAY)  # noqa: SLF001 - set back, running
        writes += await asyncio.gather(*(store.write(insert_three) for _ in range(5)))
    finally:
        await store.close()
    in_commit_order = [c for handed, _ in sorted(writes, key=lambda w: w[1]) for c in handed]
    assert all(a < b for a, b in zip(in_commit_order, in_commit_order[1:], strict=False))


async def test_the_newest_ts_readers_see_is_the_newest_commit_while_the_clock_counts_on(
    tmp_path,
) -> None:
    """The creation-time floor moves the next commit's ts, never the one readers and the
    write log take for the newest commit (a read at a ts no commit has waited forever)."""
    from gateway.store import Store

    store = await Store.open(tmp_path, wall_ns=Wall(T0), synced=lambda: False)
    try:
        for _ in range(3):
            _, ts = await store.write(lambda tx: tx.insert("t", {"x": 1.0}, tx.ts / 1e6))
            _, read_ts = await store.read(lambda tx: None)
            assert store.clock.last_ts_ns == ts == read_ts
    finally:
        await store.close()
