"""The hub's push mutation in process: the batch rules of gateway.replication.batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub_kit import EDGE, Edge, change, documents, hub, number, push, register, write_hub_app

from gateway import Gateway, Settings
from gateway.replication import hub_tables
from gateway.replication.batch import (
    GAP_CODE,
    MAX_BATCH_BYTES,
    MAX_BATCH_CHANGES,
    UNAUTHORIZED_CODE,
)
from gateway.replication.hub_status import PROVENANCE_PATH


def _reading(celsius: float) -> dict[str, object]:
    return {"device": "d1", "celsius": celsius}


async def test_inserts_keep_the_edge_ids_and_a_repush_applies_nothing(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        edge = Edge(number(gw, "readings"))
        ids = [edge.new_id() for _ in range(3)]
        batch = edge.batch(1, [change("insert", "readings", i, _reading(20.0)) for i in ids])
        assert (await push(gw, batch)).unwrap() == {"applied": 3.0}
        assert (await push(gw, batch)).unwrap() == {"applied": 3.0}
        docs = await documents(gw, "readings")
        assert [d["_id"] for d in docs] == ids
        assert all(d["_creationTime"] == 1_700_000_000_000.5 for d in docs)
        marks = await gw.run_query("views:marks")  # app code reads them with ctx.db.system
        assert [(m["gateway"], m["applied"]) for m in marks] == [(EDGE, 3.0)]
        provenance = [await gw.run_query(PROVENANCE_PATH, {"id": i}) for i in ids]
        assert [p["docId"] for p in provenance] == ids
        assert {(p["table"], p["gateway"], p["clockTrusted"], p["ts"]) for p in provenance} == {
            ("readings", EDGE, True, "1")
        }
        assert [p["seq"] for p in provenance] == [1.0, 2.0, 3.0]


async def test_a_gap_is_refused_with_the_applied_seq(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        edge = Edge(number(gw, "readings"))
        first = edge.batch(1, [change("insert", "readings", edge.new_id(), _reading(1.0))])
        (await push(gw, first)).unwrap()
        gap = edge.batch(5, [change("insert", "readings", edge.new_id(), _reading(2.0))])
        result = await push(gw, gap)
        assert result.error_data == {"code": GAP_CODE, "applied": 1.0}
        assert len(await documents(gw, "readings")) == 1


async def test_a_partial_overlap_applies_only_the_new_part(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        edge = Edge(number(gw, "readings"))
        changes = [
            change("insert", "readings", edge.new_id(), _reading(float(i))) for i in range(4)
        ]
        (await push(gw, edge.batch(1, changes[:2]))).unwrap()
        # A re-cut batch 1..4 after an acknowledgement of 2: only 3 and 4 are new.
        assert (await push(gw, edge.batch(1, changes))).unwrap() == {"applied": 4.0}
        celsius = [d["celsius"] for d in await documents(gw, "readings")]
        assert celsius == [0.0, 1.0, 2.0, 3.0]


async def test_a_new_epoch_starts_fresh(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        old = Edge(number(gw, "readings"), epoch=1.0)
        batch = [change("insert", "readings", old.new_id(), _reading(1.0)) for _ in range(5)]
        (await push(gw, old.batch(1, batch))).unwrap()
        restored = Edge(number(gw, "readings"), epoch=2.0)
        restored._next_id = 100
        again = [change("insert", "readings", restored.new_id(), _reading(2.0))]
        assert (await push(gw, restored.batch(3, again))).unwrap() == {"applied": 3.0}
        assert len(await documents(gw, "readings")) == 6
        marks = {m["epoch"]: m["applied"] for m in await documents(gw, "_replication_marks")}
        assert marks == {1.0: 5.0, 2.0: 3.0}


async def test_a_wrong_or_revoked_key_is_refused(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        edge = Edge(number(gw, "readings"))
        batch = edge.batch(1, [change("insert", "readings", edge.new_id(), _reading(1.0))])
        wrong = await push(gw, {**batch, "key": "not-the-key"})
        assert wrong.error_data == {"code": UNAUTHORIZED_CODE}
        stranger = await push(gw, {**batch, "gateway": "someone-else"})
        assert stranger.error_data == {"code": UNAUTHORIZED_CODE}
        register(gw.data_dir, "another-gateway")  # EDGE's line is gone: revoked
        revoked = await push(gw, batch)
        assert revoked.error_data == {"code": UNAUTHORIZED_CODE}
        assert await documents(gw, "readings") == []


async def test_updates_and_deletes_apply_in_batch_order(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        edge = Edge(number(gw, "readings"))
        a, b = edge.new_id(), edge.new_id()
        changes = [
            change("insert", "readings", a, _reading(1.0)),
            change("insert", "readings", b, _reading(2.0)),
            change("update", "readings", a, _reading(10.0)),
            change("delete", "readings", b),
            change("skip", "gone", a),
            change("update", "readings", a, _reading(11.0)),
        ]
        assert (await push(gw, edge.batch(1, changes))).unwrap() == {"applied": 6.0}
        docs = await documents(gw, "readings")
        assert [(d["_id"], d["celsius"]) for d in docs] == [(a, 11.0)]
        assert (await gw.run_query(PROVENANCE_PATH, {"id": a}))["seq"] == 1.0
        assert await gw.run_query(PROVENANCE_PATH, {"id": b}) is None


async def test_a_refused_document_is_dead_lettered_and_the_rest_applies(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        edge = Edge(number(gw, "readings"))
        good, bad = edge.new_id(), edge.new_id()
        changes = [
            change("insert", "readings", bad, {"device": "d1", "celsius": "hot"}),
            change("insert", "readings", good, _reading(3.0)),
        ]
        assert (await push(gw, edge.batch(1, changes))).unwrap() == {"applied": 2.0}
        assert [d["_id"] for d in await documents(gw, "readings")] == [good]
        [letter] = await documents(gw, "_replication_dead_letters")
        assert (letter["docId"], letter["seq"], letter["gateway"]) == (bad, 1.0, EDGE)
        assert "does not match the schema" in letter["reason"]
        # Readable by app code through ctx.db.system, as the brief of system tables says.
        found = await gw.run_query(
            "_system/cli/tableData",
            {
                "table": "_replication_dead_letters",
                "paginationOpts": {"numItems": 10, "cursor": None},
            },
        )
        assert [d["docId"] for d in found["page"]] == [bad]


async def test_a_missing_table_is_created_with_the_edge_number(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        edge = Edge(500)
        doc_id = edge.new_id()
        batch = edge.batch(1, [change("insert", "sensors", doc_id, {"name": "s1"})])
        (await push(gw, batch)).unwrap()
        assert number(gw, "sensors") == 500
        assert [d["_id"] for d in await documents(gw, "sensors")] == [doc_id]
        clash = Edge(number(gw, "readings"))
        wrong = clash.batch(2, [change("insert", "sensors", clash.new_id(), {"name": "s2"})])
        (await push(gw, wrong)).unwrap()
        [letter] = await documents(gw, "_replication_dead_letters")
        assert "table number" in letter["reason"]


async def test_the_push_is_not_there_without_hub(make_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gateway import Gateway
    from gateway.config import Settings

    app = make_app(schema="from gateway import define_schema\nschema = define_schema({})\n")
    async with Gateway.open(app, tmp_path / "d", Settings()) as gw:
        result = await gw.call("mutation", "_system/replication:push", {}, admin=False)
        assert "Could not find" in result.error_message


async def test_a_full_batch_runs_with_the_push_budget_not_the_mutation_budget(
    tmp_path: Path,
) -> None:
    # 1 ms for app mutations: a full batch passes only because the push has its own budget.
    async with hub(tmp_path, mutation_budget_ms=1.0) as gw:
        edge = Edge(number(gw, "notes"))
        text = "x" * (MAX_BATCH_BYTES // MAX_BATCH_CHANGES - 300)
        changes = [
            change("insert", "notes", edge.new_id(), {"text": text})
            for _ in range(MAX_BATCH_CHANGES)
        ]
        batch = edge.batch(1, changes)
        assert (await push(gw, batch)).unwrap() == {"applied": float(MAX_BATCH_CHANGES)}
        assert len(await documents(gw, "notes")) == MAX_BATCH_CHANGES


async def test_a_malformed_batch_is_refused_whole(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        edge = Edge(number(gw, "readings"))
        changes = [change("insert", "readings", edge.new_id(), _reading(1.0)) for _ in range(3)]
        batch = edge.batch(1, changes)
        short = await push(gw, {**batch, "last": 5.0})
        assert "must carry 5 changes" in short.error_message
        shuffled = {
            **batch,
            "changes": [batch["changes"][1], batch["changes"][0], batch["changes"][2]],
        }
        assert "is not seq 1" in (await push(gw, shuffled)).error_message
        endless = await push(gw, {**batch, "last": float("inf")})
        assert "must be whole seqs" in endless.error_message
        assert await documents(gw, "readings") == []
        assert await documents(gw, "_replication_marks") == []


async def test_the_gateways_status_is_for_admin_callers(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        edge = Edge(number(gw, "readings"))
        batch = edge.batch(7, [change("insert", "readings", edge.new_id(), _reading(1.0))])
        (await push(gw, {**batch, "clockTrusted": False})).unwrap()
        register(gw.data_dir, "newcomer")  # EDGE revoked, a newcomer that never pushed
        [revoked, newcomer] = await gw.run_query("_system/replication:gateways")
        assert newcomer == {"gateway": "newcomer", "registered": True}
        assert revoked["gateway"] == EDGE and revoked["registered"] is False
        assert (revoked["applied"], revoked["clockTrusted"]) == (7.0, False)
        assert revoked["lagMs"] >= 0
        hidden = await gw.call("query", "_system/replication:gateways", {}, admin=False)
        assert "Could not find" in hidden.error_message


async def test_a_document_deleted_and_created_again_in_one_batch_keeps_the_last_origin(
    tmp_path: Path,
) -> None:
    async with hub(tmp_path) as gw:
        edge = Edge(number(gw, "readings"))
        a = edge.new_id()
        (await push(gw, edge.batch(1, [change("insert", "readings", a, _reading(1.0))]))).unwrap()
        again = [
            change("delete", "readings", a),
            change("insert", "readings", a, _reading(2.0)),
            change("update", "readings", a, _reading(3.0)),
        ]
        (await push(gw, edge.batch(2, again))).unwrap()
        assert [d["celsius"] for d in await documents(gw, "readings")] == [3.0]
        assert (await gw.run_query(PROVENANCE_PATH, {"id": a}))["seq"] == 3.0


async def test_dead_letters_keep_the_newest(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hub_tables, "MAX_DEAD_LETTERS", 3)
    async with hub(tmp_path) as gw:
        edge = Edge(number(gw, "readings"))
        bad = [{"device": "d1", "celsius": f"hot {i}"} for i in range(5)]
        for seq, body in enumerate(bad, start=1):
            batch = edge.batch(seq, [change("insert", "readings", edge.new_id(), body)])
            (await push(gw, batch)).unwrap()
        letters = await documents(gw, "_replication_dead_letters")
        assert [letter["seq"] for letter in letters] == [3.0, 4.0, 5.0]


async def test_provenance_of_the_old_system_table_is_moved_at_start(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hub_tables, "_MOVE_CHUNK", 2)  # five rows: three writer jobs
    rows = [
        {
            "docId": f"{n}" * 31,
            "table": "readings",
            "gateway": EDGE,
            "epoch": 1.0,
            "seq": float(n),
            "ts": "42",
            "clockTrusted": n % 2 == 0,
            "receivedMs": 5.0,
        }
        for n in range(1, 6)
    ]
    async with hub(tmp_path) as gw:

        def old_layout(tx: Any) -> None:
            tx.create_table("_replication_provenance")
            for row in rows:
                tx.insert("_replication_provenance", row, 5.0)

        await gw.store.write(old_layout)
    app, data = tmp_path / "hubapp", tmp_path / "hubdata"
    async with Gateway.open(app, data, Settings(hub=True)) as gw:
        for row in rows:
            assert await gw.run_query(PROVENANCE_PATH, {"id": row["docId"]}) == row
        assert await documents(gw, "_replication_provenance") == []


async def test_provenance_of_the_flat_table_is_moved_at_start(tmp_path: Path) -> None:
    """A hub that kept every field in every document's row (``replication_provenance``)
    moves its rows to the push and origin tables at start, one push row per push."""
    pushes = [(EDGE, 1.0, 1, 5.0), (EDGE, 1.0, 0, 6.0), ("other", 2.0, 1, 6.0)]
    rows = [
        {
            "docId": f"{n}" * 31,
            "table": "readings",
            "gateway": pushes[n % 3][0],
            "epoch": pushes[n % 3][1],
            "seq": float(n),
            "ts": f"{n}42",
            "clockTrusted": bool(pushes[n % 3][2]),
            "receivedMs": pushes[n % 3][3],
        }
        for n in range(1, 8)
    ]
    async with hub(tmp_path) as gw:

        def flat_layout(tx: Any) -> None:
            tx.conn.execute(
                "CREATE TABLE replication_provenance (doc_id TEXT PRIMARY KEY, tbl TEXT NOT "
                "NULL, gateway TEXT NOT NULL, epoch REAL NOT NULL, seq REAL NOT NULL, ts TEXT "
                "NOT NULL, trusted INTEGER NOT NULL, received_ms REAL NOT NULL) WITHOUT ROWID"
            )
            for r in rows:
                tx.conn.execute(
                    "INSERT INTO replication_provenance VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (r["docId"], r["table"], r["gateway"], r["epoch"], r["seq"], r["ts"])
                    + (int(r["clockTrusted"]), r["receivedMs"]),
                )

        await gw.store.write(flat_layout)
    app, data = tmp_path / "hubapp", tmp_path / "hubdata"
    async with Gateway.open(app, data, Settings(hub=True)) as gw:
        for row in rows:
            assert await gw.run_query(PROVENANCE_PATH, {"id": row["docId"]}) == row

        def tables(tx: Any) -> tuple[list[str], int]:
            names = tx.conn.execute(
                "SELECT name FROM sqlite_master WHERE name LIKE 'replication_%' "
                "AND type = 'table' ORDER BY name"
            ).fetchall()
            (count,) = tx.conn.execute("SELECT count(*) FROM replication_pushes").fetchone()
            return [n for (n,) in names], count

        names, count = (await gw.store.read(tables))[0]
        assert names == ["replication_origins", "replication_pushes"]
        assert count == len(pushes)


async def test_a_hub_without_an_upstream_keeps_no_outbox_of_what_it_receives(
    tmp_path: Path,
) -> None:
    def outbox_rows(tx: Any) -> int:
        return int(tx.conn.execute("SELECT count(*) FROM change_log").fetchone()[0])

    app, data = write_hub_app(tmp_path), tmp_path / "hubdata"
    schema = app / "convex" / "schema.py"
    schema.write_text(schema.read_text().replace("v.float64()})", 'v.float64()}).replicate("up")'))
    register(data)
    for seq, settings in enumerate(
        # A hub that replicates further (to Convex, say) forwards what it receives.
        [Settings(hub=True), Settings(hub=True, upstream_url="http://127.0.0.1:9")],
        start=1,
    ):
        (data / "upstream_key").write_text("k")
        async with Gateway.open(app, data, settings) as gw:
            assert gw.store.catalog.replication["readings"] == ("up" if seq == 2 else "local")
            edge = Edge(number(gw, "readings"))
            for _ in range(seq):  # past the ids of the rounds before
                edge.new_id()
            batch = edge.batch(seq, [change("insert", "readings", edge.new_id(), _reading(1.0))])
            (await push(gw, batch)).unwrap()
            assert (await gw.store.read(outbox_rows))[0] == seq - 1
