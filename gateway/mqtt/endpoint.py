"""Where the bridge connects: the managed broker or an external one (``mqtt_url``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerEndpoint:
    """A broker address and the gateway's (the bridge's) credentials on it."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line
    tls: bool = False

    def describe(self) -> str:
        """``mqtt://user@host:port``, without the password, for log lines."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def endpoint_from_url(url: str) -> BrokerEndpoint:
    """``mqtt://user:password@host:port`` (or ``mqtts://``) as an endpoint.

    ``ValueError`` with a message a user can act on (the settings check already refused
    most bad URLs; an empty one reaches here for ``mqtt_broker = "external"``).
    """
    if not url:
        raise ValueError(
            'mqtt_broker is "external" but mqtt_url is empty; set mqtt_url = '
            '"mqtt://user:password@host:1883" (or mqtts:// for TLS)'
        )
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError("mqtt_url must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError("mqtt_url names no host (mqtt://user:password@host:1883)")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError("mqtt_url has a port that is not a number between 1 and 65535") from None
    return BrokerEndpoint(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=parts.scheme == "mqtts",
    )
