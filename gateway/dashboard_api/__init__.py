"""The LAN dashboard's backend: admin-only system functions under ``_system/dashboard/``.

The page (``gateway/dashboard/``) talks to the gateway only through its public
protocols; everything it shows beyond the app's own functions comes from these internal
functions, installed in the runtime like ``_system/replication:status`` (found only by
admin callers). Queries that read tables are live through the sync protocol; those that
answer from memory are polled. ``docs/dashboard.md`` ("The page's functions") is their
contract.

``Dashboard`` owns what they need beyond the store: the table counts, the log ring, the
write meter. The gateway starts it in its "dashboard" step and stops it first; the
service hands it the MQTT bridge once that runs (``bridge``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.config import Settings
from gateway.dashboard_api import (
    app_functions,
    data,
    edits,
    health,
    logs,
    mqtt,
    readings,
    scheduler,
)
from gateway.dashboard_api.counts import TableCounts
from gateway.runtime.runtime import Runtime

__all__ = ["Dashboard"]

log = logging.getLogger("gateway.dashboard")

LOG_LEVEL = logging.INFO  # gateway records below this stay out of the ring
# How long the start waits for the first table count (``TableCounts``): a store of a
# few million documents is counted in this time; a bigger one is counted on after.
COUNT_WAIT_S = 1.0
# After the counts arrive late, live queries are rerun now and again after this long
# plus the query budget (see ``TableCounts``).
RERUN_MARGIN_S = 1.0


class Dashboard:
    """The dashboard's functions and the state they read; ``close`` is idempotent."""

    def __init__(
        self,
        runtime: Runtime,
        settings: Settings,
        data_dir: Path,
        app_error: Callable[[], str | None],
    ) -> None:
        self._runtime = runtime
        self.counts = TableCounts(runtime.store)
        self.logs = logs.LogRing()
        self.logs.handler.setLevel(LOG_LEVEL)
        self.wear = health.WearMeter(health.proc_written())
        self.bridge: Any | None = None  # gateway.mqtt.bridge.Bridge, set by the service
        self._functions = [
            *data.functions(self.counts),
            *edits.functions(),
            *app_functions.functions(lambda: runtime.app),
            *logs.functions(self.logs),
            *mqtt.functions(settings, data_dir, lambda: self.bridge),
            *scheduler.functions(),
            *health.functions(runtime.store, self.wear, app_error),
            *readings.functions(),
        ]
        self._started = False
        self._notice: logs.LiveNotice | None = None

    async def start(
        self,
        on_counted: Callable[[], None] | None = None,
        touch: Callable[[list[tuple[int, bytes]]], None] | None = None,
    ) -> Dashboard:
        """Install the functions, take log records and lines, count the tables (waiting
        up to ``COUNT_WAIT_S``); ``on_counted`` (live queries rerun) is called when the
        first count is in, ``touch`` (the sync engine's) when the log has new entries."""
        for fn in self._functions:
            self._runtime.install(fn)
        if touch is not None:
            self._notice = logs.LiveNotice(asyncio.get_running_loop(), touch)
            self.logs.on_added = self._notice
        self._runtime.log_sink = self.logs.add_lines
        logging.getLogger().addHandler(self.logs.handler)
        self._started = True
        again_s = self._runtime.budgets.query_s + RERUN_MARGIN_S
        self.counts.start(on_counted, again_after_s=again_s)
        if not await self.counts.wait(COUNT_WAIT_S):
            log.info("counting the tables' documents goes on after the start")
        return self

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        self.logs.on_added = None
        if self._notice is not None:
            self._notice.close()
        logging.getLogger().removeHandler(self.logs.handler)
        if self._runtime.log_sink == self.logs.add_lines:
            self._runtime.log_sink = None
        await self.counts.close()
