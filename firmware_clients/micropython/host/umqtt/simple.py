"""A tiny MQTT 3.1.1 client for CPython with MicroPython's ``umqtt.simple`` interface.

Only for running the device code on a computer (tests, trying it out): on a board the
firmware's own ``umqtt.simple`` is used and this directory is not copied. It speaks just
what the device client needs (MQTT 3.1.1, OASIS standard, section 3): CONNECT with
credentials, PUBLISH at QoS 0/1 (a QoS 1 publish waits for its PUBACK), SUBSCRIBE,
PINGREQ and DISCONNECT; a QoS 1 PUBLISH received is PUBACKed after the callback ran.

As in umqtt.simple, errors are exceptions: ``MQTTException`` for a refused CONNECT or
SUBSCRIBE, ``OSError`` for a broken connection (a closed socket, a timeout).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 0x82, 0x90, 0xC0, 0xD0, 0xE0
# Not in umqtt.simple: a board's socket blocks forever; a test must not.
SOCKET_TIMEOUT_S = 10.0


class MQTTException(Exception):
    """A refused CONNECT (its return code) or SUBSCRIBE."""


def _field(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _remaining_length(length: int) -> bytes:
    out = bytearray()  # section 2.2.3: 7 bits a byte, high bit = more follows
    while True:
        length, digit = length >> 7, length & 0x7F
        out.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(out)


class MQTTClient:
    """``umqtt.simple.MQTTClient`` for CPython (its signature and its methods)."""

    def __init__(
        self,
        client_id: str | bytes,
        server: str,
        port: int = 0,
        user: str | bytes | None = None,
        password: str | bytes | None = None,
        keepalive: int = 0,
        ssl: bool = False,
        ssl_params: dict[str, object] | None = None,
    ) -> None:
        if ssl:
            raise NotImplementedError("the CPython shim speaks plain TCP only")
        self.client_id = _as_bytes(client_id)
        self.server, self.port = server, port or 1883
        self.user, self.pswd = user, password
        self.keepalive = keepalive
        self.sock: socket.socket | None = None
        self.cb: Callable[[bytes, bytes], None] | None = None
        self.pid = 0

    def set_callback(self, f: Callable[[bytes, bytes], None]) -> None:
        self.cb = f

    def connect(self, clean_session: bool = True) -> bool:
        """CONNECT and wait for CONNACK; True when the broker kept a session."""
        self.sock = socket.create_connection((self.server, self.port), SOCKET_TIMEOUT_S)
        flags = 0x02 if clean_session else 0
        payload = _field(self.client_id)
        if self.user is not None:
            flags |= 0x80
            payload += _field(_as_bytes(self.user))
            if self.pswd is not None:
                flags |= 0x40
                payload += _field(_as_bytes(self.pswd))
        header = _field(b"MQTT") + struct.pack(">BBH", 4, flags, self.keepalive)
        self._send(CONNECT, header + payload)
        kind, body = self._read_packet()
        if kind != CONNACK or len(body) != 2:
            raise MQTTException(f"expected CONNACK, got packet type 0x{kind:02x}")
        if body[1] != 0:
            raise MQTTException(body[1])
        return bool(body[0] & 1)

    def disconnect(self) -> None:
        if self.sock is not None:
            try:
                self._send(DISCONNECT, b"")
            finally:
                self.sock.close()
                self.sock = None

    def ping(self) -> None:
        self._send(PINGREQ, b"")

    def publish(
        self, topic: str | bytes, msg: str | bytes, retain: bool = False, qos: int = 0
    ) -> None:
        """PUBLISH; at QoS 1 wait for the PUBACK (dispatching what arrives meanwhile)."""
        assert qos in (0, 1), "QoS 2 is not supported (as in umqtt.simple)"
        body = _field(_as_bytes(topic))
        pid = self._next_pid() if qos else 0
        if qos:
            body += struct.pack(">H", pid)
        self._send(PUBLISH | qos << 1 | int(retain), body + _as_bytes(msg))
        if qos:
            self._wait_for(PUBACK, pid)

    def subscribe(self, topic: str | bytes, qos: int = 0) -> None:
        """SUBSCRIBE and wait for the SUBACK; MQTTException if the broker refused."""
        assert self.cb is not None, "subscribe before set_callback"
        pid = self._next_pid()
        self._send(SUBSCRIBE, struct.pack(">H", pid) + _field(_as_bytes(topic)) + bytes([qos]))
        body = self._wait_for(SUBACK, pid)
        if body[2] == 0x80:
            raise MQTTException(f"subscription to {topic!r} refused")

    def wait_msg(self) -> int | None:
        """Read and handle one packet (blocking); PUBLISH goes to the callback."""
        kind, body = self._read_packet()
        return self._handle(kind, body)

    def check_msg(self) -> int | None:
        """``wait_msg`` if a packet has started to arrive, else None at once."""
        assert self.sock is not None, "not connected"
        self.sock.settimeout(0)
        try:
            first = self.sock.recv(1)
        except BlockingIOError:
            return None
        finally:
            self.sock.settimeout(SOCKET_TIMEOUT_S)
        kind, body = self._read_rest(first)
        return self._handle(kind, body)

    # --- packets ------------------------------------------------------------------------

    def _next_pid(self) -> int:
        self.pid = self.pid % 0xFFFF + 1  # packet identifiers are 1..65535
        return self.pid

    def _send(self, first: int, body: bytes) -> None:
        if self.sock is None:
            raise OSError("not connected")
        self.sock.sendall(bytes([first]) + _remaining_length(len(body)) + body)

    def _recv_exactly(self, count: int) -> bytes:
        assert self.sock is not None
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise OSError("connection closed by the broker")
            data += chunk
        return data

    def _read_packet(self) -> tuple[int, bytes]:
        return self._read_rest(self._recv_exactly(1))

    def _read_rest(self, first: bytes) -> tuple[int, bytes]:
        if not first:
            raise OSError("connection closed by the broker")
        length, shift = 0, 0
        while True:
            digit = self._recv_exactly(1)[0]
            length |= (digit & 0x7F) << shift
            shift += 7
            if not digit & 0x80:
                break
        return first[0], self._recv_exactly(length)

    def _wait_for(self, kind: int, pid: int) -> bytes:
        while True:
            got, body = self._read_packet()
            if got & 0xF0 == kind & 0xF0 and struct.unpack(">H", body[:2])[0] == pid:
                return body
            self._handle(got, body)

    def _handle(self, kind: int, body: bytes) -> int | None:
        if kind & 0xF0 != PUBLISH:
            return None if kind == PINGRESP else kind
        qos = (kind >> 1) & 3
        (topic_len,) = struct.unpack(">H", body[:2])
        topic, rest = body[2 : 2 + topic_len], body[2 + topic_len :]
        pid = 0
        if qos:
            (pid,) = struct.unpack(">H", rest[:2])
            rest = rest[2:]
        if self.cb is not None:
            self.cb(topic, rest)
        if qos == 1:
            self._send(PUBACK, struct.pack(">H", pid))
        return None
