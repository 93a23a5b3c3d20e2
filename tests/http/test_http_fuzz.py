"""The HTTP fuzz tier: random and malformed requests against a real server.

A seeded generator (``OUTPOST_FUZZ_SEED`` replays a run; the seed is in every failure)
sends raw bytes (request lines, headers, line endings, content lengths, chunked
bodies, each carrying the admin key somewhere) and well-formed requests with hostile
JSON bodies through aiohttp's client. After every batch ``/health`` must answer; at the
end no answer was a 500, no answer and no log line held the key, nothing was logged at
ERROR, and the process's RssAnon grew by less than a bound. CI runs a few seconds;
the soak tier (``pytest -m soak`` or ``OUTPOST_SOAK=1``) runs ``OUTPOST_FUZZ_SOAK_S``
(300) seconds.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from e2e.conftest import soak_selected

MB = 1024 * 1024
BATCH = 16

PATHS = [
    "/api/query",
    "/api/mutation",
    "/api/action",
    "/api/function",
    "/api/run/messages/list",
    "/api/run/solo",
    "/api/query_ts",
    "/api/query_at_ts",
    "/api/sync",
    "/api/1.0/sync",
    "/health",
    "/health/ready",
    "/api/storage/kg2abc",
    "//api/query",
    "/",
    "/api/../etc/passwd",
    "/api/query%00",
]
FUNCTIONS = [
    "messages:list",
    "messages:send",
    "messages:echo",
    "messages:fail",
    "messages:crash",
    "messages:shout",
    "messages:secret",
    "messages:get",
    "messages:page",
    "solo",
    "dir/nested:hello",
    "nope:nothing",
]
METHODS = [b"GET", b"POST", b"POST", b"POST", b"OPTIONS", b"PUT", b"HEAD", b"DELETE", b"G\x00T"]
EOLS = [b"\r\n"] * 6 + [b"\n", b"\r", b"\n\r"]
VERSIONS = [b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x", b"", b"HTTP/11"]


@dataclass
class Tally:
    """What a run saw; ``problems`` fails the test."""

    seed: int
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def saw(self, status: int | None, answer: bytes, key: bytes, case: str) -> None:
        self.cases += 1
        case = re.sub(r"outpost-[0-9a-f]+", "<key>", case)  # the report shows no key either
        if status is not None:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == -1:
                self.problems.append(f"no answer and no close for {case}")
            if status >= 500 and status != 503:
                self.problems.append(f"{status} for {case}: {answer[:300]!r}")
        # A function's value is the app's data (messages:echo returns what it was sent).
        echoed = status == 200 and b'"status":"success"' in answer
        if not echoed and (key in answer or key[8:40] in answer):
            self.problems.append(f"the admin key in the answer to {case}")


class Generator:
    """Random requests from one seed."""

    def __init__(self, rng: random.Random, key: str) -> None:
        self.rng = rng
        self.key = key

    def json_value(self, depth: int = 0) -> Any:
        rng = self.rng
        kinds = ["int", "float", "str", "bool", "null", "list", "dict", "special"]
        kind = rng.choice(kinds[:5] if depth > 6 else kinds)
        if kind == "int":
            return rng.choice([0, -1, 2**53, 2**63, -(2**64), rng.randint(-1000, 1000)])
        if kind == "float":
            return rng.choice([0.5, -0.0, 1e308, 5e-324, rng.random()])
        if kind == "str":
            return rng.choice(["", "x" * rng.randint(0, 3000), "\u0000", "\U0001f600", "$id"])
        if kind == "bool":
            return rng.random() < 0.5
        if kind == "null":
            return None
        if kind == "list":
            return [self.json_value(depth + 1) for _ in range(rng.randint(0, 5))]
        if kind == "dict":
            keys = ["a", "$integer", "$bytes", "$float", "_id", "", "é", "x" * 100]
            return {rng.choice(keys): self.json_value(depth + 1) for _ in range(rng.randint(0, 4))}
        return rng.choice(
            [
                {"$integer": "AAAAAAAAAAA="},
                {"$integer": "not base64"},
                {"$bytes": "@@"},
                {"$float": "AAAAAAAA+H8="},
                {"$set": 1},
            ]
        )

    def call_body(self) -> bytes:
        rng = self.rng
        body: dict[str, Any] = {}
        if rng.random() < 0.9:
            body["path"] = rng.choice([*FUNCTIONS, self.json_value(), "x" * 2000, self.key])
        if rng.random() < 0.8:
            body["args"] = rng.choice([{}, [{}], [{}, {}], self.json_value(), {"value": self.key}])
        if rng.random() < 0.3:
            body["format"] = rng.choice(["json", "convex_encoded_json", "xml", 5, None])
        if rng.random() < 0.1:
            body["ts"] = rng.choice(["AAAAAAAAAAA=", "x", 5])
        text = json.dumps(body).encode()
        return self.spoil(text) if rng.random() < 0.25 else text

    def deep(self) -> bytes:
        depth = self.rng.choice([50, 200, 5000, 100_000])
        opener, closer = self.rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        args = opener * depth + b"1" + closer * depth
        return b'{"path": "messages:echo", "args": {"value": ' + args + b"}}"

    def spoil(self, data: bytes) -> bytes:
        """``data`` with a few bytes replaced, inserted or cut."""
        rng = self.rng
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            if not out:
                break
            at = rng.randrange(len(out))
            action = rng.random()
            if action < 0.4:
                out[at] = rng.randrange(256)
            elif action < 0.7:
                out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            else:
                del out[at : at + rng.randint(1, 16)]
        return bytes(out)

    def body(self) -> bytes:
        rng = self.rng
        pick = rng.random()
        if pick < 0.6:
            return self.call_body()
        if pick < 0.7:
            return self.deep()
        if pick < 0.8:
            return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        if pick < 0.85:
            return (
                b'{"path": "messages:list", "args": {"pad": "'
                + b"p" * rng.randint(0, 3 * MB)
                + b'"}}'
            )
        return rng.choice([b"", b"   ", b"null", b"[]", b'"x"', b"{", b"\xff\xfe{}", b"NaN"])

    def raw_request(self) -> bytes:
        rng = self.rng
        eol = rng.choice(EOLS)
        key = self.key.encode()
        target = rng.choice(PATHS).encode()
        if rng.random() < 0.4:
            query = b"adminKey=" + key + b"&path=" + rng.choice(FUNCTIONS).encode()
            query += rng.choice([b"", b"&args={}", b"&args=%7B", b"\x01", b"&format=json", b"%zz"])
            target += b"?" + query
        line = rng.choice(METHODS) + b" " + target + b" " + rng.choice(VERSIONS)
        body = self.body() if rng.random() < 0.8 else b""
        headers = [b"Host: localhost", b"Content-Type: application/json"]
        headers += self.length_headers(body)
        headers += self.extra_headers(key)
        rng.shuffle(headers)
        head = eol.join([line, *headers]) + eol + eol
        if rng.random() < 0.2:
            head = self.spoil(head)
        data = head + self.framed(body, headers)
        return data[: rng.randrange(len(data) + 1)] if rng.random() < 0.1 else data

    def length_headers(self, body: bytes) -> list[bytes]:
        rng = self.rng
        pick = rng.random()
        if pick < 0.6:
            return [b"Content-Length: %d" % len(body)]
        if pick < 0.75:
            return [b"Transfer-Encoding: chunked"]
        return [
            rng.choice(
                [
                    b"Content-Length: %d" % (len(body) + rng.randint(1, 100)),
                    b"Content-Length: %d" % max(0, len(body) - rng.randint(1, 100)),
                    b"Content-Length: -1",
                    b"Content-Length: abc",
                    b"Content-Length: 99999999999999999999",
                    b"Content-Length: 17000000",
                    b"Content-Length: 1\r\nContent-Length: 2",
                    b"Transfer-Encoding: gzip, chunked",
                ]
            )
        ]

    def framed(self, body: bytes, headers: list[bytes]) -> bytes:
        if b"Transfer-Encoding: chunked" not in headers:
            return body
        rng = self.rng
        chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
        out = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
        ending = rng.choice([b"0\r\n\r\n"] * 4 + [b"", b"zz\r\n", b"0\r\nX-Trailer: 1\r\n\r\n"])
        return out + ending

    def extra_headers(self, key: bytes) -> list[bytes]:
        rng = self.rng
        choices = [
            b"Authorization: Convex " + key,
            b"Authorization: Convex " + key + b"\x01",
            b"Authorization: Convex \xff\xfe" + key,
            b"Authorization: Convex " + key + b":" + b"e30=",
            b"Authorization: Convex " + key + b":@@@",
            b"Authorization: Bearer " + key,
            b"Authorization: " + key,
            b"Convex-Client: npm-1.2.3",
            b"Convex-Client: " + key,
            b"Connection: close",
            b"Connection: keep-alive",
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            b"Expect: 100-continue",
            b"Origin: http://x",
            b"X-Long: " + b"v" * rng.choice([100, 9000, 70000]),
            b"Bad Header: x",
            b": empty",
            b"X-Folded: a\r\n b",
            key + b": x",
        ]
        many = [b"X-Many-%d: %d" % (i, i) for i in range(rng.choice([0, 0, 50, 200]))]
        return rng.sample(choices, rng.randint(0, 4)) + many


async def raw_exchange(port: int, data: bytes) -> tuple[int | None, bytes]:
    """Send ``data``; the first final answer's status and bytes (None: closed unanswered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(data)
        while True:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            received += head
            status = int(head.split(b" ", 2)[1])
            if status == 100:
                continue
            length = 0 if data.startswith(b"HEAD ") else _content_length(head)
            if length:
                received += await asyncio.wait_for(reader.readexactly(length), 5)
            return status, received
    except TimeoutError:
        return -1, received  # neither answered nor closed: a hung connection
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError) as exc:
        tail = getattr(exc, "partial", b"")
        return None, received + (tail if isinstance(tail, bytes) else b"")
    finally:
        writer.transport.abort()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def client_exchange(
    session: aiohttp.ClientSession, gen: Generator
) -> tuple[int | None, bytes, str]:
    rng = gen.rng
    path = rng.choice(PATHS[:8])
    headers = {"Content-Type": "application/json"}
    auth = rng.choice([None, f"Convex {gen.key}", f"Convex {gen.key}x", "Bearer x", "Basic x"])
    if auth:
        headers["Authorization"] = auth
    body = gen.body()
    try:
        payload = io.BytesIO(body)  # aiohttp warns about large raw bytes bodies
        async with session.post(path, data=payload, headers=headers) as resp:
            return resp.status, await resp.read(), f"POST {path} {body[:80]!r}"
    except aiohttp.ClientError:
        return None, b"", path


