"""The per-socket Outbox: responses in order, Transitions merged while they wait."""

from __future__ import annotations

import asyncio
import json

from gateway.sync import protocol as p
from gateway.sync.outbox import Outbox, Transition


def v(query_set: int, ts: int) -> p.StateVersion:
    return p.StateVersion(query_set, 0, ts)


def updated(value: float) -> p.QueryBody:
    return p.query_updated_body(json.dumps(value), [])


REMOVED = p.QUERY_REMOVED_BODY


async def drain(box: Outbox) -> list[dict]:
    frames = []
    while len(box):
        frames.append(json.loads(await box.get()))
    return frames


async def test_a_waiting_transition_absorbs_newer_ones() -> None:
    box = Outbox()
    box.put([], Transition(v(1, 10), v(1, 20), {1: updated(1.0), 2: updated(1.0)}))
    box.put(['{"type":"MutationResponse","requestId":0}'], Transition(v(1, 20), v(2, 30)))
    box.put([], Transition(v(2, 30), v(2, 40), {1: updated(3.0)}))
    assert box.merged == 2 and len(box) == 2
    response, merged = await drain(box)
    assert response["type"] == "MutationResponse"  # responses go first, in order
    assert merged["startVersion"] == json.loads(v(1, 10).json())
    assert merged["endVersion"] == json.loads(v(2, 40).json())
    assert [(m["queryId"], m["value"]) for m in merged["modifications"]] == [(1, 3.0), (2, 1.0)]


async def test_a_query_added_and_removed_while_waiting_is_never_mentioned() -> None:
    box = Outbox()
    box.put([], Transition(v(1, 10), v(1, 20), {5: updated(1.0)}, added={5}))
    box.put([], Transition(v(1, 20), v(2, 20), {5: REMOVED}))
    (merged,) = await drain(box)
    assert merged["modifications"] == []
    # A query the client already had keeps its removal.
    box.put([], Transition(v(2, 20), v(2, 30), {6: updated(1.0)}))
    box.put([], Transition(v(2, 30), v(3, 30), {6: REMOVED}))
    (merged,) = await drain(box)
    assert merged["modifications"] == [{"type": "QueryRemoved", "queryId": 6}]


async def test_frames_sent_before_a_merge_are_not_touched() -> None:
    box = Outbox()
    box.put(["r0"], Transition(v(0, 1), v(0, 2), {1: updated(1.0)}))
    assert await box.get() == b"r0"
    first = json.loads(await box.get())  # the sender took it: nothing left to merge into
    box.put(["r1"], Transition(v(0, 2), v(0, 3), {1: updated(2.0)}))
    assert box.merged == 0
    assert first["endVersion"]["ts"] == json.loads(v(0, 2).json())["ts"]
    assert await box.get() == b"r1"


async def test_get_waits_for_a_frame() -> None:
    box = Outbox()
    waiter = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.put(["hello"], None)
    box.wake()
    assert await asyncio.wait_for(waiter, 5) == b"hello"


async def test_sockets_in_the_same_state_share_one_encoded_frame() -> None:
    cache: dict = {}
    body = updated(7.0)
    frames = []
    for _ in range(3):
        box = Outbox()
        box.put([], Transition(v(1, 10), v(1, 20), {0: body}, cache=cache))
        frames.append(await box.get())
    assert frames[0] is frames[1] is frames[2]  # built once
    other = Outbox()
    other.put([], Transition(v(2, 10), v(2, 20), {0: body}, cache=cache))
    assert await other.get() != frames[0]  # other versions: a frame of its own
