"""One sync socket's protocol state (wire spec 2.3-2.7), independent of aiohttp.

A session owns two tasks: the *sender* (the only writer to the socket, fed by the
``Outbox``, where a Transition the client has not taken yet absorbs newer ones; a JSON
``Ping`` after ``ping_after_s`` of silence) and the *mutations* task (this socket's
mutations one at a time, in arrival order). Actions run as tasks of their own. Reruns
happen in the engine's rounds (``rounds``), which call ``plan_round`` and then
``finish_round`` on every session they serve.

Read-your-writes: a MutationResponse is emitted only by a round, right before a
Transition whose ts is at or past the mutation's commit ts; so both the JS rule
(resolve at a Transition with ts >= response ts) and the Python one (resolve at the
next Transition) see the write in every subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol

from gateway.runtime.runtime import CallResult
from gateway.sync import protocol as p
from gateway.sync.auth import ANONYMOUS, AuthenticationError, Principal, admin_principal
from gateway.sync.outbox import FrameCache, Outbox, Transition
from gateway.sync.rounds import SessionPlan, SharedResult, principal_key

if TYPE_CHECKING:
    from gateway.sync.engine import Subscription, SubscriptionEngine

log = logging.getLogger("gateway.sync")

MAX_QUEUED_MUTATIONS: Final = 1000
MAX_RUNNING_ACTIONS: Final = 1000
MAX_QUERIES: Final = 10_000
# Bytes of encoded query path + arguments one socket's query set may hold (the
# ``max_socket_query_bytes`` setting's default): 30 subscriptions of 10 MB arguments
# once took a gateway to 1.3 GB.
MAX_QUERY_BYTES: Final = 16 * 1024 * 1024
LAST_FRAME_TIMEOUT_S: Final = 5.0  # a FatalError or AuthError waits on the peer this long


class Transport(Protocol):
    """The socket under a session (aiohttp's WebSocketResponse in production)."""

    async def send(self, frame: bytes) -> None:
        """Send one text frame (``frame`` is its UTF-8 encoding)."""
        ...

    def ready(self, size: int) -> bool:
        """True if a frame of ``size`` bytes can be written without waiting."""
        ...

    async def close(self, code: int, reason: str) -> None: ...


class AuthRefused(Exception):
    """An Authenticate was refused: AuthError, then the socket closes."""

    def __init__(self, message: str, base_version: int) -> None:
        super().__init__(message)
        self.base_version = base_version


class SyncSession:
    """A client's query set, identity and versions on one socket."""

    def __init__(
        self,
        engine: SubscriptionEngine,
        transport: Transport,
        *,
        admin_key: str | None,
        max_query_bytes: int = MAX_QUERY_BYTES,
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.admin_key = admin_key
        self.max_query_bytes = max_query_bytes
        self.query_bytes = 0  # the ``size`` of every subscription in ``subs``
        self.session_id: str | None = None
        self.query_set_version = 0  # the last newVersion received
        self.identity_version = 0  # Authenticates accepted
        self.principal: Principal = ANONYMOUS
        self._principal_key = principal_key(ANONYMOUS)
        self.identity_epoch = 0
        self.subs: dict[int, Subscription] = {}
        self.sent = p.StateVersion()
        self._removed: list[int] = []
        self._responses: list[str] = []
        self.outbox = Outbox()
        self._mutations: asyncio.Queue[tuple[p.Call, Principal]] = asyncio.Queue(
            MAX_QUEUED_MUTATIONS
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._last_sent = asyncio.get_running_loop().time()
        self._ping_timer: asyncio.TimerHandle | None = None
        self._sending = False  # a frame is being written (by the sender or a round)
        self._actions: set[asyncio.Task[None]] = set()
        self._closing = False
        self._closed = asyncio.Event()
        self._expiry: asyncio.TimerHandle | None = None  # the user token's end
        self._expired: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="outpost-sync-sender"),
            asyncio.create_task(self._mutation_loop(), name="outpost-sync-mutations"),
        ]

    @property
    def open(self) -> bool:
        return not self._closing

    def wake(self) -> None:
        self.engine.wake(self)

    def abort(self, reason: str) -> None:
        """Close from a place that cannot wait (a failed round): 1011 and ``reason``."""
        task = asyncio.create_task(self.close(1011, reason), name="outpost-sync-abort")
        self._actions.add(task)  # kept referenced until done
        task.add_done_callback(self._actions.discard)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Stop every task, drop the subscriptions, close the socket. Idempotent."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            try:
                await self._stop_tasks()
            finally:
                # Even if this close is cancelled (a shutdown past its budget): the
                # engine must not keep a dead session's queries or its bytes.
                self.engine.session_closed(self)
                self._release()
            with contextlib.suppress(Exception):
                await self.transport.close(code, reason)
        finally:
            self._closed.set()

    def _release(self) -> None:
        """Drop what a closed session holds, so it is freed by reference counting the
        moment the socket's handler returns, not at some later garbage collection:
        subscriptions (arguments up to ``max_query_bytes``) refer back to the session,
        and a cancelled task keeps its CancelledError, whose traceback holds the
        task's frame and so ``self``."""
        if self._expiry is not None:
            self._expiry.cancel()
        self.subs.clear()
        self.engine.release_query_bytes(self.query_bytes)
        self.query_bytes = 0
        self._tasks = []
        self._removed = []
        self._responses = []
        self.outbox.clear()

    async def fail(self, frame: str, code: int, reason: str) -> None:
        """Send ``frame`` (FatalError / AuthError) as the last message, then close."""
        if self._closing:
            return
        await self._stop_tasks()
        with contextlib.suppress(Exception):  # a peer that does not read gets cut instead
            await asyncio.wait_for(self.transport.send(frame.encode()), LAST_FRAME_TIMEOUT_S)
        await self.close(code, reason)

    async def _stop_tasks(self) -> None:
        tasks = [*self._tasks, *self._actions]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- incoming ----------------------------------------------------------------------

    async def receive(self, text: str) -> None:
        """Handle one text frame; raises ``ProtocolError`` / ``AuthRefused``."""
        await self.handle(p.parse_client_message(text))

    async def handle(self, message: p.ClientMessage) -> None:
        """Handle one parsed frame (``receive`` without the parse, for a frame parsed off
        the loop); raises ``ProtocolError`` / ``AuthRefused``."""
        if self._closing:
            return  # a frame read before the close: what it adds would never be given back
        if isinstance(message, p.Connect):
            if self.session_id is not None:
                raise p.ProtocolError("Connect was sent twice on one socket")
            self.session_id = message.session_id
            # maxObservedTimestamp is parsed (and checked) only: never folded into the
            # clock (DESIGN decision 4).
            return
        if self.session_id is None:
            raise p.ProtocolError(f"the first message must be Connect, not {type(message)}")
        if isinstance(message, p.ModifyQuerySet):
            self._modify_query_set(message)
        elif isinstance(message, p.Call):
            self._call(message)
        elif isinstance(message, p.Authenticate):
            await self._authenticate(message)
        # Event: telemetry, ignored.

    def _modify_query_set(self, message: p.ModifyQuerySet) -> None:
        if message.base_version != self.query_set_version:
            raise p.ProtocolError(
                f"Base version {message.base_version} passed up doesn't match the current "
                f"version {self.query_set_version}"
            )
        if message.new_version <= message.base_version:
            raise p.ProtocolError(
                f"New version {message.new_version} must be greater than the base version "
                f"{message.base_version}"
            )
        added: list[Subscription] = []
        try:
            for mod in message.modifications:
                if isinstance(mod, p.Add):
                    added.append(self._add(mod))
                else:
                    self._remove(mod.query_id)
        except BaseException:
            # The socket is refused, but it may take a while to close (a FatalError
            # waits on its peer): the bytes of the total budget are given back now.
            self._drop(added)
            raise
        self.query_set_version = message.new_version
        self.wake()

    def _add(self, mod: p.Add) -> Subscription:
        from gateway.sync.engine import Subscription

        if mod.query_id in self.subs:
            raise p.ProtocolError(f"Duplicate query id {mod.query_id} in Add")
        if len(self.subs) >= MAX_QUERIES:
            raise p.ProtocolError(
                f"too many subscribed queries on one socket (at most {MAX_QUERIES})"
            )
        sub = Subscription(self, mod.query_id, mod.path, mod.args, mod.args_json, mod.journal)
        self._count_bytes(sub.size)
        self.subs[mod.query_id] = sub
        return sub

    def _remove(self, query_id: int) -> None:
        gone = self.subs.pop(query_id, None)
        if gone is None:
            raise p.ProtocolError(f"Remove of query id {query_id}, not subscribed")
        self.query_bytes -= gone.size
        self.engine.release_query_bytes(gone.size)
        self.engine.forget(gone)
        self._removed.append(query_id)

    def _drop(self, added: list[Subscription]) -> None:
        """Undo the Adds of a refused ModifyQuerySet (none of them has run yet)."""
        for sub in added:
            if self.subs.get(sub.query_id) is sub:  # not removed again by the same message
                del self.subs[sub.query_id]
                self.query_bytes -= sub.size
                self.engine.release_query_bytes(sub.size)

    def _count_bytes(self, size: int) -> None:
        """Count ``size`` against this socket's cap, then against the budget of all
        sockets (so a query past both is refused naming the socket's own limit)."""
        total = self.query_bytes + size
        if total > self.max_query_bytes:
            raise p.ProtocolError(
                f"too many query bytes on one socket: its subscriptions' paths and arguments "
                f"would take {total} bytes (at most {self.max_query_bytes}, the setting "
                "max_socket_query_bytes); subscribe to fewer or smaller queries"
            )
        self.engine.reserve_query_bytes(size)
        self.query_bytes = total

    def _call(self, message: p.Call) -> None:
        if message.kind == "Mutation":
            try:
                self._mutations.put_nowait((message, self.principal))
            except asyncio.QueueFull:
                raise p.ProtocolError(
                    f"TooManyConcurrentMutations: more than {MAX_QUEUED_MUTATIONS} mutations "
                    "queued on one socket"
                ) from None
            return
        if len(self._actions) >= MAX_RUNNING_ACTIONS:
            raise p.ProtocolError(
                f"TooManyConcurrentActions: more than {MAX_RUNNING_ACTIONS} actions running "
                "on one socket"
            )
        task = asyncio.create_task(
            self._run_action(message, self.principal), name="outpost-sync-action"
        )
        self._actions.add(task)
        task.add_done_callback(self._actions.discard)

    async def _authenticate(self, message: p.Authenticate) -> None:
        if message.base_version != self.identity_version:
            raise p.ProtocolError(
                f"Authenticate base version {message.base_version} doesn't match the current "
                f"identity version {self.identity_version}"
            )
        valid_until_s: float | None = None
        try:
            if message.token_type == "None":
                principal = ANONYMOUS
            elif message.token_type == "Admin":
                assert message.value is not None
                principal = admin_principal(message.value, self.admin_key, message.impersonating)
            else:
                assert message.value is not None
                identity = await self.engine.verifier(message.value)
                principal = Principal(admin=False, identity=dict(identity))
                valid_until_s = getattr(identity, "valid_until_s", None)
        except AuthenticationError as exc:
            raise AuthRefused(str(exc), self.identity_version) from None
        if self._closing:
            return  # closed while the token was checked (an issuer's keys fetched)
        self._watch_expiry(valid_until_s)
        self.principal = principal
        self._principal_key = principal_key(principal)
        self.identity_version += 1
        self.identity_epoch += 1  # every query reruns under the new identity
        self.wake()

    def _watch_expiry(self, valid_until_s: float | None) -> None:
        """Convex ends a session whose user token expired with ``AuthError``
        (``authUpdateAttempted: false``) and a close: the JS client fetches a fresh
        token and reconnects. A timer does it here, so an idle socket is not left
        running queries under an expired identity either."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if valid_until_s is not None:
            delay = max(valid_until_s - time.time(), 0.0)
            self._expiry = asyncio.get_running_loop().call_later(delay, self._token_expired)

    def _token_expired(self) -> None:
        self._expiry = None
        frame = p.auth_error(
            "Token expired: the user token of this session is past its exp; "
            "authenticate again with a fresh token",
            self.identity_version,
            attempted=False,
        )
        self._expired = asyncio.create_task(
            self.fail(frame, 1000, "AuthError"), name="outpost-sync-token-expired"
        )

    # --- calls ---------------------------------------------------------------------------

    async def _mutation_loop(self) -> None:
        while True:
            call, principal = await self._mutations.get()
            try:
                frame = await self._run_mutation(call, principal)
            except Exception:  # a bug: never leave the socket open with no one to answer
                log.exception("a sync mutation failed unexpectedly; closing its socket")
                self.abort("InternalServerError")
                return
            self._responses.append(frame)
            self.wake()

    async def _run_mutation(self, call: p.Call, principal: Principal) -> str:
        assert self.session_id is not None  # Connect comes first
        result = await self.engine.runtime.run(
            "mutation",
            call.path,
            call.args,
            identity=principal.identity,
            admin=principal.admin,
            request_key=(self.session_id, call.request_id),
        )
        if result.ok and result.ts is not None:
            return p.mutation_success(
                call.request_id, p.value_json(result.value), result.ts, result.log_lines
            )
        return _failure("Mutation", call.request_id, result)

    async def _run_action(self, call: p.Call, principal: Principal) -> None:
        try:
            result = await self.engine.runtime.run(
                "action", call.path, call.args, identity=principal.identity, admin=principal.admin
            )
        except Exception:  # a bug: the client would wait for an answer forever
            log.exception("a sync action failed unexpectedly; closing its socket")
            self.abort("InternalServerError")
            return
        if result.ok:
            frame = p.action_success(call.request_id, p.value_json(result.value), result.log_lines)
        else:
            frame = _failure("Action", call.request_id, result)
        self._responses.append(frame)
        self.wake()

    # --- outgoing ----------------------------------------------------------------------

    async def _send_loop(self) -> None:
        # No timeout around ``get``: ``wait_for`` costs a task and a timer per frame,
        # the most expensive part of fanning a change out. Silence is watched by
        # ``_ping_if_silent``, a timer that runs once per ``ping_after_s`` at most.
        loop = asyncio.get_running_loop()
        get, send = self.outbox.get, self.transport.send
        self._ping_timer = loop.call_later(self.engine.ping_after_s, self._ping_if_silent)
        try:
            while True:
                frame = await get()
                self._sending = True
                try:
                    await send(frame)
                except Exception as exc:  # noqa: BLE001 - the peer is gone; the socket closes
                    log.debug("sync send failed: %s", exc)
                    return
                finally:
                    self._sending = False
                self._last_sent = loop.time()
        finally:
            self._ping_timer.cancel()

    async def deliver(self, now: float) -> None:
        """Send what a round queued: from the round itself while the socket takes frames
        without waiting (no task switch per socket, like a plain broadcast loop), else
        by waking this socket's sender, so a slow client never holds the round up.
        ``now`` is the loop's time (for the silence timer), read once per round."""
        outbox = self.outbox
        if self._sending or self._closing:
            outbox.wake()  # the sender is busy with an earlier frame: it goes on in order
            return
        transport = self.transport
        while (frame := outbox.take()) is not None:
            if not transport.ready(len(frame)):
                outbox.put_back(frame)
                outbox.wake()
                return
            self._sending = True
            try:
                await transport.send(frame)
            except Exception as exc:  # noqa: BLE001 - the peer is gone; the socket closes
                log.debug("sync send failed: %s", exc)
                return
            finally:
                self._sending = False
            self._last_sent = now

    def _ping_if_silent(self) -> None:
        """A JSON Ping after ``ping_after_s`` with nothing sent (wire spec 2.7)."""
        loop = asyncio.get_running_loop()
        quiet_for = loop.time() - self._last_sent
        wait = self.engine.ping_after_s - quiet_for
        if wait <= 0 and not len(self.outbox):
            self.outbox.put([p.PING], None)
            self.outbox.wake()
            self._last_sent = loop.time()  # what it will be, give or take the send
            wait = self.engine.ping_after_s
        self._ping_timer = loop.call_later(max(wait, 0.01), self._ping_if_silent)

    # --- rounds (called by the engine) ---------------------------------------------------

    def plan_round(self) -> SessionPlan:
        """What the next round covers for this session: new, re-identified and dirty
        queries, plus the responses and removals since the last round."""
        epoch = self.identity_epoch
        removed: Sequence[int] = ()
        responses: Sequence[str] = ()
        if self._removed:
            removed, self._removed = self._removed, []
        if self._responses:
            responses, self._responses = self._responses, []
        todo = [s for s in self.subs.values() if s.epoch != epoch or s.dirty_min is not None]
        return SessionPlan(
            self,
            epoch,
            self.principal,
            self._principal_key,
            self.query_set_version,
            self.identity_version,
            removed,
            responses,
            todo,
        )

    def add_stale(self, plan: SessionPlan, ts: int) -> bool:
        """Add to ``plan`` the queries a commit at or before ``ts`` made dirty since it
        was made; True if there were any (the round then reruns on a newer snapshot)."""
        chosen = set(plan.todo)
        stale = [
            s
            for s in self.subs.values()
            if s not in chosen
            and s.epoch == plan.epoch
            and s.dirty_min is not None
            and s.dirty_min <= ts
        ]
        plan.todo += stale
        return bool(stale)

    def finish_round(
        self, plan: SessionPlan, shared: list[SharedResult], ts: int | None, frames: FrameCache
    ) -> None:
        """Turn the round's results into this socket's responses and Transition."""
        if self._closing:
            return
        modifications = dict.fromkeys(plan.removed, p.QUERY_REMOVED_BODY) if plan.removed else {}
        added: set[int] = set()
        if ts is not None:
            for sub, slot in zip(plan.todo, plan.slots, strict=True):
                if self.subs.get(sub.query_id) is not sub:
                    continue  # removed while the round ran
                result = shared[slot]
                if result.ok and result.journal != sub.journal:
                    # Reactive pagination: the end position of the first run that
                    # paginated stays pinned for every rerun (wire spec 2.6).
                    sub.set_journal(result.journal)
                group = sub.group
                if (
                    group is None
                    or sub.intervals is not result.intervals
                    or group.key[1] != sub.key
                    or group.key[0] != plan.principal_key
                ):
                    self.engine.track(sub, (plan.principal_key, sub.key), result.intervals)
                sub.epoch = plan.epoch
                if sub.dirty_min is not None:
                    sub.reran_at(ts)
                digest = result.digest
                if digest != sub.digest:
                    if sub.digest is None:
                        added.add(sub.query_id)
                    sub.digest = digest
                    modifications[sub.query_id] = result.body
        else:
            ts = max(self.engine.seen_ts, self.sent.ts)
        sent = self.sent
        versions_moved = plan.end_query_set != sent.query_set or plan.end_identity != sent.identity
        if not (modifications or plan.responses or versions_moved):
            return  # nothing a client needs (only ts would move)
        end = p.StateVersion(plan.end_query_set, plan.end_identity, ts)
        self.outbox.put(plan.responses, Transition(sent, end, modifications, added, frames))
        self.sent = end


def _failure(kind: str, request_id: int, result: CallResult) -> str:
    return p.call_failure(
        kind,
        request_id,
        result.error_message or str(result.error),
        p.error_data_json(result.error_data),
        result.log_lines,
    )
