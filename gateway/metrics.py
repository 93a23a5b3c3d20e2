"""``/metrics``: the gateway's counters in Prometheus's text format (version 0.0.4).

Written by hand (a few dozen lines) rather than with ``prometheus-client``: the figures
already live in the store and the process, and one more dependency on a Raspberry Pi
would buy nothing here. What is exported so far: the writer (commits, jobs, failed
commits), the bytes this process has written (the SD-card wear meter, from the kernel's
own count), resident memory, the replication outbox (counted bytes, dropped entries,
epoch) and whether the wall clock is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.gateway import Gateway

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Kind = Literal["counter", "gauge"]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    help: str
    value: float


def render(metrics: list[Metric]) -> str:
    """The exposition text: ``# HELP``, ``# TYPE`` and one sample per metric."""
    lines: list[str] = []
    for m in metrics:
        text = m.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines += [f"# HELP {m.name} {text}", f"# TYPE {m.name} {m.kind}", f"{m.name} {m.value!r}"]
    return "\n".join(lines) + "\n"


def collect(gateway: Gateway, proc: Path = Path("/proc/self")) -> list[Metric]:
    store = gateway.store
    stats, quota = store.writer.stats, store.writer.quota
    metrics = [
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
    written = _proc_field(proc / "io", "write_bytes:")
    if written is not None:
        metrics.append(
            Metric(
                "outpost_process_written_bytes_total",
                "counter",
                "bytes this process caused to be written to storage (the SD wear meter)",
                written,
            )
        )
    rss = _proc_field(proc / "status", "VmRSS:")
    if rss is not None:
        metrics.append(
            Metric("outpost_process_resident_bytes", "gauge", "resident memory", rss * 1024)
        )
    return metrics


def _proc_field(path: Path, name: str) -> float | None:
    """The first number after ``name`` in a /proc file (None where there is none)."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(name):
                return float(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return None
