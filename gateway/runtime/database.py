"""``ctx.db``: document reads and writes of one function execution.

All methods are ``async def`` that never suspend: they run synchronously on the
database thread that drives the handler (see ``driver``), so a function's reads cost
no hop to another thread.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ConvexValueError, FunctionError, InvalidIdError, QueryError
from gateway.runtime.cursors import CursorCodec
from gateway.runtime.limits import TransactionLimits
from gateway.runtime.query import Query
from gateway.runtime.readset import ReadSet
from gateway.store import BY_ID, Transaction
from gateway.store.transaction import table_existence_key
from gateway.values import (
    DOCUMENT_MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    UNSET,
    check_document_fields,
    convex_size,
    decode_id,
    encode_id,
    encode_index_key,
    to_convex,
)

Document = dict[str, Any]
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_GOOD_TABLE_NAMES: set[str] = set()  # names that passed, so the next call skips the regex
SYSTEM_TABLES = (
    "_storage",
    "_scheduled_functions",
    "_dead_letters",
    "_cron_jobs",
    "_cron_job_logs",
    "_replication_marks",  # the hub's tables (gateway.replication.hub_tables)
    "_replication_provenance",
    "_replication_dead_letters",
    "_replication_changes",  # the hub's downlink log (gateway.replication.hub_changes)
)
# `_id` (3 + 1 + 2 + ~32) and `_creationTime` (13 + 1 + 9) as Convex sizes them.
_SYSTEM_FIELDS_SIZE = 38 + 23


@dataclass
class Execution:
    """Per top-level call state shared by ``ctx.db`` and nested calls."""

    tx: Transaction
    cursors: CursorCodec
    schema: Any = None
    limits: TransactionLimits = field(default_factory=TransactionLimits)
    read_set: ReadSet = field(default_factory=ReadSet)
    paginated: bool = False
    # Reactive pagination (convex-semantics 3.4): the end cursor a rerun must stop at
    # (from the subscription's journal), and the end cursor this run's page reached.
    pinned_end: str | None = None
    page_end: str | None = None
    down_writable: bool = True  # see ``Runtime.down_writable``
    _next_creation_ms: float | None = None

    def creation_time(self) -> float:
        """A strictly increasing ``_creationTime`` per insert (ms, float)."""
        if self._next_creation_ms is None:
            self._next_creation_ms = self.tx.ts / 1_000_000
        value = self._next_creation_ms
        self._next_creation_ms = math.nextafter(value, math.inf)
        return value

    def declares_index(self, table: str, index: str) -> bool:
        tables = getattr(self.schema, "tables", None) or {}
        definition = tables.get(table)
        return definition is not None and index in getattr(definition, "indexes", {})

    def table_name(self, table_number: int) -> str | None:
        """IdResolver for ``v.id`` validators."""
        return self.tx.catalog.table_name(table_number)


class DatabaseReader:
    """``ctx.db`` of a query: reads only."""

    def __init__(self, ex: Execution) -> None:
        self._ex = ex

    @property
    def system(self) -> SystemReader:
        return SystemReader(self._ex)

    async def get(self, table_or_id: str, doc_id: str | None = None) -> Document | None:
        """``get(table, id)`` or ``get(id)``: the document, or None."""
        table, doc_id = self._table_and_id(table_or_id, doc_id, "get")
        return self._get(table, doc_id)

    def query(self, table: str) -> Query:
        _check_table_name(table, reading=True)
        return Query(self._ex, table)

    def normalize_id(self, table: str, candidate: str) -> str | None:
        """``candidate`` if it is an id of ``table``, else None."""
        try:
            number, internal = decode_id(candidate)
        except (InvalidIdError, TypeError):
            return None
        if self._ex.tx.catalog.table_name(number) != table:
            return None
        return encode_id(number, internal)

    def _table_and_id(
        self, table_or_id: str, doc_id: str | None, op: str
    ) -> tuple[str | None, str]:
        if doc_id is None:
            return None, _require_id_string(table_or_id, op)
        return table_or_id, _require_id_string(doc_id, op)

    def _get(self, table: str | None, doc_id: str) -> Document | None:
        ex = self._ex
        try:
            number, _ = decode_id(doc_id)
        except InvalidIdError as exc:
            raise QueryError(f"Invalid argument `id` for `db.get`: {exc}") from exc
        actual = ex.tx.catalog.table_name(number)
        if table is not None and actual is not None and actual != table:
            raise QueryError(
                f'Invalid argument `id`: expected to be an Id<"{table}">, '
                f'got Id<"{actual}"> instead.'
            )
        ex.limits.read_range()
        info = ex.tx.catalog.by_number.get(number)
        if info is None:
            ex.read_set.point(*table_existence_key(table or f"#{number}"))
            return None
        ex.read_set.point(info.indexes[BY_ID].index_id, encode_index_key([doc_id]))
        doc = ex.tx.get(doc_id)
        if doc is not None:
            ex.limits.read_document(convex_size(doc))
        return doc


class DatabaseWriter(DatabaseReader):
    """``ctx.db`` of a mutation: reads, plus insert / patch / replace / delete."""

    async def insert(self, table: str, value: Document) -> str:
        """Insert a document; returns its new ``_id``."""
        _check_table_name(table, reading=False)
        self._refuse_down(table)
        if isinstance(value, dict):
            for name in ("_id", "_creationTime"):
                if name in value:
                    raise ConvexValueError(
                        f"insert into {table!r}: `{name}` is a system field set by the database"
                    )
        ex = self._ex
        flat = ex.schema.flat_check(table) if ex.schema is not None else None
        checked = flat(value, ex) if flat is not None else None
        if checked is not None and checked[1] + _SYSTEM_FIELDS_SIZE <= MAX_DOCUMENT_BYTES:
            body, size = checked[0], checked[1] + _SYSTEM_FIELDS_SIZE
        else:
            body = self._prepare(table, value, "insert")
            size = self._checked_size(table, body)
        ex.limits.write_document(size)
        return ex.tx.insert(table, body, ex.creation_time())

    async def patch(self, *args: Any) -> None:
        """``patch(table, id, fields)``: shallow merge; ``UNSET`` removes a field."""
        table, doc_id, fields = self._write_args(args, "patch")
        old = self._existing(table, doc_id, "Update")
        if not isinstance(fields, dict):
            raise ConvexValueError("patch() takes an object of fields to change")
        merged = {k: v for k, v in old.items() if k not in ("_id", "_creationTime")}
        for key, value in fields.items():
            if key in ("_id", "_creationTime"):
                _check_system_field_unchanged(old, key, value)
                continue
            if value is UNSET:
                merged.pop(key, None)
            else:
                merged[key] = value
        self._store(old, merged, "patch")

    async def replace(self, *args: Any) -> None:
        """``replace(table, id, document)``: the whole body, system fields kept."""
        table, doc_id, value = self._write_args(args, "replace")
        old = self._existing(table, doc_id, "Replace")
        if not isinstance(value, dict):
            raise ConvexValueError("replace() takes a whole document (an object)")
        body = {}
        for key, item in value.items():
            if key in ("_id", "_creationTime"):
                _check_system_field_unchanged(old, key, item)
            else:
                body[key] = item
        self._store(old, body, "replace")

    async def delete(self, *args: Any) -> None:
        """``delete(table, id)`` or ``delete(id)``."""
        if len(args) == 1:
            table, doc_id = None, _require_id_string(args[0], "delete")
        elif len(args) == 2:
            table, doc_id = args[0], _require_id_string(args[1], "delete")
        else:
            raise TypeError("delete() takes (table, id)")
        old = self._existing(table, doc_id, "Delete")
        ex = self._ex
        self._refuse_down(self._table_of(old))
        ex.limits.write_document(0)
        ex.tx.delete(self._table_of(old), old)

    # --- internals --------------------------------------------------------------------

    def _write_args(self, args: tuple[Any, ...], op: str) -> tuple[str | None, str, Any]:
        if len(args) == 3:
            return args[0], _require_id_string(args[1], op), args[2]
        if len(args) == 2:
            return None, _require_id_string(args[0], op), args[1]
        raise TypeError(f"{op}() takes (table, id, value)")

    def _existing(self, table: str | None, doc_id: str, verb: str) -> Document:
        doc = self._get(table, doc_id)
        if doc is None:
            raise FunctionError(f"NonexistentDocument: {verb} on nonexistent document ID {doc_id}")
        return doc

    def _table_of(self, doc: Document) -> str:
        number, _ = decode_id(doc["_id"])
        name = self._ex.tx.catalog.table_name(number)
        assert name is not None
        return name

    def _refuse_down(self, table: str) -> None:
        ex = self._ex
        if not ex.down_writable and ex.tx.catalog.replication.get(table) == "down":
            raise FunctionError(
                f'table "{table}" is replicated down from the upstream (.replicate("down") in '
                "convex/schema.py): the upstream owns it, so local writes are refused; write "
                'it on the hub, or declare it .replicate("up") or local'
            )

    def _store(self, old: Document, body: Document, op: str) -> None:
        table = self._table_of(old)
        self._refuse_down(table)
        body = self._prepare(table, body, op)
        self._ex.limits.write_document(self._checked_size(table, body))
        self._ex.tx.replace(table, old, body)

    def _prepare(self, table: str, value: Any, op: str) -> Document:
        """Schema-validate (which also turns a plain int into Int64 where the schema says
        so), then normalise into a Convex document."""
        if not isinstance(value, dict):
            raise ConvexValueError(
                f"{op} into {table!r} takes an object, got {type(value).__name__}"
            )
        schema = self._ex.schema
        if schema is not None:
            value = schema.validate_document(table, value, self._ex)
        body = to_convex(value, what=f"{op} into {table!r}", max_depth=DOCUMENT_MAX_DEPTH)
        assert isinstance(body, dict)
        check_document_fields(body)
        return body

    def _checked_size(self, table: str, body: Document) -> int:
        """The stored document's size (system fields included); refused over 1 MiB."""
        size = convex_size(body) + _SYSTEM_FIELDS_SIZE
        if size > MAX_DOCUMENT_BYTES:
            raise ConvexValueError(
                f"a document in {table!r} would be {size} bytes; the limit is "
                f"{MAX_DOCUMENT_BYTES} bytes (1 MiB): store large data in several documents"
            )
        return size


