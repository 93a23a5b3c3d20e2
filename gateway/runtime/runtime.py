"""Running functions: find, validate, execute where the data lives, report.

Queries run on a reader thread, mutations on the writer thread (their coroutines are
driven there, see ``driver``); actions run on the event loop and reach the database
only through ``run_query`` / ``run_mutation``, each its own transaction.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import (
    ArgumentValidationError,
    ConvexError,
    DeterminismError,
    FunctionError,
    FunctionNotFoundError,
    OutpostError,
    ReturnsValidationError,
    ValidationError,
)
from gateway.histogram import LATENCY_BOUNDS_S, Histogram
from gateway.runtime import session_requests, system_functions
from gateway.runtime.context import ActionCtx, MqttMessage, MutationCtx, QueryCtx
from gateway.runtime.cursors import CursorCodec, journal_for, pinned_end
from gateway.runtime.database import Execution
from gateway.runtime.driver import Watchdog, drive
from gateway.runtime.functions import JsonArgs, Kind, RegisteredFunction
from gateway.runtime.loader import App, canonical_path
from gateway.runtime.logs import LogBuffer, _current, capture
from gateway.runtime.query import Query
from gateway.runtime.readset import ReadSet
from gateway.runtime.session_requests import Replayed
from gateway.runtime.storage import BlobDirectory
from gateway.schema import validate_args, validate_returns
from gateway.store import Store, Transaction
from gateway.values import UNSET, encode_json, to_convex

log = logging.getLogger("gateway.runtime")
_KIND_TITLE = {"query": "Query", "mutation": "Mutation", "action": "Action"}


@dataclass
class CallResult:
    """The outcome of one call, in the shape every wire layer needs."""

    value: Any = None
    log_lines: list[str] = field(default_factory=list)
    ts: int | None = None
    error: BaseException | None = None
    error_message: str = ""
    read_set: ReadSet | None = None
    journal: str | None = None  # a query that paginated: its pinned end (wire spec 2.6)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def error_data(self) -> Any:
        """The ``data`` of a ``ConvexError`` (``UNSET`` for any other failure)."""
        return self.error.data if isinstance(self.error, ConvexError) else UNSET

    def unwrap(self) -> Any:
        """The value, or the error raised again (for in-process callers)."""
        if self.error is not None:
            raise self.error
        return self.value


class _Failed(Exception):
    """Carries a failed execution's error, log lines and reads out of a store job."""

    def __init__(
        self, error: BaseException, lines: list[str], read_set: ReadSet | None = None
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.lines = lines
        self.read_set = read_set


@dataclass(frozen=True)
class QueryCall:
    """One query of a batch run on one snapshot (``Runtime.run_queries``)."""

    path: str
    args: Any = None
    identity: Mapping[str, Any] | None = None
    admin: bool = False
    journal: str | None = None  # from an earlier run of the same live query


@dataclass
class _Done:
    value: Any
    lines: list[str]
    read_set: ReadSet
    page_end: str | None = None


@dataclass(frozen=True)
class Budgets:
    """Time budgets in seconds (DESIGN decision 2: far below Convex's 1 s)."""

    query_s: float = 0.5
    mutation_s: float = 0.25
    action_s: float = 600.0


class Runtime:
    """Executes the app's functions against the store."""

    def __init__(
        self,
        store: Store,
        app: App,
        *,
        env: Mapping[str, str] | None = None,
        budgets: Budgets = Budgets(),
        cursor_secret: bytes | None = None,
        site_url: str = "http://127.0.0.1:3210",
        down_writable: bool = False,
    ) -> None:
        self.store = store
        # Whether ``.replicate("down")`` tables take local writes: only where they are
        # owned, on a hub (``hub = true``); an edge gets them from its upstream.
        self.down_writable = down_writable
        self.blobs = BlobDirectory(store.path.parent / "storage")
        self.site_url = site_url.rstrip("/")
        self.app = app
        self.env: Mapping[str, str] = dict(env or {})
        self.budgets = budgets
        secret = cursor_secret or hashlib.sha256(store.gateway_id.encode()).digest()
        self.cursors = CursorCodec(secret)
        self.watchdog = Watchdog()
        self.watchdog.start()
        # ``_system/`` functions a subsystem installs (the hub's push): found for every
        # caller, so their visibility decides who may call them.
        self.installed: dict[str, RegisteredFunction] = {}
        # Seconds from call to answer of every ``run``, by kind (never by path: the
        # label set stays bounded). Observed on the event loop only.
        self.durations: dict[Kind, Histogram] = {
            kind: Histogram(LATENCY_BOUNDS_S) for kind in ("query", "mutation", "action")
        }
        self.failures: dict[Kind, int] = dict.fromkeys(self.durations, 0)
        # Told ``(path, lines)`` of every top-level call's log lines (the dashboard's log
        # ring); called from the event loop and from the writer thread.
        self.log_sink: Callable[[str, list[str]], None] | None = None

    def close(self) -> None:
        self.watchdog.stop()

    def install(self, fn: RegisteredFunction) -> None:
        """Serve ``fn`` at its ``_system/...`` path (a public one needs no admin key)."""
        if not fn.path.startswith(system_functions.PREFIX):
            raise ValueError(f"installed functions live under {system_functions.PREFIX}")
        self.installed[canonical_path(fn.path)] = fn

    def storage_url(self, storage_id: str) -> str:
        """Where a stored file is served (by the HTTP API)."""
        return f"{self.site_url}/api/storage/{storage_id}"

    async def run(
        self,
        kind: Kind | None,
        path: str | RegisteredFunction,
        args: Any = None,
        *,
        identity: Mapping[str, Any] | None = None,
        admin: bool = False,
        request_key: tuple[str, int] | None = None,
    ) -> CallResult:
        """Call the function at ``path`` as ``kind`` (None: whatever it is).

        ``request_key`` (a sync socket's ``(sessionId, requestId)``) makes a mutation
        idempotent: applied at most once, a repeat gets the first answer and ts.
        """
        try:
            fn = self.lookup(path, kind, internal_ok=admin)
            args = _normalise_args(args)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            return CallResult(error=exc, error_message=str(exc))
        started = time.perf_counter()
        if fn.kind == "action":
            result = await self._run_action(fn, args, identity)
        else:
            result = await self._run_transaction(fn, args, identity, request_key)
        self.durations[fn.kind].observe(time.perf_counter() - started)
        if result.error is not None:
            self.failures[fn.kind] += 1
        # Lines of a call made by an action join the action's own: told once, with it.
        if result.log_lines and self.log_sink is not None and _current.get() is None:
            self.log_sink(fn.path, result.log_lines)
        return result

    async def run_queries(self, calls: Sequence[QueryCall]) -> tuple[list[CallResult], int]:
        """Run several queries in ONE read job: every result is from one snapshot.

        Returns the results in order and the snapshot's ts (live queries: one rerun
        round = one snapshot, DESIGN decision 3). A failing query carries its error
        (and what it read before failing); the others are unaffected.
        """
        prepared: list[CallResult | tuple[RegisteredFunction, dict[str, Any], QueryCall]] = []
        for call in calls:
            try:
                fn = self.lookup(call.path, "query", internal_ok=call.admin)
                prepared.append((fn, _normalise_args(call.args), call))
            except Exception as exc:  # noqa: BLE001 - reported to the caller
                prepared.append(CallResult(error=exc, error_message=str(exc)))
        now_ms = time.time() * 1000

        def work(tx: Transaction) -> list[CallResult]:
            out: list[CallResult] = []
            for item in prepared:
                if isinstance(item, CallResult):
                    out.append(item)
                    continue
                fn, args, call = item
                try:
                    done = self._execute(
                        fn, args, call.identity, tx, now_ms=now_ms, journal=call.journal
                    )
                except _Failed as failed:
                    out.append(
                        CallResult(
                            error=failed.error,
                            error_message=_message(failed.error, fn),
                            log_lines=failed.lines,
                            ts=tx.ts,
                            read_set=failed.read_set,
                        )
                    )
                else:
                    journal = None if done.page_end is None else journal_for(done.page_end)
                    out.append(
                        CallResult(
                            done.value, done.lines, tx.ts, read_set=done.read_set, journal=journal
                        )
                    )
            return out

        return await self.store.read(work)

    # --- lookup -----------------------------------------------------------------------

    def lookup(self, path: Any, kind: Kind | None, *, internal_ok: bool) -> RegisteredFunction:
        if isinstance(path, RegisteredFunction):
            fn: RegisteredFunction | None = path
            shown = path.path
        else:
            if not isinstance(path, str) or not path.strip():
                raise FunctionNotFoundError(
                    f"a function path is a string like 'module:name', got {path!r}"
                )
            fn = self.app.lookup(path)
            if fn is None and path.startswith(system_functions.PREFIX):
                fn = self.installed.get(canonical_path(path))
                if fn is None and internal_ok:
                    fn = system_functions.lookup(path)
        if fn is None or (fn.visibility == "internal" and not internal_ok):
            if not isinstance(path, RegisteredFunction):
                shown = canonical_path(path).removesuffix(":default")
            raise FunctionNotFoundError(f"Could not find public function for '{shown}'.")
        if kind is not None and fn.kind != kind:
            raise FunctionError(
                f"Trying to execute {fn.path} as {_KIND_TITLE[kind]}, but it is defined as "
                f"{_KIND_TITLE[fn.kind]}."
            )
        return fn

    def takes_json_args(self, path: str) -> bool:
        """Only installed system functions can (``RegisteredFunction.json_args``)."""
        fn = (
            self.installed.get(canonical_path(path))
            if path.startswith(system_functions.PREFIX)
            else None
        )
        return fn is not None and fn.json_args

    # --- queries and mutations ----------------------------------------------------------

    async def _run_transaction(
        self,
        fn: RegisteredFunction,
        args: dict[str, Any],
        identity: Mapping[str, Any] | None,
        request_key: tuple[str, int] | None = None,
    ) -> CallResult:
        # A partial, not a closure: fewer objects for the GC per call in flight.
        now_ms = time.time() * 1000
        work: Callable[[Transaction], _Done | Replayed]
        if fn.kind == "mutation" and request_key is not None:
            work = functools.partial(
                self._execute_once, fn, args, identity, request_key, now_ms=now_ms
            )
        else:
            work = functools.partial(self._execute, fn, args, identity, now_ms=now_ms)
        try:
            if fn.kind == "mutation":
                done, ts = await self.store.writer.submit(work)
                if isinstance(done, Replayed):
                    return CallResult(done.value, [], done.ts)
            else:
                done, ts = await self.store.readers.submit(work)
        except _Failed as failed:
            return CallResult(
                error=failed.error,
                error_message=_message(failed.error, fn),
                log_lines=failed.lines,
            )
        except Exception as exc:  # noqa: BLE001 - commit failure, store closed
            return CallResult(error=exc, error_message=str(exc))
        assert not isinstance(done, Replayed)
        return CallResult(done.value, done.lines, ts, read_set=done.read_set)

    def _execute_once(
        self,
        fn: RegisteredFunction,
        args: dict[str, Any],
        identity: Mapping[str, Any] | None,
        request_key: tuple[str, int],
        tx: Transaction,
        *,
        now_ms: float,
    ) -> _Done | Replayed:
        """A mutation deduped by (sessionId, requestId): its record commits with it."""
        replayed = session_requests.find(tx, *request_key)
        if replayed is not None:
            return replayed
        done = self._execute(fn, args, identity, tx, now_ms=now_ms)
        session_requests.record(tx, *request_key, done.value, now_ms)
        return done

    def _execute(
        self,
        fn: RegisteredFunction,
        args: dict[str, Any],
        identity: Mapping[str, Any] | None,
        tx: Transaction,
        *,
        now_ms: float,
        journal: str | None = None,
        mqtt: MqttMessage | None = None,
    ) -> _Done:
        """Runs on the database thread: drive the handler under the watchdog."""
        ex = Execution(
            tx,
            self.cursors,
            schema=self.app.schema,
            pinned_end=pinned_end(journal),
            down_writable=self.down_writable,
        )
        seed = tx.ts ^ fn.seed_base
        ctx_type = MutationCtx if fn.kind == "mutation" else QueryCtx
        ctx = ctx_type(self, ex, identity, now_ms, seed, mqtt)
        budget = fn.budget_s or (
            self.budgets.mutation_s if fn.kind == "mutation" else self.budgets.query_s
        )
        buffer = LogBuffer()

        def describe() -> str:
            return f"{fn.kind} '{fn.path}'"

        def step() -> Any:
            return drive(self._invoke(fn, ctx, args, ex), describe)

        token = _current.set(buffer)  # what ``capture`` does, without its generator
        try:
            value = self.watchdog.run(budget, step, interrupt=tx.interrupt, describe=describe)
        except BaseException as exc:  # noqa: BLE001 - the caller gets it; the job rolls back
            raise _Failed(exc, buffer.lines, ex.read_set) from None
        finally:
            _current.reset(token)
        return _Done(value, buffer.lines, ex.read_set, ex.page_end)

    async def _invoke(
        self, fn: RegisteredFunction, ctx: Any, args: dict[str, Any], ids: Any
    ) -> Any:
        """Validate args, run the handler, check and normalise its result."""
        if fn.json_args:  # the handler checks them (HTTP hands them over unconverted)
            as_json = type(args) is JsonArgs
            checked = args if as_json else encode_json(to_convex(args, what="arguments"))
            return _result(fn, await fn.handler(ctx, checked), ids)
        flat = fn.flat_args(args, ids) if fn.flat_args is not None else None
        if flat is not None:  # already a Convex value: no normalising pass needed
            checked = dict(flat[0])
        else:
            checked = to_convex(validate_args(fn.args_validator, args, ids), what="arguments")
        result = await fn.handler(ctx, checked)
        return _result(fn, result, ids)

    def execute_scheduled(self, path: str, args: dict[str, Any], tx: Transaction) -> dict[str, Any]:
        """Run a scheduled mutation inside the writer job that completes its job record.

        Its writes and the job's new state commit together (exactly once); if it fails,
        only its own writes roll back and the job records the error.
        """
        fn = self.app.lookup(path)
        assert fn is not None
        try:
            with tx.savepoint():
                done = self._execute(fn, args, None, tx, now_ms=time.time() * 1000)
        except _Failed as failed:
            self._log_lines(path, failed.lines)
            return {"kind": "failed", "error": _message(failed.error, fn)}
        self._log_lines(path, done.lines)
        return {"kind": "success"}

    def execute_ingest(
        self,
        path: str,
        args: dict[str, Any],
        tx: Transaction,
        *,
        identity: Mapping[str, Any] | None,
        mqtt: MqttMessage,
    ) -> str | None:
        """Run the mutation of an MQTT message inside the writer job that records it.

        Its writes commit with the job's own (dedupe marks, a dead letter); if it fails,
        only its writes roll back and the error message is returned (None: applied).
        """
        try:
            fn = self.lookup(path, "mutation", internal_ok=True)
        except Exception as exc:  # noqa: BLE001 - the route's function went away (reload)
            return str(exc)
        try:
            with tx.savepoint():
                done = self._execute(fn, args, identity, tx, now_ms=mqtt.received_ms, mqtt=mqtt)
        except _Failed as failed:
            self._log_lines(path, failed.lines)
            return _message(failed.error, fn)
        self._log_lines(path, done.lines)
        return None

    def _log_lines(self, path: str, lines: list[str]) -> None:
        """A scheduled or MQTT call's lines: to the log (no caller sees them) and the sink."""
        for line in lines:
            log.info("%s: %s", path, line, extra={"outpost_function": path})
        if lines and self.log_sink is not None:
            self.log_sink(path, lines)

    async def nested(self, ctx: QueryCtx, kind: Kind, ref: Any, args: Any) -> Any:
        """``ctx.run_query`` / ``ctx.run_mutation`` inside a query or mutation."""
        fn = self.lookup(ref, kind, internal_ok=True)
        args = _normalise_args(args)
        ex: Execution = ctx._ex  # noqa: SLF001
        seed = ctx.random.getrandbits(64)
        if kind == "query":
            sub: QueryCtx = QueryCtx(self, ex, ctx._identity, ctx.now, seed, ctx.mqtt)  # noqa: SLF001
            return await self._invoke(fn, sub, args, ex)
        sub = MutationCtx(self, ex, ctx._identity, ctx.now, seed, ctx.mqtt)  # noqa: SLF001
        with ex.tx.savepoint():
            return await self._invoke(fn, sub, args, ex)

    # --- actions --------------------------------------------------------------------------

    async def _run_action(
        self, fn: RegisteredFunction, args: dict[str, Any], identity: Mapping[str, Any] | None
    ) -> CallResult:
        buffer = LogBuffer()
        ctx = ActionCtx(self, identity, time.time() * 1000)
        try:
            with capture(buffer):
                value = await asyncio.wait_for(
                    self._invoke(fn, ctx, args, _CatalogIds(self.store)), self.budgets.action_s
                )
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            return CallResult(error=exc, error_message=_message(exc, fn), log_lines=buffer.lines)
        return CallResult(value, buffer.lines)

    async def from_action(
        self, kind: Kind, ref: Any, args: Any, identity: Mapping[str, Any] | None
    ) -> Any:
        """``ctx.run_*`` from an action: a separate top-level call; its logs join ours."""
        fn = self.lookup(ref, kind, internal_ok=True)
        result = await self.run(kind, fn, args, identity=identity, admin=True)
        buffer = _current.get()
        if buffer is not None:
            for line in result.log_lines:
                buffer.lines.append(line)
        return result.unwrap()


class _CatalogIds:
    """IdResolver over the newest committed catalog (for actions' validators)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def table_name(self, table_number: int) -> str | None:
        return self._store.catalog.table_name(table_number)


def _normalise_args(args: Any) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise ValidationError(
            "ArgumentValidationError: function arguments must be an object, "
            f"got {type(args).__name__}"
        )
    return args


def _result(fn: RegisteredFunction, result: Any, ids: Any) -> Any:
    if isinstance(result, Query):
        raise ReturnsValidationError(
            f"ReturnsValidationError: {fn.path} returned a query; call .collect(), .take(n) "
            "or .first() on it and return the documents"
        )
    value = None if result is UNSET else result
    value = validate_returns(fn.returns_validator, value, ids)
    if type(value) is str and value.isascii():  # an id, most often: nothing to normalise
        return value
    return to_convex(value, what="the return value")


def _message(exc: BaseException, fn: RegisteredFunction) -> str:
    """The ``errorMessage`` a client sees, in Convex's shape."""
    if isinstance(exc, ConvexError):
        data = exc.data
        text = (
            data
            if isinstance(data, str)
            else json.dumps(encode_json(data), separators=(",", ":"), ensure_ascii=False)
        )
        return f"Uncaught ConvexError: {text}"
    if isinstance(exc, ArgumentValidationError | ReturnsValidationError | FunctionNotFoundError):
        return str(exc)
    # Errors of Outpost's own (a db call refused, a schema mismatch) read like Convex's
    # JS errors; anything else keeps its Python name so the developer knows what it was.
    own = isinstance(exc, OutpostError) and not isinstance(exc, DeterminismError)
    name = "Error" if own else type(exc).__name__
    return f"Uncaught {name}: {exc}{_app_frames(exc, fn)}"


def _app_frames(exc: BaseException, fn: RegisteredFunction) -> str:
    module = fn.handler.__code__.co_filename
    root = module[: module.rfind("/convex/") + 1] if "/convex/" in module else ""
    lines = []
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if root and frame.filename.startswith(root):
            lines.append(f"    at {frame.name} ({frame.filename[len(root) :]}:{frame.lineno})")
    return "\n" + "\n".join(lines) if lines else ""
