"""``outpost status``'s text: the status object as aligned lines a person reads at a glance."""

from __future__ import annotations

import time
from typing import Any

_STATES = {
    "up": "connected",
    "down": "backing off (upstream unreachable or refusing)",
    "unauthorized": "unauthorized (check upstream_key, or `outpost gateway add` on the hub)",
    "starting": "starting (no batch answered yet)",
    "off": "off (upstream_url is empty)",
}


def render(status: dict[str, Any]) -> str:
    """The lines of ``outpost status``; a missing part (gateway not running) is left out."""
    lines: list[str] = []
    if "gateway" in status:
        lines.append(f"gateway   {status['gateway']} (epoch {status['epoch']:.0f})")
    if "disk" in status:
        lines.append(f"disk      {_disk(status['disk'])}")
    if "link" in status:
        lines.append(f"link      {_link(status['link'], status['nowMs'])}")
    backlog = status.get("backlog")
    if backlog is not None:
        lines += _backlog(backlog)
    if "link" in status:
        lines.append(f"drain     {status['link']['drainRate']:.1f} entries/s over the last minute")
        lines.append(f"quota     {_quota(status['quota'], status['backlog'])}")
        lines.append(f"downlink  {_downlink(status.get('downlink'), status['nowMs'])}")
    if status.get("hub"):
        lines += _gateways(status.get("gateways") or [], status["nowMs"])
    return "\n".join(lines)


def _disk(disk: dict[str, Any]) -> str:
    free = f"{_size(disk['freeBytes'])} free in {disk['directory']}"
    if not disk["full"]:
        return f"ok, {free}"
    return (
        f"FULL: writes are refused ({free}); they resume by themselves once more than "
        f"{_size(disk['resumeAboveBytes'])} is free (docs/disk-full.md)"
    )


def _link(link: dict[str, Any], now_ms: float) -> str:
    text = str(_STATES.get(link["state"], link["state"]))
    if link.get("sinceMs") is not None:
        text += f" since {_clock(link['sinceMs'])} ({_ago(now_ms - link['sinceMs'])})"
    if link.get("upstream"):
        text += f", to {link['upstream']}"
    return text


def _backlog(backlog: dict[str, Any]) -> list[str]:
    age = backlog.get("oldestAgeMs")
    oldest = "" if age is None else f", oldest {_ago(age)} old"
    return [
        f"backlog   {backlog['entries']:.0f} entries, {_size(backlog['bytes'])}{oldest}",
        f"acked     seq {backlog['acked']:.0f} (newest written {backlog['newest']:.0f})",
    ]


def _quota(quota: dict[str, Any], backlog: dict[str, Any]) -> str:
    limit = quota["maxBytes"]
    used = f"{_size(backlog['quotaBytes'])} of {_size(limit) if limit else 'no limit'}"
    return f"{used}, {quota['overflow']}, {backlog['dropped']:.0f} entries dropped"


def _downlink(down: dict[str, Any] | None, now_ms: float) -> str:
    if down is None:
        return 'off (no .replicate("down") tables, no upstream_url, or a hub)'
    text = _link(down, now_ms)
    if down["caughtUp"]:
        text += ", caught up"
    elif down.get("lagMs") is not None:
        text += f", lag {_ago(down['lagMs'])} since the last applied change"
    cursors = ", ".join(f"{t} {c['cursor']:.0f}" for t, c in down["tables"].items())
    return f"{text}; cursors {cursors}"


def _gateways(rows: list[dict[str, Any]], now_ms: float) -> list[str]:
    lines = [f"hub       {len(rows)} gateway(s)"]
    for row in rows:
        parts = [row["gateway"], "registered" if row["registered"] else "revoked"]
        if "lastSeenMs" in row:
            parts.append(f"last seen {_ago(now_ms - row['lastSeenMs'])} ago")
            parts.append(f"epoch {row['epoch']:.0f} applied {row['applied']:.0f}")
        else:
            parts.append("never pushed")
        if "behind" in row:
            parts.append(f"behind {row['behind']:.0f} (backlog it reported)")
        lines.append("  " + "  ".join(parts))
    return lines


def _ago(ms: float) -> str:
    s = max(0.0, ms) / 1000
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


def _clock(ms: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))
