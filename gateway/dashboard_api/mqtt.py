"""Devices and MQTT for the dashboard: devices with their activity, add and remove a
device, dead letters, publish rules.

Device figures live in the bridge's memory (``DeviceActivity``) and the registry is a
file, so ``mqtt:devices`` and ``mqtt:publishRules`` are polled; ``mqtt:deadLetters`` reads
the ``_dead_letters`` table and is live. Adding and removing change files (and signal
the broker): they are actions, their file work off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from gateway.config import Settings
from gateway.mqtt import registry
from gateway.mqtt.dead_letters import DEAD_LETTERS_TABLE
from gateway.runtime.functions import RegisteredFunction
from gateway.schema import pagination_opts, v

DEVICES_PATH: Final = "_system/dashboard/mqtt:devices"
ADD_PATH: Final = "_system/dashboard/mqtt:addDevice"
REMOVE_PATH: Final = "_system/dashboard/mqtt:removeDevice"
DEAD_LETTERS_PATH: Final = "_system/dashboard/mqtt:deadLetters"
RULES_PATH: Final = "_system/dashboard/mqtt:publishRules"
TEXT_PREVIEW_BYTES: Final = 1024

BridgeFn = Callable[[], Any]  # the running ``gateway.mqtt.bridge.Bridge``, or None


def functions(settings: Settings, data_dir: Path, bridge: BridgeFn) -> list[RegisteredFunction]:
    """The five functions; ``bridge`` is asked at each call (it starts after them)."""
    kind = registry.registry_of(settings.mqtt_broker)

    async def devices(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        running = bridge()
        seen = running.activity.devices() if running is not None else {}
        registered = registry.list_devices(data_dir) if kind != "none" else []
        rows = [
            {"device": name, "registered": name in registered} | _activity(seen.get(name))
            for name in sorted(set(registered) | set(seen))
        ]
        return {"registry": kind, "bridge": _bridge(running), "devices": rows}

    async def add(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        device = _writable(kind, args["device"])
        password = await asyncio.to_thread(registry.add_device, data_dir, device)
        await asyncio.to_thread(registry.reload_broker, data_dir, kind)
        return {
            "device": device,
            "username": device,
            "password": password,
            "host": settings.mqtt_host,
            "port": float(settings.mqtt_port),
        }

    async def remove(ctx: Any, args: dict[str, Any]) -> None:
        device = _writable(kind, args["device"])
        await asyncio.to_thread(registry.remove_device, data_dir, device)
        await asyncio.to_thread(registry.reload_broker, data_dir, kind)

    async def rules(ctx: Any, args: dict[str, Any]) -> list[dict[str, Any]]:
        running = bridge()
        return [] if running is None else running.publisher.rules()

    device_arg = {"device": v.string()}
    return [
        RegisteredFunction("query", "internal", devices, {}, path=DEVICES_PATH),
        RegisteredFunction("action", "internal", add, device_arg, path=ADD_PATH),
        RegisteredFunction("action", "internal", remove, device_arg, path=REMOVE_PATH),
        RegisteredFunction(
            "query",
            "internal",
            _dead_letters,
            {"paginationOpts": pagination_opts, "device": v.optional(v.string())},
            path=DEAD_LETTERS_PATH,
        ),
        RegisteredFunction("query", "internal", rules, {}, path=RULES_PATH),
    ]


def _writable(kind: registry.Registry, device: str) -> str:
    if kind == "none":
        raise registry.RegistryError(
            "devices are registered here only for the managed broker (mqtt_broker = "
            "managed) or Debian's mosquitto service with Outpost's drop-in "
            f"({registry.SYSTEM_DROP_IN}, see docs/install.md)"
        )
    return registry.checked_id(device)


def _activity(seen: dict[str, Any] | None) -> dict[str, Any]:
    if seen is None:
        return {
            "messages": 0.0,
            "lastMessageMs": None,
            "lastTopic": None,
            "lastBytes": None,
            "perMinute": 0.0,
        }
    return seen


def _bridge(running: Any) -> dict[str, Any] | None:
    if running is None:
        return None
    stats = running.stats
    figures = ("received", "applied", "duplicates", "dead", "acked", "published")
    return {"connected": running.connected} | {k: float(getattr(stats, k)) for k in figures}


async def _dead_letters(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
    query = ctx.db.system.query(DEAD_LETTERS_TABLE).order("desc")
    device = args.get("device")
    if device is not None:
        query = query.filter(lambda q: q.eq(q.field("device"), device))
    result: dict[str, Any] = await query.paginate(args["paginationOpts"])
    result["page"] = [doc | {"payloadText": _text(doc.get("payload"))} for doc in result["page"]]
    return result


def _text(payload: Any) -> str | None:
    if not isinstance(payload, bytes):
        return None
    try:
        return payload[:TEXT_PREVIEW_BYTES].decode("utf-8")
    except UnicodeDecodeError:
        return None
