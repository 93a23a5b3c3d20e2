"""The hub's push mutation, ``_system/replication:push``: batches from edge gateways.

Built exactly to ``gateway.replication.batch``; a hub (``hub = true``) installs it into
its runtime at start (``install_hub``), so it is found only there, and as a *public*
system function: the edge has no admin key, only its gateway key, which the handler
checks first against the registry (``credentials.KeyRing``, reread when it changes).
Beside it, the admin-only ``_system/replication:gateways`` (``hub_status``).

The push takes its args as Convex JSON (``RegisteredFunction.json_args``): a batch is a
thousand documents, and the generic gates (decode, normalise, validate the args: three
walks over every value) cost more than applying them. The handler checks the batch's
fields itself, and each document once as it applies it: one that is already what the
full check would make of it (``Schema.document_check``: a flat object of plain scalars,
the common sensor reading) is stored as sent; any other is converted and validated in
full.

One batch is one mutation, so one transaction on the serial writer: the mark, every
applied change, provenance rows and dead letters commit together or not at all. A
change is applied as the edge made it: an insert or update stores the edge's whole
document under the edge's ``_id`` and ``_creationTime`` (an upsert: an insert whose id
is already there replaces it, an update of a missing document inserts it, so a
re-cut or re-sent batch converges); a delete removes it if present.

What the hub cannot apply goes to ``_replication_dead_letters`` and the batch goes on:
a document its schema refuses, a system table, an id that is not one, or an id whose
table number belongs to another table here (ids carry their table's number, so the hub
needs the same numbers as the edge: the same schema gives them, new tables being
numbered in name order). A table the hub does not have is created, schemaless, with the
edge's number when that number is free, so data is never lost for want of a deploy.

Budget: a batch is up to ``MAX_BATCH_CHANGES`` changes and ``MAX_BATCH_BYTES``; the
default mutation budget (250 ms) is sized for app mutations, not for 1,000 upserts of
4 MiB on a Pi. The push runs with its own ``PUSH_BUDGET_S``: long enough for a full
batch on slow storage, short enough that the writer is never held for long.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from gateway.errors import (
    ArgumentValidationError,
    ConvexError,
    ConvexValueError,
    FunctionError,
    SchemaEnforcementError,
)
from gateway.replication import hub_tables
from gateway.replication.batch import (
    GAP_CODE,
    MAX_BATCH_CHANGES,
    PUSH_PATH,
    UNAUTHORIZED_CODE,
)
from gateway.replication.credentials import KeyRing
from gateway.replication.hub_changes import changes_function
from gateway.replication.hub_status import provenance_function, status_function
from gateway.runtime.database import Execution
from gateway.runtime.functions import RegisteredFunction
from gateway.runtime.runtime import Runtime
from gateway.schema import v
from gateway.schema.args import as_args_validator, validate_args
from gateway.schema.definition import DocumentCheck
from gateway.schema.flat import plain_document
from gateway.store import Transaction
from gateway.values import (
    DOCUMENT_MAX_DEPTH,
    check_document_fields,
    decode_id,
    decode_json,
    to_convex,
)

PUSH_BUDGET_S: Final = 2.0
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_SYSTEM_FIELDS = ("_id", "_creationTime")

_PUSH_ARGS: Final = {
    "gateway": v.string(),
    "key": v.string(),
    "epoch": v.float64(),
    "first": v.float64(),
    "last": v.float64(),
    "clockTrusted": v.boolean(),
    "schema": v.string(),
    "changes": v.array(v.any()),
    "newest": v.optional(v.float64()),  # optional: edges before it do not send it
}
_ENVELOPE: Final = as_args_validator({k: x for k, x in _PUSH_ARGS.items() if k != "changes"})


class Rejected(Exception):
    """A change the hub cannot apply; its message is the dead letter's reason."""


