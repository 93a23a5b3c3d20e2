"""The ``ctx`` objects handed to queries, mutations and actions."""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from gateway.errors import FunctionError
from gateway.runtime.database import DatabaseReader, DatabaseWriter, Execution
from gateway.runtime.scheduler import ActionScheduler, MutationScheduler
from gateway.runtime.storage import ActionStorage, TransactionStorage

if TYPE_CHECKING:
    from gateway.runtime.runtime import Runtime


@dataclass(frozen=True)
class MqttMessage:
    """``ctx.mqtt`` of a mutation run by an MQTT ingest route (None for any other call).

    ``seq`` and ``boot`` are the payload's counters (never passed as arguments; None when
    the payload has none); ``qos`` is the QoS the gateway received it at (QoS 2 arrives as
    1, see docs/mqtt.md); ``received_ms`` is when the bridge received it (Unix ms).
    """

    topic: str
    device: str
    qos: int
    received_ms: float
    seq: int | None = None
    boot: int | None = None


class Auth:
    """``ctx.auth``: who is calling (None until an auth provider is configured)."""

    def __init__(self, identity: Mapping[str, Any] | None) -> None:
        self._identity = identity

    async def get_user_identity(self) -> Mapping[str, Any] | None:
        return self._identity


class ContextMisuseError(FunctionError, AttributeError):
    """A ``ctx`` member this kind of function does not have. Its text is Convex's
    ("Can't use fetch() in queries and mutations. Please consider using an action.");
    it is an ``AttributeError`` too, so ``hasattr(ctx, "db")`` still answers False."""


def _refuse(member: str, where: str, instead: str) -> NoReturn:
    raise ContextMisuseError(f"Can't use {member} in {where}. Please consider using {instead}.")


# Members other kinds have: what a query or an action is told instead of AttributeError.
_NOT_IN_QUERIES = {"scheduler": "a mutation or an action"}
_NOT_IN_ACTIONS = {"db": "ctx.run_query or ctx.run_mutation"}


class QueryDatabase(DatabaseReader):
    """``ctx.db`` of a query: reads only; a write says so in Convex's words."""

    async def insert(self, *args: Any) -> NoReturn:
        _refuse("ctx.db.insert()", "queries", "a mutation")

    async def patch(self, *args: Any) -> NoReturn:
        _refuse("ctx.db.patch()", "queries", "a mutation")

    async def replace(self, *args: Any) -> NoReturn:
        _refuse("ctx.db.replace()", "queries", "a mutation")

    async def delete(self, *args: Any) -> NoReturn:
        _refuse("ctx.db.delete()", "queries", "a mutation")


class _BaseCtx:
    def __init__(self, runtime: Runtime, identity: Mapping[str, Any] | None, now_ms: float) -> None:
        self._runtime = runtime
        self.auth = Auth(identity)
        self.env: Mapping[str, str] = runtime.env
        self.now = now_ms


class QueryCtx(_BaseCtx):
    """``ctx`` of a query: read-only ``db``, ``storage`` reads, ``run_query``."""

    _writable = False

    def __init__(
        self,
        runtime: Runtime,
        ex: Execution,
        identity: Mapping[str, Any] | None,
        now_ms: float,
        seed: int,
        mqtt: MqttMessage | None = None,
    ) -> None:
        super().__init__(runtime, identity, now_ms)
        self.mqtt = mqtt
        self._ex = ex
        self._identity = identity
        self._seed = seed
        self.db: DatabaseReader = DatabaseWriter(ex) if self._writable else QueryDatabase(ex)

    def __getattr__(self, name: str) -> Any:  # only for members this ctx lacks
        if not self._writable and name in _NOT_IN_QUERIES:
            _refuse(f"ctx.{name}", "queries", _NOT_IN_QUERIES[name])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # Built on first use: most functions never touch them, and every call pays for
    # whatever its ctx builds.
    @functools.cached_property
    def random(self) -> random.Random:
        """Seeded per execution: the same snapshot and function give the same numbers."""
        return random.Random(self._seed)

    @functools.cached_property
    def storage(self) -> TransactionStorage:
        return TransactionStorage(self._runtime, self._ex, writable=self._writable)

    async def run_query(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        """Run a query inside this transaction (same snapshot, shared limits)."""
        return await self._runtime.nested(self, "query", ref, args or {})

    async def run_mutation(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        raise FunctionError("Cannot call a mutation function from a query function")

    async def run_action(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        raise FunctionError(
            "Cannot call an action from a query or mutation; schedule it with ctx.scheduler"
        )


class MutationCtx(QueryCtx):
    """``ctx`` of a mutation: read/write ``db``, ``scheduler``, nested calls."""

    _writable = True

    @functools.cached_property
    def scheduler(self) -> MutationScheduler:
        return MutationScheduler(self._runtime, self._ex)

    async def run_mutation(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        """Run a mutation as a sub-transaction: if it raises, only its writes roll back."""
        return await self._runtime.nested(self, "mutation", ref, args or {})


class ActionCtx(_BaseCtx):
    """``ctx`` of an action: each ``run_*`` is its own transaction."""

    def __init__(self, runtime: Runtime, identity: Mapping[str, Any] | None, now_ms: float) -> None:
        super().__init__(runtime, identity, now_ms)
        self._identity = identity
        self.scheduler = ActionScheduler(runtime)
        self.storage = ActionStorage(runtime)

    def __getattr__(self, name: str) -> Any:  # only for members this ctx lacks
        if name in _NOT_IN_ACTIONS:
            _refuse(f"ctx.{name}", "actions", _NOT_IN_ACTIONS[name])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    async def run_query(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        return await self._runtime.from_action("query", ref, args or {}, self._identity)

    async def run_mutation(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        return await self._runtime.from_action("mutation", ref, args or {}, self._identity)

    async def run_action(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        return await self._runtime.from_action("action", ref, args or {}, self._identity)
