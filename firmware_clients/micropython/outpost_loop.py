# The device's main loop: sample a sensor on schedule, keep the MQTT session up, send.
#
# `Runner.step()` does one non-blocking round, so the tests drive it step by step under
# CPython and a board calls `run_forever()`. MicroPython's ticks_ms wraps around, hence
# ticks_diff for every comparison; CPython gets equivalents from time.monotonic.

import time

try:
    from time import sleep_ms, ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_add(ticks, delta):
        return ticks + delta

    def ticks_diff(new, old):
        return new - old

    def sleep_ms(ms):
        time.sleep(ms / 1000)


try:
    from umqtt.simple import MQTTException
except ImportError:  # a port whose umqtt has no named exception
    MQTTException = Exception

RETRY_FIRST_MS = 500
RETRY_MAX_MS = 30000
IDLE_SLEEP_MS = 50
RESEND_AFTER_S = 30  # everything sent, no ack progress this long: resend the uncovered


class Runner:
    """Samples `read_sensor()` every `interval_s` (a config's `interval_s` changes it)."""

    def __init__(
        self,
        device,
        read_sensor,
        interval_s=60,
        led=None,
        retry_first_ms=RETRY_FIRST_MS,
        resend_after_s=RESEND_AFTER_S,
    ):
        self.device = device
        self.read_sensor = read_sensor
        self.interval_ms = int(interval_s * 1000)
        self.led = led  # a machine.Pin or None: lit while connected
        self.user_on_config = device.on_config
        device.on_config = self._apply_config
        now = ticks_ms()
        self.next_sample = now
        self.retry_at = now
        self.retry_first_ms = retry_first_ms
        self.retry_ms = retry_first_ms
        self.next_ping = now
        self.failures = 0
        # A broker may PUBACK a reading and lose it in a crash before saving it: when
        # everything is sent and the ack has not moved for this long, send it all again.
        self.resend_after_ms = int(resend_after_s * 1000)
        self.progress_at = now
        self.last_covered = device.covered

    def _apply_config(self, config):
        if config and "interval_s" in config:
            interval_ms = int(float(config["interval_s"]) * 1000)
            if interval_ms > 0:
                self.interval_ms = interval_ms
                self.next_sample = ticks_add(ticks_ms(), interval_ms)
        if self.user_on_config is not None:
            self.user_on_config(config)

    def step(self):
        """Sample if due, (re)connect if due, send what is queued, handle what arrived."""
        now = ticks_ms()
        if ticks_diff(now, self.next_sample) >= 0:
            self.next_sample = ticks_add(now, self.interval_ms)
            reading = self.read_sensor()
            if reading is not None:
                self.device.record(reading)
        if not self.device.connected and ticks_diff(now, self.retry_at) >= 0:
            self._guard(self._connect)
        if self.device.connected:
            self._guard(self._exchange)

    def _connect(self):
        self.device.connect()
        self.retry_ms = self.retry_first_ms
        self._show(True)

    def _exchange(self):
        self._resend_if_stalled()
        self.device.pump()
        self.device.poll()
        keepalive_ms = self.device.keepalive_s * 500  # ping at half the keepalive
        if keepalive_ms and ticks_diff(ticks_ms(), self.next_ping) >= 0:
            self.device.ping()
            self.next_ping = ticks_add(ticks_ms(), keepalive_ms)

    def _resend_if_stalled(self):
        device, now = self.device, ticks_ms()
        waiting = len(device.queue) and device.queue.after(device.sent) is None
        if device.covered != self.last_covered or not waiting:
            self.last_covered, self.progress_at = device.covered, now
        elif ticks_diff(now, self.progress_at) >= self.resend_after_ms:
            device.log("outpost: no ack for a while, sending the uncovered readings again")
            device.sent = 0
            self.progress_at = now

    def _guard(self, action):
        try:
            action()
        except (OSError, MQTTException) as exc:
            self.failures += 1
            self.device.log(f"outpost: offline ({exc!r}), retry in {self.retry_ms} ms")
            self.device.drop()
            self._show(False)
            self.retry_at = ticks_add(ticks_ms(), self.retry_ms)
            self.retry_ms = min(self.retry_ms * 2, RETRY_MAX_MS)

    def _show(self, on):
        if self.led is not None:
            self.led.value(1 if on else 0)

    def run_forever(self):
        while True:
            self.step()
            sleep_ms(IDLE_SLEEP_MS)
