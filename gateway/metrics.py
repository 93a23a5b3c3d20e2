"""``/metrics``: the gateway's counters in Prometheus's text format (version 0.0.4).

Written by hand (a few dozen lines) rather than with ``prometheus-client``: the figures
already live in the store and the process, and one more dependency on a Raspberry Pi
would buy nothing here. docs/metrics.md lists every metric and what moves it.

Every figure is read at scrape time from a public attribute of its owner (the writer's
stats, the runtime's histograms, the subscription engine, the bridge's stats): counting
stays a plain ``+= 1`` on the owner's own thread, and nothing below this module imports
it. What lives above the gateway (the HTTP server's connections, the MQTT bridge) comes
in as a ``Source`` its owner registers with the HTTP server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gateway.gateway import Gateway
from gateway.histogram import Histogram
from gateway.proc_stats import proc_field

if TYPE_CHECKING:
    from gateway.http.protocol import ConnectionGuard
    from gateway.mqtt.bridge import Bridge

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Kind = Literal["counter", "gauge"]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    help: str
    value: float


@dataclass(frozen=True)
class Labelled:
    """One counter or gauge per value of one label (a small, fixed set of values)."""

    name: str
    kind: Kind
    help: str
    label: str
    values: Mapping[str, float]


@dataclass(frozen=True)
class Histograms:
    """A histogram, or one per value of ``label`` (``label`` empty: one, keyed "")."""

    name: str
    help: str
    series: Mapping[str, Histogram]
    label: str = ""


Family = Metric | Labelled | Histograms
Source = Callable[[], list[Family]]


def render(metrics: list[Family]) -> str:
    """The exposition text: ``# HELP`` and ``# TYPE`` once per family, then its samples."""
    lines: list[str] = []
    for m in metrics:
        text = m.help.replace("\\", "\\\\").replace("\n", "\\n")
        kind = m.kind if not isinstance(m, Histograms) else "histogram"
        lines += [f"# HELP {m.name} {text}", f"# TYPE {m.name} {kind}"]
        if isinstance(m, Metric):
            lines.append(f"{m.name} {m.value!r}")
        elif isinstance(m, Labelled):
            lines += [f'{m.name}{{{m.label}="{v}"}} {n!r}' for v, n in m.values.items()]
        else:
            for value, histogram in m.series.items():
                lines += _histogram_lines(
                    m.name, f'{m.label}="{value}",' if m.label else "", histogram
                )
    return "\n".join(lines) + "\n"


def _histogram_lines(name: str, labels: str, histogram: Histogram) -> list[str]:
    total = histogram.sum  # read first: the buckets may only be ahead of it, never behind
    buckets = histogram.cumulative()
    lines = [f'{name}_bucket{{{labels}le="{_le(bound)}"}} {n}' for bound, n in buckets]
    tail = f"{{{labels.rstrip(',')}}}" if labels else ""
    return [*lines, f"{name}_sum{tail} {total!r}", f"{name}_count{tail} {buckets[-1][1]}"]


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def collect(gateway: Gateway, proc: Path = Path("/proc/self")) -> list[Family]:
    store = gateway.store
    stats, quota = store.writer.stats, store.writer.quota
    metrics: list[Family] = [
        Metric("outpost_writer_commits_total", "counter", "COMMITs of the writer", stats.commits),
        Metric("outpost_writer_jobs_total", "counter", "writes committed", stats.jobs),
        Metric(
            "outpost_writer_failed_commits_total",
            "counter",
            "batches whose COMMIT failed (disk full, I/O error)",
            stats.failed_commits,
        ),
        Metric(
            "outpost_outbox_bytes",
            "gauge",
            "replication outbox: unacknowledged bytes as the quota counts them",
            quota.used,
        ),
        Metric(
            "outpost_outbox_dropped_total",
            "counter",
            "outbox entries dropped by outbox_overflow = drop_oldest",
            quota.dropped,
        ),
        Metric("outpost_replication_epoch", "gauge", "the store's replication epoch", store.epoch),
        Metric(
            "outpost_clock_trusted",
            "gauge",
            "1 when the wall clock is trusted (NTP-synchronised), else 0",
            1.0 if store.clock.wall_trusted else 0.0,
        ),
        Metric(
            "outpost_disk_full",
            "gauge",
            "1 while writes are refused because the data directory's disk is full, else 0",
            1.0 if store.disk.full else 0.0,
        ),
        Metric(
            "outpost_data_dir_free_bytes",
            "gauge",
            "bytes free for the gateway on the data directory's filesystem",
            store.disk.free_bytes(),
        ),
    ]
    written = proc_field(proc / "io", "write_bytes:")
    if written is not None:
        metrics.append(
            Metric(
                "outpost_process_written_bytes_total",
                "counter",
                "bytes this process caused to be written to storage (the SD wear meter)",
                written,
            )
        )
    rss = proc_field(proc / "status", "VmRSS:")
    if rss is not None:
        metrics.append(
            Metric("outpost_process_resident_bytes", "gauge", "resident memory", rss * 1024)
        )
    return metrics + _store_metrics(gateway) + _call_metrics(gateway) + _sync_metrics(gateway)


