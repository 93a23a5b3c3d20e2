"""One rerun round for every woken session: shared executions on one snapshot.

DESIGN decision 3: a round is one read transaction at one timestamp. The engine runs
one round at a time for all the sessions woken since the last one. Subscriptions that
are the same query (path, arguments, journal) under the same identity are executed
once, however many sockets hold them, and the encoded result is spliced into each
socket's Transition (``SharedResult``). A dashboard open in a hundred browsers costs
one execution per change, not a hundred.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.runtime.index_range import KeyRange
from gateway.runtime.runtime import CallResult, QueryCall
from gateway.sync import protocol as p
from gateway.sync.auth import Principal
from gateway.values import dumps

if TYPE_CHECKING:
    from gateway.sync.engine import Subscription
    from gateway.sync.session import SyncSession


def principal_key(principal: Principal) -> str:
    """Who a query runs as, as text: equal keys may share an execution."""
    identity = dumps(dict(principal.identity)) if principal.identity is not None else "null"
    return f"{int(principal.admin)}{identity}"


def query_key(path: str, args_json: str, journal: str | None) -> str:
    """What a query is, as text (``args_json``: its arguments as convex JSON): with equal
    principal keys, equal results."""
    return f"{path}\x00{args_json}\x00{journal or ''}"


@dataclass(slots=True)
class SessionPlan:
    """What one session's part of a round covers, captured when the round starts."""

    session: SyncSession
    epoch: int
    principal: Principal
    principal_key: str
    end_query_set: int
    end_identity: int
    removed: Sequence[int]
    responses: Sequence[str]
    todo: list[Subscription]
    slots: list[int] = field(default_factory=list)  # per todo entry: its shared execution


Intervals = tuple[tuple[int, KeyRange], ...]


class SharedResult:
    """One execution's result, encoded once for every subscription that shares it."""

    __slots__ = ("body", "digest", "intervals", "journal", "ok", "result")

    def __init__(self, result: CallResult, journal_in: str | None) -> None:
        self.result = result
        read_set = result.read_set
        # Without duplicates: the index counts each interval once per subscription.
        self.intervals: Intervals = (
            tuple(dict.fromkeys(read_set.intervals())) if read_set is not None else ()
        )
        # A failed run keeps the journal it was given; a good one reports the new one.
        self.ok = result.ok
        self.journal = result.journal if self.ok else journal_in
        if self.ok:
            body = p.query_updated_body(p.value_json(result.value), result.log_lines, self.journal)
        else:
            body = p.query_failed_body(
                result.error_message,
                p.error_data_json(result.error_data),
                result.log_lines,
                self.journal,
            )
        self.body: p.QueryBody = body
        # Equal digests: the client already holds this result (nothing to resend).
        self.digest = hashlib.blake2b(f"{body[0]}{body[1]}".encode(), digest_size=16).digest()


class ExecutionSet:
    """The distinct queries of a round, and which subscription reads which result."""

    def __init__(self) -> None:
        self.calls: list[QueryCall] = []
        self._journals: list[str | None] = []
        self._slot_of: dict[tuple[str, str], int] = {}

    def add(self, plan: SessionPlan, sub: Subscription) -> int:
        key = (plan.principal_key, sub.key)
        slot = self._slot_of.get(key)
        if slot is None:
            slot = self._slot_of[key] = len(self.calls)
            identity, admin = plan.principal.identity, plan.principal.admin
            self.calls.append(QueryCall(sub.path, sub.args, identity, admin, sub.journal))
            self._journals.append(sub.journal)
        return slot

    def shared(self, results: list[CallResult]) -> list[SharedResult]:
        return [SharedResult(r, j) for r, j in zip(results, self._journals, strict=True)]