class SystemReader:
    """``ctx.db.system``: read-only access to the system tables."""

    def __init__(self, ex: Execution) -> None:
        self._ex = ex

    async def get(self, table_or_id: str, doc_id: str | None = None) -> Document | None:
        """A system document (``_scheduled_functions``, ``_storage``) by id, or None."""
        reader = DatabaseReader(self._ex)
        table, doc_id = reader._table_and_id(table_or_id, doc_id, "get")  # noqa: SLF001
        if table is not None and table not in SYSTEM_TABLES:
            raise QueryError(f"SystemTableError: {table} is not a system table; use ctx.db.get")
        return reader._get(table, doc_id)  # noqa: SLF001

    def query(self, table: str) -> Query:
        if table not in SYSTEM_TABLES:
            raise QueryError(
                f"SystemTableError: db.system.query() reads system tables {SYSTEM_TABLES}; "
                f"use db.query({table!r}) for user tables"
            )
        return Query(self._ex, table)


def _check_table_name(table: Any, *, reading: bool) -> None:
    if type(table) is str and table in _GOOD_TABLE_NAMES:  # the common case: no regex
        return
    if not isinstance(table, str):
        raise QueryError(f"a table name must be a string, got {type(table).__name__}")
    if table.startswith("_"):
        if reading:
            raise QueryError(
                f"SystemTableError: {table} is a system table; read it with ctx.db.system"
            )
        raise QueryError(
            f"System tables (prefixed with `_`) are read-only: cannot write to {table}"
        )
    if not _TABLE_NAME.fullmatch(table):
        raise QueryError(
            f"invalid table name {table!r}: use letters, digits and _, starting with a letter, "
            "at most 64 characters"
        )
    if type(table) is str:
        if len(_GOOD_TABLE_NAMES) >= 1024:
            _GOOD_TABLE_NAMES.clear()
        _GOOD_TABLE_NAMES.add(table)


def _require_id_string(value: Any, op: str) -> str:
    if not isinstance(value, str):
        raise QueryError(f"db.{op}() takes a document id string, got {type(value).__name__}")
    return value


def _check_system_field_unchanged(old: Document, key: str, value: Any) -> None:
    if value != old[key]:
        raise ConvexValueError(f"`{key}` is a system field and cannot be changed")
