"""Random and malformed sync frames for the fuzz tier (``test_sync_fuzz.py``).

A small generator rather than hypothesis: each socket gets a short script of frames
(usually a valid ``Connect`` first, so the later frames reach the session, not just the
parser), drawn from one seeded ``random.Random``, so a failing run replays from its
seed. Frames are raw bytes with their WebSocket opcode: text frames may hold invalid
UTF-8, lone surrogate escapes, numbers JSON cannot carry, or nesting deeper than any
parser allows.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType

from gateway.sync.websocket import MAX_FRAME_BYTES

Frame = tuple[WSMsgType, bytes]

PATHS = (
    "notes:count",
    "notes:bodies",
    "notes:add",
    "notes:strict",
    "notes:whoami",
    "notes:refuse",
    "notes:shout",
    "notes:secret",  # internal: refused
    "notes:nope",
    "nope",
    "",
)
SERVER_TYPES = {"Transition", "MutationResponse", "ActionResponse", "FatalError", "AuthError"}
SERVER_TYPES |= {"Ping"}


def text(body: Any) -> Frame:
    return (WSMsgType.TEXT, json.dumps(body, ensure_ascii=False).encode("utf-8"))


class FrameMaker:
    """Frame scripts from one seeded generator."""

    def __init__(self, rng: random.Random, *, oversize_every: int = 500) -> None:
        self.rng = rng
        self.oversize_every = oversize_every
        self.query_set = 0
        self.identity = 0
        self.ids = set()
        self.kinds: list[tuple[Callable[[], Frame], int]] = [
            (self.message, 30),
            (self.mutated_message, 25),
            (self.mangled_text, 15),
            (self.bad_json, 6),
            (self.deep, 3),
            (self.unknown_type, 4),
            (self.binary, 3),
            (self.invalid_utf8, 3),
            (self.surrogates, 6),
            (self.huge_numbers, 5),
        ]

    def script(self) -> list[Frame]:
        """What one socket sends, in order: often a valid exchange first (so sessions get
        queries, calls and identities), then anything."""
        rng = self.rng
        self.query_set = 0  # the versions a valid next message carries
        self.identity = 0
        self.ids: set[int] = set()  # query ids subscribed
        frames = [text(self.connect())] if rng.random() < 0.85 else []
        for _ in range(rng.choice((0, 1, 2, 4, 8))):
            frames.append(self.message())
        for _ in range(rng.choice((0, 0, 1, 2, 4))):
            frames.append(self.any())
        if rng.randrange(self.oversize_every) == 0:
            frames.append(self.oversize())
        return frames

    def any(self) -> Frame:
        makers, weights = zip(*self.kinds, strict=True)
        return self.rng.choices(makers, weights)[0]()

    # --- well-formed messages (then changed) -------------------------------------------

    def connect(self) -> dict[str, Any]:
        return {
            "type": "Connect",
            "sessionId": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "connectionCount": self.rng.randint(0, 3),
            "lastCloseReason": self.rng.choice(("InitialConnect", None, "x")),
            "clientTs": 0,
        }

    def message(self) -> Frame:
        return text(self.body())

    def body(self) -> dict[str, Any]:
        rng = self.rng
        kind = rng.choice(("Modify", "Modify", "Modify", "Mutation", "Action", "Auth", "Event"))
        if kind == "Modify":
            base, new = self.query_set, self.query_set + 1
            if rng.random() < 0.1:  # out of order
                base, new = rng.choice(((base + 1, new + 1), (base, base), (base, base - 1)))
            else:
                self.query_set = new
            mods = [self.modification() for _ in range(rng.randint(0, 4))]
            return {
                "type": "ModifyQuerySet",
                "baseVersion": base,
                "newVersion": new,
                "modifications": mods,
            }
        if kind in ("Mutation", "Action"):
            return {
                "type": kind,
                "requestId": rng.randint(0, 5),
                "udfPath": self.path(),
                "args": [self.args()],
            }
        if kind == "Auth":
            token = rng.choice(("None", "None", "None", "Admin", "User", "Other"))
            base = self.identity if rng.random() < 0.9 else self.identity + 1
            self.identity += token == "None" and base == self.identity
            return {
                "type": "Authenticate",
                "baseVersion": base,
                "tokenType": token,
                "value": self.string(),
            }
        return {"type": "Event", "eventType": self.string(), "event": self.value(2)}

    def path(self) -> str:
        """Mostly the app's functions (some refuse, one is internal), now and then none."""
        rng = self.rng
        return rng.choice(PATHS[:8] if rng.random() < 0.9 else PATHS[8:])

    def modification(self) -> dict[str, Any]:
        """Mostly a valid Add (a new id) or Remove (a subscribed id), now and then not."""
        rng = self.rng
        valid = rng.random() < 0.9
        if rng.random() < 0.3 and (self.ids or not valid):
            query_id = rng.choice(sorted(self.ids)) if valid else rng.randint(0, 30)
            self.ids.discard(query_id)
            return {"type": "Remove", "queryId": query_id}
        query_id = max(self.ids, default=-1) + 1 if valid else rng.randint(0, 30)
        self.ids.add(query_id)
        mod: dict[str, Any] = {
            "type": "Add",
            "queryId": query_id,
            "udfPath": self.path(),
            "args": [self.args()],
        }
        if rng.random() < 0.2:
            mod["journal"] = rng.choice((None, self.string(), 5))
        return mod

    def args(self) -> Any:
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            return {"topic": rng.choice(("a", "b", self.string()))}
        if roll < 0.7:
            return {"topic": rng.choice(("a", "b")), "body": self.string()}
        if roll < 0.8:
            return {"text": self.string()}
        if roll < 0.9:
            return {}
        return self.value(3)

    def mutated_message(self) -> Frame:
        """A message with one field replaced, removed or added."""
        body = self.body()
        rng = self.rng
        key = rng.choice(list(body))
        roll = rng.random()
        if roll < 0.5:
            body[key] = self.value(3)
        elif roll < 0.7:
            del body[key]
        else:
            body[self.string()] = self.value(2)
        return text(body)

    # --- values --------------------------------------------------------------------------

    def value(self, depth: int) -> Any:
        rng = self.rng
        roll = rng.random()
        if depth <= 0 or roll < 0.45:
            return rng.choice(
                (
                    None,
                    True,
                    False,
                    0,
                    -1,
                    2**32,
                    2**53 + 1,
                    2**64,
                    -(2**63),
                    0.5,
                    -0.0,
                    1e308,
                    self.string(),
                    {"$bytes": "AAEC"},
                    {"$bytes": "!!"},
                    {"$integer": "AQAAAAAAAAA="},
                    {"$integer": 5},
                    {"$float": "AAAAAAAA+H8="},
                    {"$weird": 1},
                )
            )
        if roll < 0.75:
            return [self.value(depth - 1) for _ in range(rng.randint(0, 4))]
        return {self.string(): self.value(depth - 1) for _ in range(rng.randint(0, 4))}

    def string(self) -> str:
        rng = self.rng
        chars = []
        for _ in range(rng.randint(0, 12)):
            band = rng.random()
            if band < 0.6:
                chars.append(chr(rng.randrange(0x20, 0x7F)))
            elif band < 0.7:
                chars.append(chr(rng.randrange(0x00, 0x20)))
            elif band < 0.9:
                chars.append(chr(rng.randrange(0x80, 0xD800)))
            else:
                chars.append(chr(rng.randrange(0xE000, 0x110000)))
        return "".join(chars)

    # --- broken text ---------------------------------------------------------------------

    def mangled_text(self) -> Frame:
        """A valid message's text, cut, spliced or with a character changed."""
        data = json.dumps(self.body())
        rng = self.rng
        at = rng.randrange(len(data) + 1)
        roll = rng.random()
        if roll < 0.4:
            data = data[:at]
        elif roll < 0.7:
            data = data[:at] + rng.choice(("}", "]", ",", '"', "\\", ":", "{", "\x00")) + data[at:]
        else:
            data = data[:at] + data[at + 1 :] + rng.choice(("", "}", " trailing"))
        return (WSMsgType.TEXT, data.encode("utf-8"))

    def bad_json(self) -> Frame:
        samples = ("", "{", "[]", "null", "1", '"x"', "NaN", "[1,", '{"type":}', "true", "{}")
        return (WSMsgType.TEXT, self.rng.choice(samples).encode())

    def deep(self) -> Frame:
        rng = self.rng
        depth = rng.choice((100, 1_000, 20_000, 200_000))
        if rng.random() < 0.5:
            return (WSMsgType.TEXT, ("[" * depth + "]" * depth).encode())
        nested = '{"a":' * depth + "1" + "}" * depth
        mod = '{"type":"Add","queryId":0,"udfPath":"notes:count","args":[' + nested + "]}"
        frame = '{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":['
        return (WSMsgType.TEXT, (frame + mod + "]}").encode())

    def unknown_type(self) -> Frame:
        return text({"type": self.rng.choice(("Hello", "", 5, None, "transition")), "x": 1})

    def binary(self) -> Frame:
        return (WSMsgType.BINARY, self.rng.randbytes(self.rng.randint(0, 64)))

    def invalid_utf8(self) -> Frame:
        return (WSMsgType.TEXT, b'{"type":"Connect","sessionId":"' + b"\xff\xfe\xc3" + b'"}')

    def surrogates(self) -> Frame:
        """A lone surrogate escape somewhere a string goes."""
        lone = self.rng.choice(("\\ud800", "\\udfff", "\\udc00x", "\\ud83d", "\\ud83d\\ude00"))
        data = json.dumps(self.body())
        spots = [i for i, c in enumerate(data) if c == '"']
        if not spots:
            return (WSMsgType.TEXT, data.encode())
        at = self.rng.choice(spots) + 1
        return (WSMsgType.TEXT, (data[:at] + lone + data[at:]).encode())

    def huge_numbers(self) -> Frame:
        number = self.rng.choice(("1e400", "-1e400", "1" * 5000, "1e-400", "-0", "4294967296"))
        field = self.rng.choice(("baseVersion", "newVersion", "requestId", "connectionCount"))
        body = self.body()
        data = json.dumps({**body, field: 0}).replace(f'"{field}": 0', f'"{field}": {number}')
        return (WSMsgType.TEXT, data.encode())

    def oversize(self) -> Frame:
        return (WSMsgType.TEXT, b"x" * (MAX_FRAME_BYTES + 1))
