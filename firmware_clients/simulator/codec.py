"""Payload codecs of the simulated devices: CBOR (cbor2) or JSON, as the gateway reads them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import cbor2

Encoder = Callable[[dict[str, Any]], bytes]


def _json(reading: dict[str, Any]) -> bytes:
    return json.dumps(reading, separators=(",", ":"), allow_nan=False).encode()


ENCODERS: dict[str, Encoder] = {"cbor": cbor2.dumps, "json": _json}


def encoder(codec: str) -> Encoder:
    """The encoder named ``codec``; ValueError naming the choices otherwise."""
    try:
        return ENCODERS[codec]
    except KeyError:
        raise ValueError(f"codec {codec!r} is not one of {sorted(ENCODERS)}") from None
