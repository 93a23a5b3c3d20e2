"""The ``Gateway``: one object that owns every part of a running Outpost.

Start order: store (threads) -> app -> schema applied (indexes built) -> runtime.
Stop order is the reverse; every thread is joined before ``close`` returns, and
closing twice is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.config import Settings
from gateway.errors import (
    AppLoadError,
    SchemaDefinitionError,
    SchemaEnforcementError,
    StoreClosedError,
)
from gateway.runtime import logs
from gateway.runtime.functions import Kind
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


class Gateway:
    """A running gateway: its store, its app and the runtime between them."""

    def __init__(
        self, settings: Settings, store: Store, app: App, runtime: Runtime, scheduler: Scheduler
    ) -> None:
        self.settings = settings
        self.scheduler = scheduler
        self.store = store
        self.app = app
        self.runtime = runtime
        self._closed = False
        self.app_dir: Path = app.directory.parent
        self.app_error: str | None = None  # why the app dir is not what is served
        self._tasks: list[asyncio.Task[None]] = []
        # Live queries: the sync sessions' subscriptions, kept current from the write log.
        self.sync = SubscriptionEngine(runtime, store.write_log, store.clock.last_ts_ns)
        if settings.retention_interval_s > 0 and _has_retention(app.schema):
            self._tasks.append(asyncio.create_task(self._retention_loop(), name="retention"))

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
    ) -> AsyncIterator[Gateway]:
        """``async with Gateway.open(app_dir, data_dir) as gw:`` a started gateway."""
        gateway = await cls.start(
            app_dir, data_dir, settings, commit_fn=commit_fn, keep_last_good=keep_last_good
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
    ) -> Gateway:
        """Load the app, open the store, apply the schema; ready to serve.

        With ``keep_last_good`` (what ``outpost serve`` uses), an app that loads and
        applies is copied into the data directory; when a later version does not load
        or its schema is refused, that copy is served instead and ``app_error`` says
        why, so a bad upgrade never stops ingest in a restart loop.
        """
        settings = settings or Settings()
        _tune_gc(settings.gc_young_threshold)
        app_dir, data_dir = Path(app_dir), Path(data_dir)
        saved = data_dir / LAST_GOOD_DIR
        app_error: str | None = None
        try:
            app = load_app(app_dir, print_fn=logs.app_print)
        except AppLoadError as exc:
            if not (keep_last_good and (saved / "convex").is_dir()):
                raise
            app_error = str(exc)
            app = load_app(saved, print_fn=logs.app_print)
        store = await Store.open(
            data_dir,
            commit_interval_ms=settings.commit_interval_ms,
            max_batch_jobs=settings.max_batch_mutations,
            reader_threads=settings.reader_threads,
            replication=replication_of(app.schema),
            commit_fn=commit_fn,
        )
        try:
            await store.write(ensure_system_tables)
            await store.write(ensure_session_requests_table)
            await store.write(ensure_storage_table)
            app, app_error = await _apply_or_fall_back(store, app, app_error, saved, keep_last_good)
        except BaseException:
            await store.close()
            app.unload()
            raise
        if app_error is not None:
            log.error(
                "the app in %s cannot be served (%s); serving the last good copy from %s",
                app_dir,
                app_error,
                saved,
            )
        elif keep_last_good:
            await asyncio.to_thread(_save_last_good, app_dir, saved)
        logs.install(app.package)
        budgets = Budgets(
            settings.query_budget_ms / 1000,
            settings.mutation_budget_ms / 1000,
            settings.action_budget_s,
        )
        runtime = Runtime(store, app, env=settings.env, budgets=budgets, site_url=settings.site_url)
        live, _ = await store.read(live_ids)
        swept = await asyncio.to_thread(runtime.blobs.sweep, live)
        if swept:
            log.info("removed %d stored files that no _storage document names", swept)
        scheduler = Scheduler(runtime)
        await scheduler.start()
        log.info("gateway %s ready: %d functions", store.gateway_id, len(app.functions))
        gateway = cls(settings, store, app, runtime, scheduler)
        gateway.app_dir, gateway.app_error = app_dir, app_error
        return gateway

    async def reload_app(self) -> App:
        """Load the app again and swap it in atomically (what ``outpost dev`` does on save).

        Calls already running finish on the old version; new calls get the new one. If
        the new version does not load or its schema is refused, ``AppLoadError`` /
        the schema error is raised and the running version stays.
        """
        new_app = load_app(self.app_dir, print_fn=logs.app_print)
        try:
            if new_app.schema is not None:
                await self.store.write(lambda tx: apply_schema(tx, new_app.schema))
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
        return new_app

    async def close(self) -> None:
        """Stop accepting calls, drain the writer, stop every thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self.sync.close()  # sync sessions first: they call into the runtime
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.scheduler.close()
        await self.store.close()
        self.runtime.close()
        logs.uninstall()
        self.app.unload()

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
        return await self.runtime.run(
            kind, path, dict(args) if args is not None else None, identity=identity, admin=admin
        )

    async def run_query(self, path: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run a query (internal ones too: in-process callers are trusted)."""
        return (await self.call("query", path, args, admin=True)).unwrap()

    async def run_mutation(self, path: str, args: Mapping[str, Any] | None = None) -> Any:
        return (await self.call("mutation", path, args, admin=True)).unwrap()

    async def run_action(self, path: str, args: Mapping[str, Any] | None = None) -> Any:
        return (await self.call("action", path, args, admin=True)).unwrap()


async def _apply_or_fall_back(
    store: Store, app: App, app_error: str | None, saved: Path, keep_last_good: bool
) -> tuple[App, str | None]:
    """Apply ``app``'s schema; if it is refused, apply the last good copy's instead."""
    try:
        if app.schema is not None:
            await store.write(lambda tx: apply_schema(tx, app.schema))
        return app, app_error
    except (SchemaEnforcementError, SchemaDefinitionError) as exc:
        if not keep_last_good or app_error is not None or not (saved / "convex").is_dir():
            raise
        app.unload()
        fallback = load_app(saved, print_fn=logs.app_print)
        if fallback.schema is not None:
            await store.write(lambda tx: apply_schema(tx, fallback.schema))
        return fallback, str(exc)


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
