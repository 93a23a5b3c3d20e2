"""Full-text search indexes on SQLite FTS5, written in the same transaction as documents.

Each search index is two tables:

- ``fts_<id>``: FTS5, one row per indexed document: column ``terms`` holds the search
  field's terms (``search_text``), then one ``UNINDEXED`` column per filter field with
  that field's order-preserving key (``encode_index_key``), so ``.eq`` is byte equality
  with Convex's value equality, ``undefined`` (missing) included.
- ``fts_<id>_docs``: which document each FTS5 rowid is (FTS5 rowids are integers,
  document ids are strings) and its ``_creationTime``, the tiebreak of equal scores.

A document is in the index when its search field is a string (Convex indexes nothing
else). Every statement here runs on the caller's connection inside the writer's
SAVEPOINT, so a failed mutation leaves the index exactly as it found it.

Reactivity: a search index has a read-set id (``SearchIndexInfo.index_id``) and one key,
``CHANGE_KEY``, recorded whenever a write changes what FTS5 ranks: a document entering
or leaving the index, or its terms or filter values changing. A search reads that key
(BM25 scores hang on index-wide statistics, so no narrower range is sound); the
documents it reads are point reads of their own (``gateway/runtime/search_run.py``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from gateway.store.catalog import SEARCH_ID_BASE, SearchIndexInfo
from gateway.store.fields import value_at
from gateway.store.search_text import indexed_text
from gateway.values import encode_index_key, loads

Document = dict[str, Any]


def _fts(ix: SearchIndexInfo) -> str:
    return f"fts_{ix.index_id}"


def is_indexed(ix: SearchIndexInfo, doc: Document | None) -> bool:
    """Whether ``doc`` has a row in ``ix`` (its search field is a string)."""
    return doc is not None and isinstance(value_at(doc, ix.paths[0]), str)


CHANGE_KEY = b""


def same_row(ix: SearchIndexInfo, old: Document, new: Document) -> bool:
    """Whether two versions of an indexed document are the same to FTS5 (terms and
    filter values): then neither the index nor any ranking changes."""
    return _row(ix, old) == _row(ix, new)


def _row(ix: SearchIndexInfo, doc: Document) -> tuple[Any, ...]:
    text = value_at(doc, ix.paths[0])
    keys = [encode_index_key([value_at(doc, path)]) for path in ix.paths[1:]]
    return (indexed_text(text), *keys)


# --- layout ------------------------------------------------------------------------


def create(
    conn: sqlite3.Connection, table_number: int, name: str, search_field: str, filters: list[str]
) -> SearchIndexInfo:
    """Declare a search index and create its (empty) tables."""
    row = conn.execute("SELECT COALESCE(MAX(index_id), ?) + 1 FROM search_defs", (SEARCH_ID_BASE,))
    index_id = int(row.fetchone()[0])
    conn.execute(
        "INSERT INTO search_defs (index_id, tbl, name, search_field, filter_fields) "
        "VALUES (?, ?, ?, ?, ?)",
        (index_id, table_number, name, search_field, json.dumps(filters)),
    )
    ix = SearchIndexInfo(index_id, table_number, name, search_field, tuple(filters))
    columns = "".join(f", f{i} UNINDEXED" for i in range(len(filters)))
    # prefix='1 2': one- and two-character prefixes (the first keystrokes of a
    # typeahead) get their own index; without it "a" over 100k documents reads every
    # term starting with "a" (3.4x slower on the bench corpus), for 20% more build time.
    conn.execute(
        f"CREATE VIRTUAL TABLE {_fts(ix)} USING fts5(terms{columns}, tokenize='ascii', "
        "prefix='1 2')"
    )
    conn.execute(
        f"CREATE TABLE {_fts(ix)}_docs (rowid INTEGER PRIMARY KEY, "
        "doc_id TEXT NOT NULL UNIQUE, ctime REAL NOT NULL)"
    )
    return ix


def drop(conn: sqlite3.Connection, ix: SearchIndexInfo) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {_fts(ix)}")
    conn.execute(f"DROP TABLE IF EXISTS {_fts(ix)}_docs")
    conn.execute("DELETE FROM search_defs WHERE index_id = ?", (ix.index_id,))


def backfill(conn: sqlite3.Connection, ix: SearchIndexInfo, bodies: Iterable[str]) -> int:
    """Index existing documents (their JSON bodies); returns how many were indexed."""
    count = 0
    batch: list[Document] = []
    for body in bodies:
        doc = loads(body)
        if is_indexed(ix, doc):
            batch.append(doc)
        if len(batch) >= 1000:
            count += _add_many(conn, ix, batch)
            batch = []
    return count + _add_many(conn, ix, batch)


# --- writes ------------------------------------------------------------------------


def add(conn: sqlite3.Connection, ix: SearchIndexInfo, doc: Document) -> None:
    """Index ``doc`` if its search field is a string."""
    if is_indexed(ix, doc):
        _add_many(conn, ix, [doc])


def _add_many(conn: sqlite3.Connection, ix: SearchIndexInfo, docs: list[Document]) -> int:
    if not docs:
        return 0
    fts = _fts(ix)
    conn.executemany(
        f"INSERT INTO {fts}_docs (doc_id, ctime) VALUES (?, ?)",
        ((d["_id"], d["_creationTime"]) for d in docs),
    )
    columns = "".join(f", f{i}" for i in range(len(ix.filter_fields)))
    holes = ", ?" * len(ix.filter_fields)
    # The rowid comes from the map row just written (one statement per batch, no
    # round trip per document for lastrowid).
    conn.executemany(
        f"INSERT INTO {fts} (rowid, terms{columns}) "
        f"VALUES ((SELECT rowid FROM {fts}_docs WHERE doc_id = ?), ?{holes})",
        ((d["_id"], *_row(ix, d)) for d in docs),
    )
    return len(docs)


def follow(
    conn: sqlite3.Connection,
    indexes: Iterable[SearchIndexInfo],
    old: Document | None,
    new: Document | None,
) -> list[tuple[int, bytes]]:
    """Bring ``indexes`` in step with one document write; the read-set keys it changed.

    A change that leaves the document's terms and filter values as they were touches
    neither FTS5 nor the change key: searches that read the document hold a point read
    of it, which the write's ``by_id`` key reaches.
    """
    changed = []
    for ix in indexes:
        was, now = is_indexed(ix, old), is_indexed(ix, new)
        if was and now and old is not None and new is not None and same_row(ix, old, new):
            continue
        if was and old is not None:
            remove(conn, ix, old["_id"])
        if now and new is not None:
            add(conn, ix, new)
        if was or now:
            changed.append((ix.index_id, CHANGE_KEY))
    return changed


def add_held(conn: sqlite3.Connection, held: list[tuple[SearchIndexInfo, Document]]) -> None:
    """Index new documents held back by ``PendingWrites``: one statement pair per index."""
    by_index: dict[int, tuple[SearchIndexInfo, list[Document]]] = {}
    for ix, doc in held:
        by_index.setdefault(ix.index_id, (ix, []))[1].append(doc)
    for ix, docs in by_index.values():
        _add_many(conn, ix, docs)


def remove(conn: sqlite3.Connection, ix: SearchIndexInfo, doc_id: str) -> None:
    """Take a document out of ``ix`` (nothing if it was not in)."""
    fts = _fts(ix)
    row = conn.execute(f"SELECT rowid FROM {fts}_docs WHERE doc_id = ?", (doc_id,)).fetchone()
    if row is not None:
        conn.execute(f"DELETE FROM {fts} WHERE rowid = ?", row)
        conn.execute(f"DELETE FROM {fts}_docs WHERE rowid = ?", row)


# --- reads -------------------------------------------------------------------------


def search_sql(ix: SearchIndexInfo, filter_fields: Sequence[str]) -> str:
    """The ranking statement (parameters: MATCH, one key per filter, LIMIT): document ids,
    best first. It touches only the FTS5 table and the rowid map."""
    fts = _fts(ix)
    where = "".join(f" AND {fts}.f{ix.filter_fields.index(f)} = ?" for f in filter_fields)
    return (
        f"SELECT m.doc_id FROM {fts} JOIN {fts}_docs m ON m.rowid = {fts}.rowid "
        f"WHERE {fts} MATCH ?{where} ORDER BY bm25({fts}), m.ctime DESC LIMIT ?"
    )


def search(
    conn: sqlite3.Connection,
    ix: SearchIndexInfo,
    match: str,
    filters: dict[str, bytes],
    limit: int,
) -> Iterator[str]:
    """Bodies of the best ``limit`` matches: BM25 order, equal scores newest first.

    ``filters`` maps a filter field to the ``encode_index_key([value])`` it must equal.
    The ranking is read whole (ids only: cheap), bodies one by one as the caller asks
    for them: ``take(10)`` of a term with thousands of matches reads ten bodies, not
    ``limit``. One transaction, so the ids and bodies are of one snapshot.
    """
    ranked = conn.execute(search_sql(ix, list(filters)), (match, *filters.values(), limit))
    for (doc_id,) in ranked.fetchall():
        row = conn.execute("SELECT body FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is not None:  # always, unless the map and documents disagree
            yield row[0]