async def health(session: aiohttp.ClientSession) -> int:
    async with asyncio.timeout(5):
        async with session.get("/health") as resp:
            return resp.status


def rss_anon_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


async def fuzz(
    api: Any, budget_s: float, seed: int, on_batch: Callable[[], None] = lambda: None
) -> Tally:
    """Batches of raw and client cases for ``budget_s``, /health after each batch."""
    gen = Generator(random.Random(seed), api.admin_key)
    tally = Tally(seed)
    key = api.admin_key.encode()
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        raw = [gen.raw_request() for _ in range(BATCH // 2)]
        results = await asyncio.gather(
            *(raw_exchange(api.port, data) for data in raw),
            *(client_exchange(api.session, gen) for _ in range(BATCH // 2)),
        )
        for data, (status, answer) in zip(raw, results[: BATCH // 2]):
            tally.saw(status, answer, key, f"raw {data[:120]!r}")
        for status, answer, case in results[BATCH // 2 :]:
            tally.saw(status, answer, key, case)
        assert await health(api.session) == 200, f"/health stopped answering (seed {seed})"
        on_batch()
    return tally


def check(tally: Tally, caplog: pytest.LogCaptureFixture, key: str, rss_growth_kb: int) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not tally.problems, f"seed {tally.seed}: {tally.problems[:5]}"
    assert key[8:40] not in caplog.text, f"seed {tally.seed}: the admin key reached the log"
    assert not errors, f"seed {tally.seed}: {[r.getMessage()[:200] for r in errors[:5]]}"
    print(
        f"\nfuzz seed {tally.seed}: {tally.cases} cases, statuses "
        f"{dict(sorted(tally.statuses.items()))}, RssAnon +{rss_growth_kb / 1024:.1f} MB"
    )


def fuzz_seed() -> int:
    return int(os.environ.get("OUTPOST_FUZZ_SEED") or random.randrange(1 << 32))


SETTINGS = {"request_header_timeout_s": 0.5, "request_body_timeout_s": 0.5}


@pytest.mark.timeout(120)
async def test_http_fuzz(serve, caplog: pytest.LogCaptureFixture) -> None:
    api = await serve(**SETTINGS)
    caplog.set_level(logging.DEBUG)
    before = rss_anon_kb()
    tally = await fuzz(api, budget_s=4.0, seed=fuzz_seed())
    growth = rss_anon_kb() - before
    check(tally, caplog, api.admin_key, growth)
    assert growth < 200 * 1024, f"seed {tally.seed}: RssAnon grew {growth} kB"


SOAK_S = float(os.environ.get("OUTPOST_FUZZ_SOAK_S", "300"))


@pytest.mark.soak
@pytest.mark.timeout(SOAK_S + 300)
async def test_http_fuzz_soak(
    request: pytest.FixtureRequest, serve, caplog: pytest.LogCaptureFixture
) -> None:
    if not soak_selected(request.config):
        pytest.skip("soak tier: select it with `pytest -m soak` or OUTPOST_SOAK=1")
    api = await serve(**SETTINGS)
    caplog.set_level(logging.INFO)  # debug lines of millions of cases would fill memory
    samples: list[int] = []
    warm = await fuzz(api, budget_s=SOAK_S / 10, seed=fuzz_seed())
    start = rss_anon_kb()
    tally = await fuzz(api, SOAK_S * 0.9, warm.seed + 1, lambda: samples.append(rss_anon_kb()))
    growth = rss_anon_kb() - start
    tally.cases += warm.cases
    check(tally, caplog, api.admin_key, growth)
    print(f"RssAnon after warm-up {start / 1024:.1f} MB, max {max(samples) / 1024:.1f} MB")
    assert growth < 32 * 1024, f"seed {tally.seed}: RssAnon grew {growth} kB after warm-up"
