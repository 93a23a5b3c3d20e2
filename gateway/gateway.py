"""The ``Gateway``: one object that owns every part of a running Outpost.

Its start is a ``Lifecycle`` (``gateway.lifecycle``) of named steps, each owning one
part; a failing step stops every step before it, in reverse, so a failed start leaves
no thread, task or open file behind. In start order (stop is the reverse):

=================  ==============================================  ====================
step               starts                                          stop
=================  ==============================================  ====================
app                the app's modules (last good copy if broken)    unload the modules
auth               the app's token providers (``gateway.auth``)    close their key fetching
store              the SQLite file, writer and reader threads      close (no-op if done)
system tables      scheduler, session-request and storage tables   -
schema             the app's schema (last good copy if refused)    -
last good copy     ``app-last-good`` in the data dir (serve only)  -
app logs           the handler copying app logs into calls         remove it
runtime            the function runtime and its watchdog thread    close the store (the
                                                                   writer drains queued
                                                                   mutations under the
                                                                   watchdog), then stop
                                                                   the watchdog
hub                (``hub = true``) its tables and push mutation   -
stored files       sweep of files no ``_storage`` document names   -
scheduler          due jobs and crons (its loop task)              cancel, await
live queries       the sync subscription engine                    close its sessions
retention          the retention task (when a table has a policy)  cancel, await
dashboard          ``_system/dashboard/...`` functions, the log    remove the log handler,
                   ring's handler, the table counts' task          cancel the counting
=================  ==============================================  ====================

``close`` runs the stops, bounded by ``settings.shutdown_timeout_s``; closing twice is
safe. The process owner above this (``gateway.service``) adds the HTTP server and the
subsystems to come around these steps; ``docs/lifecycle.md`` has the whole order.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.auth import Authenticator
from gateway.config import Settings
from gateway.dashboard_api import Dashboard
from gateway.errors import (
    AppLoadError,
    SchemaDefinitionError,
    SchemaEnforcementError,
    StartError,
    StoreClosedError,
)
from gateway.lifecycle import Lifecycle, StepHook, cancel_task
from gateway.mqtt.routes import check_routes
from gateway.replication.credentials import KeyRing, registry_path
from gateway.replication.hub import install_hub
from gateway.replication.hub_changes import ensure_changes_table, log_changes
from gateway.replication.hub_tables import ensure_hub_tables, move_old_provenance
from gateway.runtime import logs
from gateway.runtime.cron_clock import CronClock
from gateway.runtime.cron_runner import CronRunner
from gateway.runtime.crons import check_crons
from gateway.runtime.disk_status import disk_status_function
from gateway.runtime.functions import JsonArgs, Kind
from gateway.runtime.http_router import check_http_routes
from gateway.runtime.loader import App, load_app
from gateway.runtime.retention import RETENTION_ORIGIN, apply_retention
from gateway.runtime.runtime import Budgets, CallResult, Runtime
from gateway.runtime.scheduler import Scheduler, ensure_system_tables
from gateway.runtime.schema_apply import apply_schema, replication_of
from gateway.runtime.session_requests import ensure_session_requests_table
from gateway.runtime.storage import ensure_storage_table, live_ids
from gateway.store import Store
from gateway.store.writer import CommitFn, _default_commit
from gateway.sync.engine import SubscriptionEngine

log = logging.getLogger("gateway")

LAST_GOOD_DIR = "app-last-good"

ReloadListener = Callable[["App"], Awaitable[None]]


class Gateway:
    """A running gateway: its store, its app and the runtime between them.

    Built by ``start`` (or ``open``); the parts are set by its start steps."""

    store: Store
    app: App
    runtime: Runtime
    scheduler: Scheduler
    crons: CronRunner  # the app's cron jobs (started and stopped with the scheduler)
    cron_clock: CronClock | None = None  # the crons' clock: a seam for tests
    sync: SubscriptionEngine  # live queries: sync sessions' subscriptions
    auth: Authenticator  # the app's auth providers and their cached keys
    dashboard: Dashboard  # the LAN dashboard's functions and their state

    def __init__(
        self,
        app_dir: Path,
        data_dir: Path,
        settings: Settings,
        *,
        commit_fn: CommitFn = _default_commit,
        keep_last_good: bool = False,
        step_hook: StepHook | None = None,
    ) -> None:
        self.settings = settings
        self.app_dir = app_dir
        self.data_dir = data_dir
        self.app_error: str | None = None  # why the app dir is not what is served
        self._commit_fn = commit_fn
        self._keep_last_good = keep_last_good
        self._life = Lifecycle("gateway", stop_budget_s=settings.shutdown_timeout_s, hook=step_hook)
        self._retention: asyncio.Task[None] | None = None
        self._reload_listeners: list[ReloadListener] = []
        self._closed = False

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        app_dir: Path | str,
        data_dir: Path | str,
        settings: Settings | None = None,
        *,
        commit_fn: CommitFn = _default_commit,
        keep_last_good: bool = False,
        step_hook: StepHook | None = None,
    ) -> AsyncIterator[Gateway]:
        """``async with Gateway.open(app_dir, data_dir) as gw:`` a started gateway."""
        gateway = await cls.start(
            app_dir,
            data_dir,
            settings,
            commit_fn=commit_fn,
            keep_last_good=keep_last_good,
            step_hook=step_hook,
        )
        try:
            yield gateway
        finally:
            await gateway.close()

    @classmethod
    async def start(
        cls,
        app_dir: Path | str,
        data_dir: Path | str,
        settings: Settings | None = None,
        *,
        commit_fn: CommitFn = _default_commit,
        keep_last_good: bool = False,
        step_hook: StepHook | None = None,
    ) -> Gateway:
        """Load the app, open the store, apply the schema; ready to serve.

        A failing step raises its own error (``AppLoadError``, ``DamagedStoreError``,
        a schema error...) after every earlier step was stopped; ``launch`` raises a
        ``StartError`` naming the step instead.

        With ``keep_last_good`` (what ``outpost serve`` uses), an app that loads and
        applies is copied into the data directory; when a later version does not load
        or its schema is refused, that copy is served instead and ``app_error`` says
        why, so a bad upgrade never stops ingest in a restart loop.
        """
        try:
            return await cls.launch(
                app_dir,
                data_dir,
                settings,
                commit_fn=commit_fn,
                keep_last_good=keep_last_good,
                step_hook=step_hook,
            )
        except StartError as exc:
            failure = exc
        # Raised outside the handler so the step's error keeps its own chain.
        cause = failure.__cause__
        if cause is None:
            raise failure
        cause.add_note(f"(while starting the gateway: {failure.step}; earlier steps stopped)")
        raise cause

    @classmethod
    async def launch(
        cls,
        app_dir: Path | str,
        data_dir: Path | str,
        settings: Settings | None = None,
        *,
        commit_fn: CommitFn = _default_commit,
        keep_last_good: bool = False,
        step_hook: StepHook | None = None,
    ) -> Gateway:
        """``start`` for a process owner: a failure is one ``StartError`` naming the step
        (``cannot start: <step>: <reason>``), every earlier step stopped."""
        settings = settings or Settings()
        _tune_gc(settings.gc_young_threshold)
        gateway = cls(
            Path(app_dir),
            Path(data_dir),
            settings,
            commit_fn=commit_fn,
            keep_last_good=keep_last_good,
            step_hook=step_hook,
        )
        await gateway._start_steps()
        log.info(
            "gateway %s ready: %d functions", gateway.store.gateway_id, len(gateway.app.functions)
        )
        return gateway

    async def _start_steps(self) -> None:
        life = self._life
        await life.start("app", self._load_app, lambda _: self.app.unload())
        await life.start("auth", self._start_auth, Authenticator.close)
        await life.start("store", self._open_store, Store.close)
        await life.start("system tables", self._ensure_system_tables)
        await life.start("schema", self._apply_schema)
        await life.start("last good copy", self._save_last_good)
        await life.start("app logs", self._install_logs, lambda _: logs.uninstall())
        await life.start("runtime", self._start_runtime, self._stop_runtime)
        if self.settings.hub:  # a step only on a hub: an edge's start order is unchanged
            await life.start("hub", self._start_hub)
        await life.start("stored files", self._sweep_stored_files)
        await life.start("scheduler", self._start_scheduler, self._stop_scheduler)
        await life.start("live queries", self._start_sync, SubscriptionEngine.close)
        await life.start("retention", self._start_retention, cancel_task)
        await life.start("dashboard", self._start_dashboard, Dashboard.close)

    # --- the start steps, in order ------------------------------------------------------

    @property
    def _saved(self) -> Path:
        return self.data_dir / LAST_GOOD_DIR

    async def _load_app(self) -> None:
        try:
            self.app = _load_checked(self.app_dir)
        except AppLoadError as exc:
            if not (self._keep_last_good and (self._saved / "convex").is_dir()):
                raise
            self.app = _load_checked(self._saved)
            self.app_error = str(exc)

    async def _start_auth(self) -> Authenticator:
        self.auth = Authenticator(self.app.auth_providers, self.data_dir)

        async def follow(app: App) -> None:  # a reload with a changed auth.config.py
            self.auth.configure(app.auth_providers)

        self.on_app_reloaded(follow)
        return self.auth

    @property
    def writes_outbox(self) -> bool:
        """Whether writes to ``.replicate("up")`` tables go to the outbox: always on an
        edge (turning ``upstream_url`` on later sends them), on a hub only when it has
        an upstream of its own (``replication_of``)."""
        return not self.settings.hub or bool(self.settings.upstream_url)

    async def _open_store(self) -> Store:
        settings = self.settings
        self.store = await Store.open(
            self.data_dir,
            commit_interval_ms=settings.commit_interval_ms,
            max_batch_jobs=settings.max_batch_mutations,
            reader_threads=settings.reader_threads,
            replication=replication_of(self.app.schema, outbox=self.writes_outbox),
            commit_fn=self._commit_fn,
            # No upstream, no limit: nothing would ever drain the outbox to make room.
            outbox_max_bytes=settings.outbox_max_bytes if settings.upstream_url else 0,
            outbox_overflow=settings.outbox_overflow,
            reserve_bytes=settings.disk_reserve_bytes,
            disk_check_interval_s=settings.disk_check_interval_s,
        )
        return self.store

    async def _ensure_system_tables(self) -> None:
        await self.store.write(ensure_system_tables)
        await self.store.write(ensure_session_requests_table)
        await self.store.write(ensure_storage_table)

    async def _apply_schema(self) -> None:
        """Apply the app's schema; if it is refused, the last good copy's instead."""
        try:
            await _write_schema(self.store, self.app, self.writes_outbox)
        except (SchemaEnforcementError, SchemaDefinitionError) as exc:
            saved = self._saved
            if not self._keep_last_good or self.app_error is not None:
                raise
            if not (saved / "convex").is_dir():
                raise
            self.app.unload()
            self.app = _load_checked(saved)
            self.app_error = str(exc)
            await _write_schema(self.store, self.app, self.writes_outbox)

    async def _save_last_good(self) -> None:
        if self.app_error is not None:
            log.error(
                "the app in %s cannot be served (%s); serving the last good copy from %s",
                self.app_dir,
                self.app_error,
                self._saved,
            )
        elif self._keep_last_good:
            await asyncio.to_thread(_save_last_good, self.app_dir, self._saved)

    async def _install_logs(self) -> None:
        logs.install(self.app.package)

    async def _start_runtime(self) -> Runtime:
        settings = self.settings
        budgets = Budgets(
            settings.query_budget_ms / 1000,
            settings.mutation_budget_ms / 1000,
            settings.action_budget_s,
        )
        self.runtime = Runtime(
            self.store,
            self.app,
            env=settings.env,
            budgets=budgets,
            site_url=settings.site_url,
            down_writable=settings.hub,
        )
        self.runtime.install(disk_status_function(self.store.disk))
        return self.runtime

    async def _start_hub(self) -> None:
        """The hub's tables, and its push mutation in the runtime (``hub = true``)."""
        await self.store.write(ensure_hub_tables)
        while (await self.store.write(move_old_provenance))[0]:
            pass
        await self.store.write(ensure_changes_table)
        self.store.add_finish_hook(log_changes)
        install_hub(self.runtime, KeyRing(registry_path(self.data_dir)))

    async def _stop_runtime(self, runtime: Runtime) -> None:
        # The store closes here, before the watchdog stops: mutations still queued run
        # during the writer's drain and a runaway one must still be aborted.
        try:
            await self.store.close()
        finally:
            runtime.close()

    async def _sweep_stored_files(self) -> None:
        live, _ = await self.store.read(live_ids)
        swept = await asyncio.to_thread(self.runtime.blobs.sweep, live)
        if swept:
            log.info("removed %d stored files that no _storage document names", swept)

    async def _start_scheduler(self) -> Scheduler:
        scheduler = Scheduler(self.runtime)
        await scheduler.start()
        self.scheduler = scheduler
        self.crons = CronRunner(self.runtime, clock=self.cron_clock)
        try:
            await self.crons.start(self.app)
        except BaseException:
            await scheduler.close()
            raise
        self.on_app_reloaded(self.crons.reload)
        return scheduler

    async def _stop_scheduler(self, scheduler: Scheduler) -> None:
        try:
            await self.crons.close()
        finally:
            await scheduler.close()

    async def _start_sync(self) -> SubscriptionEngine:
        store = self.store
        self.sync = SubscriptionEngine(
            self.runtime,
            store.write_log,
            store.clock.last_ts_ns,
            verifier=self.verify_token,
            max_total_query_bytes=self.settings.max_total_query_bytes,
        )
        return self.sync

    async def _start_retention(self) -> asyncio.Task[None] | None:
        if self.settings.retention_interval_s <= 0 or not _has_retention(self.app.schema):
            return None
        self._retention = asyncio.create_task(self._retention_loop(), name="retention")
        return self._retention

    async def _start_dashboard(self) -> Dashboard:
        """The dashboard's ``_system/dashboard/...`` functions (``gateway.dashboard_api``)."""
        dashboard = Dashboard(self.runtime, self.settings, self.data_dir, lambda: self.app_error)
        self.dashboard = await dashboard.start(
            on_counted=self.sync.invalidate_all, touch=self.sync.touch
        )
        return dashboard

    async def reload_app(self) -> App:
        """Load the app again and swap it in atomically (what ``outpost dev`` does on save).

        Calls already running finish on the old version; new calls get the new one. If
        the new version does not load or its schema is refused, ``AppLoadError`` /
        the schema error is raised and the running version stays.
        """
        new_app = _load_checked(self.app_dir)
        try:
            if new_app.schema is not None:
                await self.store.write(
                    lambda tx: apply_schema(tx, new_app.schema, outbox=self.writes_outbox)
                )
        except BaseException:
            new_app.unload()
            raise
        old = self.app
        logs.install(new_app.package)
        self.app = self.runtime.app = new_app
        self.app_error = None
        logs.uninstall()
        old.unload()
        self.sync.invalidate_all()  # live queries rerun on the new code
        log.info("app reloaded: %d functions", len(new_app.functions))
        for listener in list(self._reload_listeners):
            try:
                await listener(new_app)
            except Exception:  # noqa: BLE001 - one subsystem's failure is its own
                log.exception("after the reload, %r failed", listener)
        return new_app

    def on_app_reloaded(self, listener: ReloadListener) -> Callable[[], None]:
        """Await ``listener(new_app)`` after each successful ``reload_app`` (the MQTT
        broker's ACL and the bridge's subscriptions follow the routes); returns the
        function that removes it."""
        self._reload_listeners.append(listener)
        return lambda: self._reload_listeners.remove(listener)

    async def close(self) -> None:
        """Refuse new calls, then stop every step in reverse (``sync`` sessions first,
        the store's drain before the watchdog, the app last), within
        ``settings.shutdown_timeout_s``. Idempotent."""
        self._closed = True
        await self._life.stop()

    async def apply_retention(self) -> int:
        """Apply every table's retention policy once; returns documents deleted."""
        schema, now_ms = self.app.schema, time.time() * 1000
        deleted, _ = await self.store.write(
            lambda tx: apply_retention(tx, schema, now_ms), origin=RETENTION_ORIGIN
        )
        return deleted

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.retention_interval_s)
            try:
                deleted = await self.apply_retention()
            except Exception:  # noqa: BLE001 - retried next round
                log.exception("retention pass failed")
                continue
            if deleted:
                log.info("retention removed %d documents", deleted)

    # --- callers ------------------------------------------------------------------------

    async def verify_token(self, token: str) -> Mapping[str, Any]:
        """The identity a user token (a JWT) proves, or ``AuthenticationError`` saying why.

        The one check every way in uses: sync ``Authenticate``, ``Authorization: Bearer``
        on the HTTP API and on HTTP actions. The app's providers
        (``convex/auth.config.py``) decide; with none, every token is refused. The
        error is a ``gateway.auth.TokenRefused`` whose ``code`` is Convex's."""
        return await self.auth.verify(token)

    # --- calling functions --------------------------------------------------------------

    async def call(
        self,
        kind: Kind | None,
        path: str,
        args: Mapping[str, Any] | None = None,
        *,
        identity: Mapping[str, Any] | None = None,
        admin: bool = False,
    ) -> CallResult:
        """Call a function and get its full outcome (value or error, log lines, ts)."""
        if self._closed:
            raise StoreClosedError("the gateway is closed")
        if args is not None and type(args) is not JsonArgs:  # the caller's mapping kept as is
            args = dict(args)
        return await self.runtime.run(kind, path, args, identity=identity, admin=admin)

    def takes_json_args(self, path: str) -> bool:
        """Whether the function at ``path`` takes its args as Convex JSON (``JsonArgs``)."""
        return self.runtime.takes_json_args(path)

    async def run_query(self, path: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run a query (internal ones too: in-process callers are trusted)."""
        return (await self.call("query", path, args, admin=True)).unwrap()

    async def run_mutation(self, path: str, args: Mapping[str, Any] | None = None) -> Any:
        return (await self.call("mutation", path, args, admin=True)).unwrap()

    async def run_action(self, path: str, args: Mapping[str, Any] | None = None) -> Any:
        return (await self.call("action", path, args, admin=True)).unwrap()


def _load_checked(app_dir: Path) -> App:
    """Load the app and check its MQTT routes against its functions and that its
    ``http`` is a router (file:line errors)."""
    app = load_app(app_dir, print_fn=logs.app_print)
    try:
        check_routes(app.mqtt, app)
        check_crons(app.crons, app)
        check_http_routes(app.http, app.directory)
    except BaseException:
        app.unload()
        raise
    return app


async def _write_schema(store: Store, app: App, outbox: bool) -> None:
    schema = app.schema
    if schema is not None:
        await store.write(lambda tx: apply_schema(tx, schema, outbox=outbox))


def _save_last_good(app_dir: Path, saved: Path) -> None:
    """Copy ``app_dir/convex`` to ``saved/convex``, replacing the old copy whole."""
    fresh = saved.with_name(saved.name + ".new")
    stale = saved.with_name(saved.name + ".old")
    for leftover in (fresh, stale):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(
        app_dir / "convex", fresh / "convex", ignore=shutil.ignore_patterns("__pycache__")
    )
    if saved.exists():
        os.replace(saved, stale)
    os.replace(fresh, saved)
    shutil.rmtree(stale, ignore_errors=True)


def _tune_gc(young_threshold: int) -> None:
    """Collect the young generation less often (process-wide; see Settings).

    Every in-flight mutation holds a few dozen tracked objects (coroutines, futures,
    closures); at Python's default a young collection runs every ~70 mutations on the
    writer thread. Only a default threshold is changed, never one the host app chose.
    """
    if young_threshold <= 0:
        return
    current = gc.get_threshold()
    if current[0] == 700:  # the interpreter's default
        gc.set_threshold(young_threshold, current[1], current[2])


def _has_retention(schema: Any) -> bool:
    tables = getattr(schema, "tables", None) or {}
    return any(t.retention_policy is not None for t in tables.values())
