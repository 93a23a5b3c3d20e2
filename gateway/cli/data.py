"""``outpost data [TABLE]``: tables with document counts, or a table's documents.

Reads the store file directly, read-only (``mode=ro``, ``query_only``): WAL readers
never block the running gateway's writer, it works whether or not the gateway runs,
and it needs no admin route. The price is that it only sees a gateway on this box;
documents print as stored (convex-encoded JSON, one per line), in creation order.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from gateway.cli.common import CommandError, settings_for
from gateway.store.catalog import BY_CREATION_TIME
from gateway.store.layout import DB_FILENAME, connect
from gateway.values import encode_index_key, loads


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    data = commands.add_parser(
        "data",
        parents=[common],
        help="list tables, or print a table's documents",
        description="Without TABLE: tables and document counts. With TABLE: JSON lines.",
    )
    data.add_argument("table", metavar="TABLE", nargs="?")
    data.add_argument("--limit", type=int, default=100, help="documents per page (100)")
    data.add_argument("--order", choices=("asc", "desc"), default="desc", help="by creation")
    data.add_argument("--after", metavar="ID", help="continue after this document")
    data.add_argument("--all", action="store_true", help="list system tables (_storage...)")
    data.add_argument("--app", type=Path, default=Path("."), help="app folder (default .)")
    data.set_defaults(handler=show_data)


def show_data(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app)
    path = Path(settings.data_dir) / DB_FILENAME
    if not path.is_file():
        raise CommandError(f"no store at {path}; has `outpost serve` run with this --data-dir?")
    conn = connect(path, readonly=True)
    try:
        if args.table is None:
            _print_tables(conn, args.all)
        else:
            _print_documents(conn, args)
    except sqlite3.Error as exc:
        raise CommandError(f"cannot read {path} ({exc})") from None
    finally:
        conn.close()
    return 0


def _tables(conn: sqlite3.Connection) -> dict[str, int]:
    """Table name -> index id of its ``by_creation_time`` index."""
    rows = conn.execute(
        "SELECT t.name, i.index_id FROM tables t JOIN index_defs i ON i.tbl = t.number "
        "WHERE i.name = ? ORDER BY t.name",
        (BY_CREATION_TIME,),
    )
    return dict(rows.fetchall())


def _print_tables(conn: sqlite3.Connection, include_system: bool) -> None:
    tables = {n: i for n, i in _tables(conn).items() if include_system or not n.startswith("_")}
    if not tables:
        print("no tables yet", file=sys.stderr)
    width = max((len(name) for name in tables), default=0)
    for name, index_id in tables.items():
        # Counting index rows reads the index B-tree only, never a document body.
        (count,) = conn.execute(
            "SELECT count(*) FROM indexes WHERE index_id = ?", (index_id,)
        ).fetchone()
        print(f"{name:{width}}  {count}")


def _print_documents(conn: sqlite3.Connection, args: argparse.Namespace) -> None:
    tables = _tables(conn)
    if args.table not in tables:
        known = ", ".join(n for n in tables if not n.startswith("_")) or "none yet"
        raise CommandError(f"no table {args.table!r} (tables: {known})")
    if args.limit < 1:
        raise CommandError(f"--limit must be at least 1, got {args.limit}")
    index_id = tables[args.table]
    after = _key_of(conn, args.table, args.after) if args.after else None
    op, order = (">", "ASC") if args.order == "asc" else ("<", "DESC")
    bound = f"AND i.key {op} ?" if after is not None else ""
    rows = conn.execute(
        f"SELECT d.id, d.body FROM indexes i JOIN documents d ON d.id = i.doc_id "
        f"WHERE i.index_id = ? {bound} ORDER BY i.key {order} LIMIT ?",
        (index_id, *([after] if after is not None else []), args.limit + 1),
    ).fetchall()
    for _, body in rows[: args.limit]:
        print(body)
    if len(rows) > args.limit:
        again = f"outpost data {args.table} --after {rows[args.limit - 1][0]}"
        again += f" --limit {args.limit}" if args.limit != 100 else ""
        again += " --order asc" if args.order == "asc" else ""
        print(f"more: {again}", file=sys.stderr)


def _key_of(conn: sqlite3.Connection, table: str, doc_id: str) -> bytes:
    row = conn.execute(
        "SELECT d.body FROM documents d JOIN tables t ON t.number = d.tbl "
        "WHERE d.id = ? AND t.name = ?",
        (doc_id, table),
    ).fetchone()
    if row is None:
        raise CommandError(f"no document {doc_id!r} in {table!r} (--after takes an _id)")
    doc = loads(row[0])
    assert isinstance(doc, dict)
    return encode_index_key((doc["_creationTime"], doc["_id"]))