def push_function(keys: KeyRing) -> RegisteredFunction:
    """The push mutation, checking callers against ``keys``."""

    async def push(ctx: Any, args: dict[str, Any]) -> dict[str, float]:
        batch = _envelope(args)
        if not keys.verify(batch["gateway"], batch["key"]):
            raise ConvexError({"code": UNAUTHORIZED_CODE})
        ex: Execution = ctx._ex  # noqa: SLF001 - the hub writes below ctx.db (edge ids)
        return apply_batch(ex, batch, ctx.now)

    return RegisteredFunction(
        "mutation",
        "public",
        push,
        _PUSH_ARGS,
        path=PUSH_PATH,
        budget_s=PUSH_BUDGET_S,
        json_args=True,
    )


def _envelope(args: dict[str, Any]) -> dict[str, Any]:
    """The batch's fields as values, its ``changes`` still JSON (each is checked as it is
    applied). A wrong field gets the message the args validator gives."""
    changes = args.get("changes")
    if type(changes) is not list:  # the full check words the error
        validate_args(_PUSH_ARGS, to_convex(decode_json(dict(args)), what="arguments"))
        raise ArgumentValidationError("ArgumentValidationError: `changes` must be an array")
    rest = {k: x for k, x in args.items() if k != "changes"}
    fields: dict[str, Any] = validate_args(_ENVELOPE, to_convex(decode_json(rest)))
    fields["changes"] = changes
    return fields


def install_hub(runtime: Runtime, keys: KeyRing) -> None:
    """Make ``runtime`` answer the push, the downlink's changes and the gateways' status
    (tables must exist)."""
    runtime.install(push_function(keys))
    runtime.install(changes_function(keys))
    runtime.install(status_function(keys))
    runtime.install(provenance_function())


def apply_batch(ex: Execution, args: dict[str, Any], now_ms: float) -> dict[str, float]:
    """The batch rules of ``gateway.replication.batch``, in the caller's transaction."""
    tx = ex.tx
    first, last, changes = _checked_range(args)
    gateway, epoch = args["gateway"], args["epoch"]
    mark = hub_tables.find_mark(tx, gateway, epoch)
    start = first
    if mark is not None:
        applied = int(mark["applied"])
        if last <= applied:  # seen before: answered, nothing applied again
            return {"applied": float(applied)}
        if first > applied + 1:
            raise ConvexError({"code": GAP_CODE, "applied": float(applied)})
        start = applied + 1
    origin = {
        "gateway": gateway,
        "epoch": epoch,
        "clockTrusted": args["clockTrusted"],  # per row: offline-stamped data stays visible
        "receivedMs": now_ms,
    }
    todo = changes[start - first :]
    found = tx.get_many([c["id"] for c in todo if isinstance(c.get("id"), str)])
    batch = _BatchState(ex, found, origin)
    _apply_all(batch, todo)
    batch.insert_new()
    batch.provenance.write(tx)
    if batch.dead_letters:
        hub_tables.cap_dead_letters(tx)
    fields = {
        "gateway": gateway,
        "epoch": epoch,
        "applied": float(last),
        "lastSeenMs": now_ms,
        "clockTrusted": args["clockTrusted"],
        "schema": args["schema"],
    }
    if "newest" in args:  # the edge's highest seq when it cut the batch
        fields["newest"] = args["newest"]
    hub_tables.save_mark(tx, mark, fields, now_ms)
    return {"applied": float(last)}


def _checked_range(args: dict[str, Any]) -> tuple[int, int, list[dict[str, Any]]]:
    """first, last and the changes, which must be exactly the seqs first..last."""
    first, last, changes = args["first"], args["last"], args["changes"]
    whole = all(math.isfinite(x) and x == int(x) for x in (first, last))
    if not whole or first < 0 or last < first:
        raise FunctionError(f"a batch's first..last must be whole seqs, got {first}..{last}")
    if len(changes) > MAX_BATCH_CHANGES:  # the push's budget is sized for this many
        raise FunctionError(f"a batch carries at most {MAX_BATCH_CHANGES} changes")
    if len(changes) != int(last - first) + 1:
        raise FunctionError(f"a batch {first}..{last} must carry {int(last - first) + 1} changes")
    for offset, change in enumerate(changes):
        if not isinstance(change, dict) or change.get("seq") != first + offset:
            raise FunctionError(f"change {offset} of the batch is not seq {first + offset}")
    return int(first), int(last), changes


