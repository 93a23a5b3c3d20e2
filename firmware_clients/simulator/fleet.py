"""A fleet of simulated devices on one thread: the library API of the simulator.

One thread (``outpost-sim-fleet``) drives every device: it ticks them (readings due,
reconnects due, random disconnects), then waits with ``poll`` on all their sockets and
hands each its read and write events. One thread for N devices keeps a 100-device
benchmark from costing 100 threads on a Pi. The public counters are read under the
same lock the thread holds while it works, so a snapshot is consistent.
"""

from __future__ import annotations

import math
import random
import select
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from firmware_clients.simulator.device import (
    DeviceOptions,
    ReadingFactory,
    SimDevice,
    greenhouse_reading,
)

MAX_WAIT_S = 0.05  # how long stop() and drop() may wait for the thread to notice
JOIN_DEADLINE_S = 10.0
POLL_S = 0.01


class Fleet:
    """N simulated devices publishing readings with (boot, seq) and tracking their acks.

    ``devices``: (ID, password) pairs, as ``outpost device add ID --json`` gives them.
    ``topic`` / ``config_topic``: with ``{device}`` for the ID (``config_topic=None``: no
    config subscription). ``rate_hz``: readings per second per device; ``math.inf``
    makes readings as fast as acks free room in a window of ``window`` uncovered ones.
    ``max_readings``: each device stops after that many (None: never). ``codec``:
    ``cbor`` or ``json``. ``max_queue``: uncovered readings a device keeps; beyond, the
    oldest is dropped and counted. ``disconnect_every_s``: mean time between random
    abrupt disconnects per device (None: never); a device reconnects after
    ``reconnect_delay_s``. ``clock_skew_s``: each device's clock is off by a random
    amount within +-this, seen in ``time_field`` (ms since the epoch; None: no such
    field). ``seed`` makes boots, readings and disconnect times repeatable.
    ``resend_after_s``: a device whose readings are all sent but whose ack has not moved
    for this long sends every uncovered one again (a broker that restarted without its
    last changes PUBACKed readings it then lost; the gateway dedupes the copies).
    """

    def __init__(
        self,
        devices: Sequence[tuple[str, str]],
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        topic: str = "greenhouse/{device}/reading",
        config_topic: str | None = "greenhouse/{device}/config",
        rate_hz: float = 1.0,
        codec: str = "cbor",
        max_readings: int | None = None,
        window: int = 100,
        max_queue: int = 100_000,
        disconnect_every_s: float | None = None,
        reconnect_delay_s: float = 0.1,
        clock_skew_s: float = 0.0,
        time_field: str | None = None,
        make_reading: ReadingFactory = greenhouse_reading,
        keepalive_s: int = 60,
        inflight: int = 100,
        seed: int | None = None,
        resend_after_s: float = 5.0,
    ) -> None:
        if rate_hz <= 0:
            raise ValueError(
                f"rate_hz must be positive (math.inf: as fast as acked), not {rate_hz}"
            )
        if clock_skew_s and time_field is None:
            raise ValueError("clock_skew_s needs a time_field to show in")
        options = DeviceOptions(
            host=host,
            port=port,
            topic=topic,
            config_topic=config_topic,
            codec=codec,
            rate_hz=rate_hz,
            max_readings=max_readings,
            window=window,
            max_queue=max_queue,
            disconnect_every_s=disconnect_every_s,
            reconnect_delay_s=reconnect_delay_s,
            time_field=time_field,
            keepalive_s=keepalive_s,
            inflight=inflight,
            make_reading=make_reading,
            resend_after_s=resend_after_s,
        )
        rng = random.Random(seed)
        self.devices: dict[str, SimDevice] = {}
        for device_id, password in devices:
            device_rng = random.Random(rng.getrandbits(64))
            skew = device_rng.uniform(-clock_skew_s, clock_skew_s)
            self.devices[device_id] = SimDevice(device_id, password, options, device_rng, skew)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None  # what ended the thread, if it failed

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> Fleet:
        """Start the fleet's thread; the devices connect and begin their readings."""
        if self._thread is not None:
            raise RuntimeError("the fleet was started already")
        self._thread = threading.Thread(target=self._run, name="outpost-sim-fleet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Disconnect every device and join the thread; safe to call twice."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(JOIN_DEADLINE_S)
            assert not self._thread.is_alive(), "the fleet thread did not stop"

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what the devices did ---------------------------------------------------------------

    def _each(self, get: Callable[[SimDevice], Any]) -> dict[str, Any]:
        with self._lock:
            return {device_id: get(device) for device_id, device in self.devices.items()}

    @property
    def made(self) -> dict[str, int]:
        """Per device, the readings made so far (its newest seq)."""
        return self._each(lambda d: d.seq)

    @property
    def published(self) -> dict[str, int]:
        """Per device, the newest seq handed to the broker at least once."""
        return self._each(lambda d: d.published)

    @property
    def covered(self) -> dict[str, int]:
        """Per device, the newest seq an ack of its boot covered."""
        return self._each(lambda d: d.covered)

    @property
    def boots(self) -> dict[str, int]:
        return self._each(lambda d: d.boot)

    @property
    def resent(self) -> dict[str, int]:
        """Per device, publishes of a reading sent before (after a reconnect)."""
        return self._each(lambda d: d.resent)

    @property
    def dropped(self) -> dict[str, int]:
        """Per device, readings dropped unacked because the queue was full."""
        return self._each(lambda d: d.dropped)

    @property
    def disconnects(self) -> dict[str, int]:
        """Per device, connections that ended (random, asked for, or lost)."""
        return self._each(lambda d: d.disconnects)

    def configs(self, device_id: str) -> list[Any]:
        """What ``device_id`` received on its config topic, in order (None: cleared)."""
        with self._lock:
            return list(self.devices[device_id].configs)

    def totals(self) -> dict[str, int]:
        """The fleet's sums: made, published, covered, resent, dropped, disconnects."""
        with self._lock:
            devices = list(self.devices.values())
            return {
                "made": sum(d.seq for d in devices),
                "published": sum(d.published for d in devices),
                "covered": sum(d.covered for d in devices),
                "resent": sum(d.resent for d in devices),
                "dropped": sum(d.dropped for d in devices),
                "disconnects": sum(d.disconnects for d in devices),
            }

    def drop(self, device_id: str | None = None) -> None:
        """Make one device (or all) lose its connection abruptly; it reconnects and resends."""
        with self._lock:
            targets = [self.devices[device_id]] if device_id else list(self.devices.values())
            for device in targets:
                device.drop_requested = True

    def stop_readings(self) -> None:
        """No device makes another reading; queued ones are still sent until acked."""
        with self._lock:
            for device in self.devices.values():
                device.readings_stopped = True

    def wait_covered(self, timeout_s: float) -> bool:
        """Wait until every reading made by now is covered by an ack; False at the deadline."""
        target = self.made
        deadline = time.monotonic() + timeout_s
        while True:
            covered = self.covered
            if all(covered[d] >= seq for d, seq in target.items()):
                return True
            if time.monotonic() >= deadline or self.error is not None:
                return False
            time.sleep(POLL_S)

    # --- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._round()
        except BaseException as exc:  # kept for the caller: a thread's exception is lost
            self.error = exc
            raise
        finally:
            with self._lock:
                for device in self.devices.values():
                    device.close()

    def _round(self) -> None:
        poller = select.poll()
        by_fd: dict[int, SimDevice] = {}
        with self._lock:
            now = time.monotonic()
            for device in self.devices.values():
                device.tick(now)
                fd = device.socket_fd()
                if fd is not None:
                    by_fd[fd] = device
                    events = select.POLLIN | (select.POLLOUT if device.want_write() else 0)
                    poller.register(fd, events)
            wake = min((d.next_deadline() for d in self.devices.values()), default=math.inf)
        timeout_s = min(max(wake - time.monotonic(), 0.0), MAX_WAIT_S)
        ready = poller.poll(timeout_s * 1000)
        with self._lock:
            for fd, events in ready:
                device = by_fd[fd]
                if events & select.POLLOUT:
                    device.on_writable()
                if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    device.on_readable()