def _store_metrics(gateway: Gateway) -> list[Family]:
    store = gateway.store
    stats = store.writer.stats
    return [
        Metric(
            "outpost_writer_fsyncs_total",
            "counter",
            "COMMITs of durable batches, each one fsync of the WAL (synchronous = FULL); "
            "non-durable batches (synchronous = NORMAL) and checkpoints are not counted",
            stats.durable_commits,
        ),
        Histograms(
            "outpost_writer_batch_jobs",
            "writes per COMMIT (group commit), failed COMMITs not counted",
            {"": stats.batch_histogram},
        ),
        Metric(
            "outpost_writer_queued_jobs",
            "gauge",
            "writes waiting for the writer thread",
            store.writer.queued,
        ),
        Metric(
            "outpost_readers_queued_jobs",
            "gauge",
            "reads waiting for a reader thread",
            store.readers.queued,
        ),
        Metric(
            "outpost_store_checkpoints_total",
            "counter",
            "WAL checkpoints done (each fsyncs the database file)",
            store.checkpointer.checkpoints,
        ),
    ]


def _call_metrics(gateway: Gateway) -> list[Family]:
    runtime = gateway.runtime
    return [
        Histograms(
            "outpost_function_duration_seconds",
            "seconds from call to answer of one-shot calls (HTTP API, sync socket, MQTT "
            "RPC, scheduled actions), by kind; live-query reruns and MQTT ingest not included",
            {str(kind): h for kind, h in runtime.durations.items()},
            label="kind",
        ),
        Labelled(
            "outpost_function_failures_total",
            "counter",
            "one-shot calls answered with an error, by kind",
            "kind",
            {str(kind): n for kind, n in runtime.failures.items()},
        ),
    ]


def _sync_metrics(gateway: Gateway) -> list[Family]:
    engine = gateway.sync
    return [
        Metric(
            "outpost_sync_sessions",
            "gauge",
            "open sync sessions (sync sockets and the MQTT publish rules' own session)",
            len(engine.sessions),
        ),
        Metric(
            "outpost_sync_subscriptions",
            "gauge",
            "live queries held by the open sync sessions",
            engine.subscriptions,
        ),
        Metric(
            "outpost_sync_rounds_total",
            "counter",
            "live-query rerun rounds (one snapshot each)",
            engine.rounds,
        ),
        Histograms(
            "outpost_sync_round_duration_seconds",
            "seconds the queries of one live-query round took on their snapshot, queue "
            "wait for a reader included",
            {"": engine.round_seconds},
        ),
        Metric(
            "outpost_sync_query_runs_total",
            "counter",
            "query executions in rerun rounds (a query shared by sessions runs once)",
            engine.executions,
        ),
    ]


def sync_socket_metrics(open_sockets: int) -> list[Family]:
    """The HTTP server's open sync WebSockets."""
    return [Metric("outpost_sync_sockets", "gauge", "open sync WebSockets", open_sockets)]


def connection_metrics(guard: ConnectionGuard) -> list[Family]:
    """The API server's connections, as its ``ConnectionGuard`` counts them."""
    return [
        Metric("outpost_http_connections", "gauge", "open API connections", guard.open),
        Metric(
            "outpost_http_connections_refused_total",
            "counter",
            "connections refused at the cap (max_connections)",
            guard.refused,
        ),
        Metric(
            "outpost_http_connections_evicted_total",
            "counter",
            "idle or slow connections closed at the cap for a new one",
            guard.evicted,
        ),
    ]


def bridge_metrics(bridge: Bridge) -> list[Family]:
    """The MQTT bridge's counters (``BridgeStats``) and its state."""
    stats = bridge.stats
    counters = (
        ("received", "messages received from the broker", stats.received),
        ("applied", "messages whose mutation committed", stats.applied),
        ("duplicates", "redeliveries recognised and not applied again", stats.duplicates),
        ("dead_letters", "messages written to the dead-letter table", stats.dead),
        ("retained_skipped", "retained messages ignored on ingest", stats.retained_skipped),
        ("answered", "device RPC calls answered", stats.answered),
        ("published", "PUBLISHes sent: acks, publish rules, RPC answers", stats.published),
        ("write_retries", "ingest writes retried after a failed COMMIT", stats.retries),
    )
    metrics: list[Family] = [
        Metric(f"outpost_mqtt_{name}_total", "counter", text, value)
        for name, text, value in counters
    ]
    return [
        *metrics,
        Metric(
            "outpost_mqtt_held_messages",
            "gauge",
            "messages received and not yet acknowledged",
            bridge.pending,
        ),
        Metric(
            "outpost_mqtt_connected",
            "gauge",
            "1 while the bridge is connected to its broker",
            1.0 if bridge.connected else 0.0,
        ),
    ]