class _BatchState:
    """What applying one batch keeps between its changes: the documents it touches as
    they stand now (read in one statement before the first change, then kept current),
    its provenance writes, and whether anything was dead-lettered."""

    def __init__(
        self, ex: Execution, found: dict[str, dict[str, Any]], origin: dict[str, Any]
    ) -> None:
        self.ex = ex
        self.origin = origin
        self.current: dict[str, dict[str, Any] | None] = dict(found)
        self.provenance = hub_tables.ProvenanceWrites(origin)
        self.dead_letters = False
        self.numbers: dict[str, int] = {}  # tables checked or created, by name
        self.checks: dict[str, DocumentCheck | None] = {}  # by table, once looked up
        # New documents, stored a table at a time (``insert_existing_many``) before any
        # other write of the batch and at its end: a later change may update them.
        self.new_docs: dict[str, list[dict[str, Any]]] = {}

    def insert(self, table: str, doc: dict[str, Any]) -> None:
        new = self.new_docs.get(table)
        if new is None:
            self.new_docs[table] = [doc]
        else:
            new.append(doc)

    def insert_new(self) -> None:
        """Store the new documents kept so far (before a write that may touch them)."""
        for table, docs in self.new_docs.items():
            self.ex.tx.insert_existing_many(table, docs)
        self.new_docs.clear()

    def document_check(self, table: str) -> DocumentCheck | None:
        if table not in self.checks:
            schema = self.ex.schema
            self.checks[table] = plain_document if schema is None else schema.document_check(table)
        return self.checks[table]


def _apply_all(batch: _BatchState, todo: list[Any]) -> None:
    """``_apply`` each change of ``todo`` in order, taking the change nearly every batch
    is made of in this loop: an insert of a new document into a table the batch has
    already seen, that the table's flat check vouches for (``DocumentCheck``). It does
    what ``_apply`` would, without its five calls a change (5% of the hub's time per
    document); anything else goes to ``_apply``. A test holds the two to the same
    stores, provenance and dead letters on random batches."""
    ex, numbers, current = batch.ex, batch.numbers, batch.current
    checks, new_docs, provenance = batch.checks, batch.new_docs, batch.provenance
    table: Any
    doc: Any
    for change in todo:
        if type(change) is dict and change.get("op") == "insert":
            table, doc_id, doc = change.get("table"), change.get("id"), change.get("doc")
            known = numbers.get(table)
            check = checks.get(table)
            if (
                known is not None
                and check is not None
                and type(doc_id) is str
                and current.get(doc_id) is None
                and _number_of(doc_id) == known
                and check(doc, ex)
                and doc["_id"] == doc_id
            ):
                docs = new_docs.get(table)
                if docs is None:
                    new_docs[table] = [doc]
                else:
                    docs.append(doc)
                if provenance.deleted:
                    provenance.deleted.discard(doc_id)
                provenance.created[doc_id] = hub_tables.origin_row(table, doc_id, change)
                current[doc_id] = doc
                continue
        _apply(batch, change)


def _number_of(doc_id: str) -> int | None:
    try:
        return decode_id(doc_id)[0]
    except ConvexValueError:
        return None


def _apply(batch: _BatchState, change: dict[str, Any]) -> None:
    """Apply one change, or dead-letter it with the reason (all checks before writes)."""
    op = change.get("op")
    if op == "skip":
        return
    try:
        table, doc_id = _target(batch, change)
        if op == "delete":
            _delete(batch, table, doc_id)
        elif op == "insert" or op == "update":
            _upsert(batch, table, doc_id, change)
        else:
            raise Rejected(f"unknown op {op!r}")
    except Rejected as exc:
        hub_tables.dead_letter(batch.ex.tx, change, batch.origin, str(exc))
        batch.dead_letters = True


