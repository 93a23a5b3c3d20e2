"""The push takes its batch as Convex JSON (``json_args``) and checks each document once:
every form a document may come in is stored as the full conversion would store it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hub_kit import EDGE, KEY, Edge, change, documents, number, push, register, write_hub_app
from sync.sync_kit import serving

from gateway import Settings
from gateway.replication.batch import PUSH_PATH
from gateway.values import Int64, decode_json, to_convex


def _int64_json(n: int) -> dict[str, str]:
    return {"$integer": base64.b64encode(n.to_bytes(8, "little", signed=True)).decode()}


def _doc(doc_id: str, creation: Any, **fields: Any) -> dict[str, Any]:
    return {"_id": doc_id, "_creationTime": creation, **fields}


def _as_stored(doc: dict[str, Any]) -> dict[str, Any]:
    """What the full conversion makes of a document sent as JSON."""
    body = to_convex(decode_json({k: x for k, x in doc.items() if not k.startswith("_")}))
    assert isinstance(body, dict)
    return {"_id": doc["_id"], "_creationTime": float(doc["_creationTime"]), **body}


async def _post(api: Any, batch: dict[str, Any]) -> dict[str, Any]:
    body = {"path": PUSH_PATH, "args": batch, "format": "json"}
    async with api.session.post("/api/mutation", data=json.dumps(body)) as response:
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer


async def test_every_form_of_document_is_stored_as_the_full_conversion_gives(
    tmp_path: Path,
) -> None:
    data = tmp_path / "hubdata"
    register(data)
    async with serving(write_hub_app(tmp_path), data, Settings(hub=True)) as api:
        readings, things = Edge(number(api.gateway, "readings")), Edge(700)
        r = [readings.new_id() for _ in range(4)]
        t = [things.new_id() for _ in range(2)]
        sent = [
            ("readings", _doc(r[0], 1.5, device="d1", celsius=20.5)),  # the fast path
            ("readings", _doc(r[1], 2, device="d1", celsius=21)),  # JSON ints
            ("readings", _doc(r[2], 3.5, celsius=22.5, device="Küche")),  # order, non-ASCII
            ("readings", {"_creationTime": 4.5, "_id": r[3], "device": "d", "celsius": 1.0}),
            (
                "things",
                _doc(t[0], 5.5, n=_int64_json(-7), raw={"$bytes": "AAE="}, at=[1, {"x": 2}]),
            ),
            ("things", _doc(t[1], 6.5, name="plain", ok=True, none=None)),  # schemaless fast path
        ]
        changes = [
            {"op": "insert", "table": table, "id": doc["_id"], "ts": "1", "doc": doc}
            for table, doc in sent
        ]
        answer = await _post(api, readings.batch(1, changes, key=KEY))
        assert answer["status"] == "success", answer
        stored = {d["_id"]: d for d in await documents(api.gateway, "readings")}
        stored |= {d["_id"]: d for d in await documents(api.gateway, "things")}
        for _table, doc in sent:
            assert stored[doc["_id"]] == _as_stored(doc)
        assert stored[t[0]]["n"] == Int64(-7) and stored[t[0]]["raw"] == b"\x00\x01"
        assert type(stored[r[1]]["celsius"]) is float
        assert list(stored[r[3]])[:2] == ["_id", "_creationTime"]
        assert await documents(api.gateway, "_replication_dead_letters") == []


async def test_what_cannot_be_converted_is_dead_lettered_with_the_reason(tmp_path: Path) -> None:
    data = tmp_path / "hubdata"
    register(data)
    async with serving(write_hub_app(tmp_path), data, Settings(hub=True)) as api:
        things = Edge(700)
        bad = [things.new_id() for _ in range(3)]
        good = things.new_id()
        changes = [
            {"op": "insert", "table": "things", "id": bad[0], "doc": _doc(bad[0], 1.0, **{"$x": 1.0})},
            {"op": "insert", "table": "things", "id": bad[1], "doc": _doc(bad[1], 1.0, n={"$integer": "no"})},
            {"op": "insert", "table": "things", "id": bad[2], "doc": _doc(bad[2], 1.0, _secret=1.0)},
            {"op": {"not": "an op"}, "table": ["x"], "id": 5, "doc": None},
            {"op": "insert", "table": "things", "id": good, "doc": _doc(good, 1.0, n=1.0)},
        ]  # fmt: skip
        answer = await _post(api, things.batch(1, changes, key=KEY))
        assert answer["value"] == {"applied": 5}, answer
        assert [d["_id"] for d in await documents(api.gateway, "things")] == [good]
        letters = {d["seq"]: d for d in await documents(api.gateway, "_replication_dead_letters")}
        assert sorted(letters) == [1.0, 2.0, 3.0, 4.0]
        assert "$x" in letters[1.0]["reason"]
        assert "$integer" in letters[2.0]["reason"]
        assert "_secret" in letters[3.0]["reason"]
        assert (letters[4.0]["op"], letters[4.0]["table"], letters[4.0]["docId"]) == (None,) * 3
        assert json.loads(letters[1.0]["doc"])["$x"] == 1.0  # the document as the edge sent it


async def test_a_wrong_batch_field_gets_the_validators_message(tmp_path: Path) -> None:
    data = tmp_path / "hubdata"
    register(data)
    async with serving(write_hub_app(tmp_path), data, Settings(hub=True)) as api:
        edge = Edge(number(api.gateway, "readings"))
        batch = edge.batch(1, [change("insert", "readings", edge.new_id(), {})], key=KEY)
        missing = await _post(api, {k: x for k, x in batch.items() if k != "changes"})
        assert "changes" in missing["errorMessage"], missing
        assert "ArgumentValidationError" in missing["errorMessage"]
        not_a_list = await _post(api, {**batch, "changes": {"a": 1}})
        assert "changes" in not_a_list["errorMessage"], not_a_list
        wrong_epoch = await _post(api, {**batch, "epoch": "one"})
        assert "epoch" in wrong_epoch["errorMessage"], wrong_epoch
        dollar = await _post(api, {**batch, "gateway": {"$integer": "AQAAAAAAAAA="}})
        assert "gateway" in dollar["errorMessage"], dollar
        assert await documents(api.gateway, "readings") == []


async def test_in_process_callers_pass_values_and_get_the_same(tmp_path: Path) -> None:
    from hub_kit import hub

    async with hub(tmp_path) as gw:
        things = Edge(700)
        doc_id = things.new_id()
        doc = {"_id": doc_id, "_creationTime": 1.5, "n": Int64(3), "raw": b"\x02"}
        batch = things.batch(1, [{"op": "insert", "table": "things", "id": doc_id, "doc": doc}])
        assert batch["gateway"] == EDGE
        assert (await push(gw, batch)).unwrap() == {"applied": 1.0}
        assert await documents(gw, "things") == [doc]


async def test_a_document_nested_too_deeply_is_dead_lettered_not_the_batch(tmp_path: Path) -> None:
    data = tmp_path / "hubdata"
    register(data)
    async with serving(write_hub_app(tmp_path), data, Settings(hub=True)) as api:
        things = Edge(700)
        deep_id, good = things.new_id(), things.new_id()
        deep: Any = 1.0
        for _ in range(300):  # past Convex's 16 levels; JSON parses it
            deep = {"x": deep}
        changes = [
            {"op": "insert", "table": "things", "id": deep_id, "doc": _doc(deep_id, 1.0, d=deep)},
            {"op": "insert", "table": "things", "id": good, "doc": _doc(good, 1.0, n=1.0)},
        ]
        answer = await _post(api, things.batch(1, changes, key=KEY))
        assert answer["value"] == {"applied": 2}, answer
        assert [d["_id"] for d in await documents(api.gateway, "things")] == [good]
        [letter] = await documents(api.gateway, "_replication_dead_letters")
        assert letter["docId"] == deep_id and "nested" in letter["reason"]


def test_a_dead_letter_keeps_what_it_can_of_a_document_too_deep_to_write() -> None:
    from gateway.replication.hub_tables import _json_text

    deep: Any = 1.0
    for _ in range(100_000):
        deep = [deep]
    assert _json_text({"a": 1.0}) == '{"a": 1.0}'
    assert "not kept" in _json_text(deep)
