# An Outpost device: readings with (boot, seq) kept in flash until the gateway acks them.
#
# MicroPython-compatible (no annotations, dataclasses or typing at runtime) so that the
# tests run this very file under CPython with the umqtt shim in host/.
#
# The contract (issue 9, docs/mqtt.md): a reading is an object sent with two extra
# integer fields, `seq` (1, 2, 3 ... within a boot) and `boot`. The device's PUBACK comes
# from the broker, not from Outpost; the gateway publishes, retained, on
# `outpost/ack/{device}` the JSON {"boot": b, "seq": n} once every reading of boot b with
# seq <= n is durable. So a reading stays in the flash queue until such an ack of this
# boot covers it, and every uncovered reading is sent again, oldest first, after each
# (re)connect. Resending is safe: the gateway dedupes by (device, boot, seq).

import json

import outpost_cbor
from outpost_store import Counter, Queue
from umqtt.simple import MQTTClient

ACK_TOPIC = "outpost/ack/{device}"
DEFAULT_MAX_QUEUE = 500


def _encode_json(message):
    return json.dumps(message).encode()


CODECS = {"cbor": outpost_cbor.dumps, "json": _encode_json}


class Device:
    """One device's MQTT session and its flash state (counter and queue).

    `credentials` is what `outpost device add ID --json` prints: device, username,
    password, host, port. `on_config(config)` is called with the decoded JSON of each
    retained config message, or None when the topic was cleared.
    """

    def __init__(
        self,
        credentials,
        data_dir,
        reading_topic="greenhouse/{device}/reading",
        config_topic="greenhouse/{device}/config",
        codec="cbor",
        max_queue=DEFAULT_MAX_QUEUE,
        keepalive_s=60,
        on_config=None,
        log=print,
        client_class=MQTTClient,
    ):
        self.credentials = credentials
        self.device = credentials["device"]
        self.reading_topic = reading_topic.replace("{device}", self.device)
        self.config_topic = config_topic and config_topic.replace("{device}", self.device)
        self.ack_topic = ACK_TOPIC.replace("{device}", self.device)
        self.encode = CODECS[codec]
        self.keepalive_s = keepalive_s
        self.on_config = on_config
        self.log = log
        self.client_class = client_class
        self.client = None
        self.sent = 0  # the newest seq published on this connection
        self.covered = 0  # the newest seq of this boot an ack covered
        self.counter = Counter(data_dir)
        self.queue = Queue(data_dir, max_queue)
        self._recover()

    def _recover(self):
        if self.counter.fresh and len(self.queue):
            # Readings of a boot whose counter was lost can never be acked: drop them.
            self.counter.dropped += self.queue.clear()
            self.counter.save()
        self.counter.raise_to(self.queue.newest())
        self.log(f"outpost: boot {self.boot}, seq {self.seq}, {len(self.queue)} queued")

    @property
    def boot(self):
        return self.counter.boot

    @property
    def seq(self):
        return self.counter.seq

    @property
    def dropped(self):
        return self.counter.dropped

    @property
    def connected(self):
        return self.client is not None

    def connect(self):
        """Connect, subscribe to the ack and config topics; resending starts over."""
        creds = self.credentials
        client = self.client_class(
            self.device,
            creds["host"],
            int(creds.get("port", 1883)),
            creds["username"],
            creds["password"],
            self.keepalive_s,
        )
        client.set_callback(self._on_message)
        self.client, self.sent = client, 0
        try:
            client.connect()
            client.subscribe(self.ack_topic, 1)
            if self.config_topic:
                client.subscribe(self.config_topic, 1)
        except Exception:
            self.drop()
            raise
        host, port = creds["host"], creds.get("port", 1883)
        self.log(f"outpost: connected to {host}:{port}")

    def drop(self):
        """Forget the connection after an error (the socket is closed, no DISCONNECT)."""
        client, self.client = self.client, None
        if client is not None and client.sock is not None:
            try:
                client.sock.close()
            except OSError:
                pass
            client.sock = None

    def close(self):
        """Disconnect cleanly; the queue stays in flash."""
        client, self.client = self.client, None
        if client is not None:
            try:
                client.disconnect()
            except OSError:
                pass

    def record(self, reading):
        """Queue a reading (a dict) with the next seq; its seq."""
        seq = self.counter.next_seq()
        message = dict(reading)
        message["seq"] = seq
        message["boot"] = self.boot
        dropped = self.queue.put(seq, self.encode(message))
        if dropped:
            self.counter.dropped += dropped
            self.log(f"outpost: queue full, dropped {dropped} oldest")
        self.counter.save()  # after the file: see outpost_store
        return seq

    def pump(self):
        """Publish (QoS 1) every queued reading not yet sent on this connection."""
        while self.client is not None:
            seq = self.queue.after(self.sent)
            if seq is None:
                return
            self.client.publish(self.reading_topic, self.queue.get(seq), False, 1)
            self.sent = seq

    def poll(self):
        """Handle what has arrived (acks, config) without blocking."""
        if self.client is not None:
            self.client.check_msg()

    def ping(self):
        if self.client is not None:
            self.client.ping()

    def _on_message(self, topic, msg):
        topic = topic.decode()
        if topic == self.ack_topic:
            self._on_ack(msg)
        elif topic == self.config_topic:
            self._on_config(msg)

    def _on_ack(self, msg):
        try:
            ack = json.loads(msg)
            boot, seq = int(ack["boot"]), int(ack["seq"])
        except (ValueError, KeyError, TypeError):
            return  # an empty (cleared) or foreign ack: nothing is covered
        if boot != self.boot:
            return  # another boot's ack covers none of this boot's readings
        if seq > self.covered:
            self.covered = seq
            self.queue.cover(seq)

    def _on_config(self, msg):
        if not msg:
            config = None  # the gateway cleared the topic: no config
        else:
            try:
                config = json.loads(msg)
            except ValueError:
                self.log("outpost: config is not JSON, ignored")
                return
        self.log(f"outpost: config {config}")
        if self.on_config is not None:
            self.on_config(config)