def _target(batch: _BatchState, change: dict[str, Any]) -> tuple[str, str]:
    """The change's table (created if new and its number is free) and document id."""
    table, doc_id = change.get("table"), change.get("id")
    if type(table) is not str:
        raise Rejected(f"{table!r} is not a user table a hub accepts")
    known = batch.numbers.get(table)  # then its name was checked too
    if known is None and not _TABLE_NAME.fullmatch(table):
        raise Rejected(f"{table!r} is not a user table a hub accepts")
    if type(doc_id) is not str:
        raise Rejected("the change has no document id")
    try:
        number, _ = decode_id(doc_id)
    except ConvexValueError as exc:
        raise Rejected(f"{doc_id!r} is not a document id ({exc})") from None
    if known != number:
        batch.numbers[table] = _table_number(batch.ex.tx, table, number)
    return table, doc_id


def _table_number(tx: Transaction, table: str, number: int) -> int:
    """``number``, once ``table`` has it here (created with it if missing and free)."""
    info = tx.catalog.table(table)
    if info is None:
        taken = tx.catalog.table_name(number)
        if taken is not None:
            raise Rejected(
                f"table {table!r} is missing here and its number {number} is {taken!r}'s: "
                "deploy the edge's schema to the hub"
            )
        tx.create_table(table, number)
    elif info.number != number:
        raise Rejected(
            f"the id's table number {number} is not {table!r}'s here ({info.number}): "
            "the hub and the edge must have the same table numbers (the same schema)"
        )
    return number


def _upsert(batch: _BatchState, table: str, doc_id: str, change: dict[str, Any]) -> None:
    ex = batch.ex
    doc: Any = change.get("doc")
    check = batch.document_check(table)
    new: dict[str, Any]
    if check is not None and check(doc, ex) and doc["_id"] == doc_id:
        new = doc  # already what the full check would make of it
    else:
        new = _document(ex, table, doc_id, doc)
    old = batch.current.get(doc_id)
    if old is None:
        batch.insert(table, new)
        batch.provenance.create(table, doc_id, change)
    else:
        batch.insert_new()
        body = {k: x for k, x in new.items() if k not in _SYSTEM_FIELDS}
        ex.tx.replace(table, old, body)
        new = {"_id": doc_id, "_creationTime": old["_creationTime"], **body}
    batch.current[doc_id] = new


def _document(ex: Execution, table: str, doc_id: str, doc: Any) -> dict[str, Any]:
    """The change's document (Convex JSON) as the hub stores it, converted and checked
    in full; ``Rejected`` with the reason if it cannot be."""
    if type(doc) is not dict or doc.get("_id") != doc_id:
        raise Rejected("the change's document is missing or has another _id")
    creation = doc.get("_creationTime")
    if isinstance(creation, bool) or not isinstance(creation, int | float):
        raise Rejected("the change's document has no _creationTime")
    try:  # field by field: a body like {"$bytes": ...} is a bad field name, not bytes
        fields = {k: decode_json(x) for k, x in doc.items() if k not in _SYSTEM_FIELDS}
        body = to_convex(fields, what="the document", max_depth=DOCUMENT_MAX_DEPTH)
    except ConvexValueError as exc:
        raise Rejected(str(exc)) from None
    assert isinstance(body, dict)
    return {"_id": doc_id, "_creationTime": float(creation), **_validated(ex, table, body)}


def _validated(ex: Execution, table: str, body: dict[str, Any]) -> dict[str, Any]:
    """The body as the hub's schema normalises it; ``Rejected`` if it refuses it."""
    try:
        if ex.schema is not None:
            body = ex.schema.validate_document(table, body, ex)
        check_document_fields(body)
    except (SchemaEnforcementError, ConvexValueError) as exc:
        raise Rejected(str(exc)) from None
    return body


def _delete(batch: _BatchState, table: str, doc_id: str) -> None:
    old = batch.current.get(doc_id)
    if old is not None:
        batch.insert_new()
        batch.ex.tx.delete(table, old)
        batch.provenance.delete(doc_id)
        batch.current[doc_id] = None
