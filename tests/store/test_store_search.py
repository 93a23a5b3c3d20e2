"""Search index rows in the store: same transaction as documents, PendingWrites' rules.

Jobs share one writer batch (long ``commit_interval_ms``, concurrent submits), so
plain inserts of earlier jobs are still held back when a job writes search rows or
fails: the FTS5 table must agree with the documents table after every mix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gateway import Gateway, Settings
from gateway.store import Transaction
from gateway.store.search_text import indexed_text, match_expression, tokenize

SEARCH_STORE_APP = {
    "schema": """
        from gateway import define_schema, define_table, v
        schema = define_schema({
            "plain": define_table({"tag": v.string()}).index("by_tag", ["tag"]),
            "docs": define_table({"text": v.string(), "site": v.string()})
                .search_index("by_text", search_field="text", filter_fields=["site"]),
        })
    """,
}


class SearchBoom(Exception):
    pass


def _search_insert(table: str, fields: dict[str, Any]) -> Callable[[Transaction], str]:
    return lambda tx: tx.insert(table, fields, tx.ts / 1e6)


def _search_failing(table: str, fields: dict[str, Any]) -> Callable[[Transaction], str]:
    def work(tx: Transaction) -> str:
        tx.insert(table, fields, tx.ts / 1e6)
        raise SearchBoom

    return work


async def _search_one_batch(gw: Gateway, *works: Callable[[Transaction], Any]) -> list[Any]:
    stats = gw.store.writer.stats
    commits = stats.commits + stats.failed_commits
    tasks = []
    for work in works:
        tasks.append(asyncio.ensure_future(gw.store.write(work)))
        await asyncio.sleep(0)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert stats.commits + stats.failed_commits == commits + 1, "the jobs did not share one batch"
    return [r if isinstance(r, BaseException) else r[0] for r in results]


async def _search_state(gw: Gateway) -> tuple[list[str], list[str], list[str]]:
    """(texts of documents, texts in the FTS5 table, doc ids in the map without a doc)."""
    ix = gw.store.catalog.by_name["docs"].search["by_text"]
    fts = f"fts_{ix.index_id}"

    def read(tx: Transaction) -> tuple[list[str], list[str], list[str]]:
        conn = tx.conn
        docs = sorted(
            d["text"]
            for _k, _s, d in tx.scan(
                tx.catalog.by_name["docs"].indexes["by_creation_time"], b"", None
            )
        )
        terms = sorted(r[0] for r in conn.execute(f"SELECT terms FROM {fts}"))
        orphans = [
            r[0]
            for r in conn.execute(
                f"SELECT m.doc_id FROM {fts}_docs m LEFT JOIN documents d ON d.id = m.doc_id "
                f"WHERE d.id IS NULL UNION ALL SELECT m.doc_id FROM {fts}_docs m "
                f"LEFT JOIN {fts} f ON f.rowid = m.rowid WHERE f.rowid IS NULL"
            )
        ]
        return docs, terms, orphans

    result, _ts = await gw.store.read(read)
    return result


@pytest.fixture
async def search_store_gw(make_app, tmp_path):
    app = make_app(**SEARCH_STORE_APP)
    async with Gateway.open(app, tmp_path / "d", Settings(commit_interval_ms=100)) as gw:
        yield gw


async def test_a_failing_job_takes_its_search_rows_and_keeps_earlier_held_rows(
    search_store_gw,
) -> None:
    gw = search_store_gw
    results = await _search_one_batch(
        gw,
        _search_insert("plain", {"tag": "held"}),  # held back in PendingWrites
        _search_insert("docs", {"text": "Pump one", "site": "a"}),  # FTS rows held too
        _search_failing("docs", {"text": "ghost", "site": "a"}),
        _search_insert("plain", {"tag": "held again"}),
        _search_insert("docs", {"text": "pump two", "site": "b"}),
    )
    assert isinstance(results[2], SearchBoom)
    docs, terms, orphans = await _search_state(gw)
    assert docs == ["Pump one", "pump two"]
    assert terms == ["pump one", "pump two"]
    assert orphans == []


async def test_search_rows_follow_replace_and_delete_in_one_job(search_store_gw) -> None:
    gw = search_store_gw

    def churn(tx: Transaction) -> None:
        a = tx.insert("docs", {"text": "alpha", "site": "x"}, tx.ts / 1e6)
        b = tx.insert("docs", {"text": "beta", "site": "x"}, tx.ts / 1e6 + 1)
        doc_a = tx.get(a)
        assert doc_a is not None
        tx.replace("docs", doc_a, {"text": "gamma delta", "site": "y"})
        doc_b = tx.get(b)
        assert doc_b is not None
        tx.delete("docs", doc_b)

    await gw.store.write(churn)
    assert await _search_state(gw) == (["gamma delta"], ["gamma delta"], [])


async def test_a_failed_commit_leaves_no_search_rows(make_app, tmp_path) -> None:
    app = make_app(**SEARCH_STORE_APP)
    async with Gateway.open(app, tmp_path / "d") as gw:
        await gw.store.write(_search_insert("docs", {"text": "kept", "site": "a"}))
        # A job that fails after writing (its SAVEPOINT rolls back) leaves only "kept".
        with pytest.raises(SearchBoom):
            await gw.store.write(_search_failing("docs", {"text": "gone", "site": "a"}))
        assert await _search_state(gw) == (["kept"], ["kept"], [])


def test_tokenize_follows_convex() -> None:
    assert tokenize("Pump-FAIL at site_3, ok?") == ["pump", "fail", "at", "site", "3", "ok"]
    assert tokenize("naïve ÄRGER 日本語") == ["naïve", "ärger", "日本語"]
    assert tokenize("ΟΔΟΣ") == ["οδοσ"]  # per character, as Tantivy: no final sigma
    # Tantivy's RemoveLongFilter(32) keeps len < 32 bytes.
    assert tokenize("a" * 31 + " " + "b" * 32) == ["a" * 31]
    assert tokenize("é" * 15 + " " + "é" * 16) == ["é" * 15]  # bytes, not characters
    assert tokenize("") == [] and tokenize(" ,;-_ ") == []
    assert indexed_text("Hello, World") == "hello world"


def test_match_expression_makes_the_last_term_a_prefix() -> None:
    assert match_expression([]) is None
    assert match_expression(["pump"]) == '"pump" *'
    assert match_expression(["pump", "fail", "pump"]) == '"fail" OR "pump" *'
    assert match_expression(["a", "a", "b"]) == '"a" OR "b" *'


def _search_read_then_fail(text: str) -> Callable[[Transaction], str]:
    """Insert, read (the held rows of earlier jobs are written inside this job's
    savepoint), then fail: those earlier rows must go back to be written later."""

    def work(tx: Transaction) -> str:
        doc_id = tx.insert("docs", {"text": text, "site": "a"}, tx.ts / 1e6)
        assert tx.get(doc_id) is not None
        raise SearchBoom

    return work


def _search_nested_fail(kept: str, gone: str) -> Callable[[Transaction], None]:
    def work(tx: Transaction) -> None:
        tx.insert("docs", {"text": kept, "site": "a"}, tx.ts / 1e6)
        try:
            with tx.savepoint():
                tx.insert("docs", {"text": gone, "site": "a"}, tx.ts / 1e6 + 1)
                raise SearchBoom
        except SearchBoom:
            pass

    return work


def _search_patch_first(ids: list[str]) -> Callable[[Transaction], None]:
    def work(tx: Transaction) -> None:
        old = tx.get(ids[0])
        assert old is not None
        tx.replace("docs", old, {"text": "patched while held", "site": "b"})

    return work


async def test_held_search_rows_survive_a_failing_flushed_job_and_nested_rollbacks(
    search_store_gw,
) -> None:
    gw = search_store_gw
    ids: list[str] = []

    def first(tx: Transaction) -> str:
        doc_id = tx.insert("docs", {"text": "held one", "site": "a"}, tx.ts / 1e6)
        ids.append(doc_id)
        return doc_id

    results = await _search_one_batch(
        gw,
        first,  # held back
        _search_insert("docs", {"text": "held two", "site": "b"}),  # held back
        _search_read_then_fail("flushed ghost"),  # writes both held, fails: they return
        _search_nested_fail("nested kept", "nested gone"),
        _search_patch_first(ids),  # a held document changed in a later job
        _search_insert("docs", {"text": "last", "site": "a"}),
    )
    assert isinstance(results[2], SearchBoom)
    assert not any(isinstance(r, BaseException) for i, r in enumerate(results) if i != 2)
    docs, terms, orphans = await _search_state(gw)
    assert docs == ["held two", "last", "nested kept", "patched while held"]
    assert terms == ["held two", "last", "nested kept", "patched while held"]
    assert orphans == []
