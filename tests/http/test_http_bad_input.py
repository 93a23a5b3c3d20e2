"""Bad input (issue 3, section 4): each gets a clear error and the store stays untouched."""

from __future__ import annotations

import json

import pytest

from gateway.http import MAX_BODY_BYTES

SEND = "/api/mutation"


@pytest.fixture
async def seeded(api):
    """The api with one stored message; yields the store's state to compare against."""
    await api.post(SEND, {"path": "messages:send", "args": {"body": "before"}})
    return await api.state()


async def expect_refused(
    api, before, status: int, code: str, words: str, *, data: bytes, path: str = SEND, headers=None
) -> None:
    got_status, body = await api.send_raw(path, data, headers=headers)
    assert (got_status, body["code"]) == (status, code), body
    assert words in body["message"]
    assert set(body) == {"code", "message"}
    assert await api.state() == before


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b'{"path": "messages:send", "args": {"body": "x"', "BadJsonBody", "not valid JSON"),
        (b"", "BadJsonBody", "empty"),
        (b'{"path": "messages:send", "args": {"body": NaN}}', "BadJsonBody", "not valid JSON"),
        (
            b'{"path": "messages:send", "args": {"body": "\xff\xfe"}}',
            "BadJsonBody",
            "not valid UTF-8",
        ),
    ],
)
async def test_unreadable_bodies(api, seeded, data: bytes, code: str, words: str) -> None:
    await expect_refused(api, seeded, 400, code, words, data=data)


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ([{"path": "messages:send"}], "BadJsonBody", "must be a JSON object, not an array"),
        ({"args": {"body": "x"}}, "BadJsonBody", "no 'path'"),
        ({"path": 5, "args": {"body": "x"}}, "BadJsonBody", "'path' must be a string"),
        (
            {"path": "messages:send:x", "args": {"body": "x"}},
            "BadConvexFunctionIdentifier",
            "not a function path",
        ),
        ({"path": "", "args": {}}, "BadConvexFunctionIdentifier", "not a function path"),
        (
            {"path": "messages:send", "args": "body"},
            "InvalidArgs",
            "must be a JSON object, not a string",
        ),
        (
            {"path": "messages:send", "args": [{"body": "x"}, {}]},
            "InvalidArgs",
            "exactly one object",
        ),
        (
            {"path": "messages:send", "args": {"body": "x"}, "format": "xml"},
            "BadFormat",
            "is not one of",
        ),
        (
            {"path": "messages:send", "args": {"body": "x"}, "format": 3},
            "BadFormat",
            "is not one of",
        ),
        ({"path": "messages:send", "args": {"$body": "x"}}, "InvalidArgs", "reserved"),
        (
            {"path": "messages:send", "args": {"body": {"$integer": "AQ=="}}},
            "InvalidArgs",
            "exactly 8",
        ),
        (  # found by the fuzz tier: was a 500 (an assert)
            {"path": "messages:send", "args": {"$integer": "AAAAAAAAAAA="}},
            "InvalidArgs",
            "not an encoded Int64",
        ),
    ],
)
async def test_wrong_types(api, seeded, body, code: str, words: str) -> None:
    await expect_refused(api, seeded, 400, code, words, data=json.dumps(body).encode())


async def test_huge_integer_literal(api, seeded) -> None:
    data = b'{"path": "messages:send", "args": {"body": ' + b"9" * 400 + b"}}"
    await expect_refused(api, seeded, 400, "InvalidArgs", "too large for a Float64", data=data)


async def test_bad_client_version_header(api, seeded) -> None:
    data = json.dumps({"path": "messages:send", "args": {"body": "x"}}).encode()
    await expect_refused(
        api,
        seeded,
        400,
        "InvalidVersion",
        "Convex-Client",
        data=data,
        headers={"Convex-Client": "whatever"},
    )


async def test_oversized_body_is_413(api, seeded) -> None:
    body = {"path": "messages:send", "args": {"body": "x" * MAX_BODY_BYTES}}
    await expect_refused(
        api, seeded, 413, "PayloadTooLarge", "16 MiB + 2000", data=json.dumps(body).encode()
    )


async def test_a_body_just_under_the_limit_is_read(api, seeded) -> None:
    # 16 MiB of arguments fit; the function then refuses a document over 1 MiB.
    text = "y" * (16 * 1024 * 1024 - 100)
    status, body = await api.post(SEND, {"path": "messages:send", "args": {"body": text}})
    assert (status, body["status"]) == (200, "error")
    assert "1 MiB" in body["errorMessage"]
    assert await api.state() == seeded


async def test_document_over_one_mib(api, seeded) -> None:
    status, body = await api.post(
        SEND, {"path": "messages:send", "args": {"body": "z" * (1 << 20)}}
    )
    assert (status, body["status"]) == (200, "error")
    assert "1048576 bytes (1 MiB)" in body["errorMessage"]
    assert await api.state() == seeded


@pytest.mark.parametrize("depth", [65, 200, 100_000])
async def test_deeply_nested_args(api, seeded, depth: int) -> None:
    data = b'{"path": "messages:send", "args": {"body": ' + b"[" * depth + b"]" * depth + b"}}"
    await expect_refused(api, seeded, 400, "InvalidArgs", "nested", data=data)


async def test_nesting_within_the_limit_reaches_the_function(api, seeded) -> None:
    data = json.dumps(
        {"path": "messages:echo", "args": {"value": json.loads("[" * 60 + "]" * 60)}}
    ).encode()
    status, body = await api.send_raw("/api/query", data)
    assert (status, body["status"]) == (200, "success")


@pytest.mark.parametrize("path", ["/api/nope", "/api", "/apis/query", "/api/run/"])
async def test_unknown_endpoints_are_404(api, seeded, path: str) -> None:
    await expect_refused(api, seeded, 404, "NotFound", "no such endpoint", data=b"{}", path=path)


async def test_wrong_method_is_405(api, seeded) -> None:
    async with api.session.get(SEND) as resp:
        body = await resp.json()
        assert (resp.status, body["code"]) == (405, "MethodNotAllowed")
        assert "POST" in resp.headers["Allow"]
    assert await api.state() == seeded


async def test_unknown_function(api, seeded) -> None:
    status, body = await api.post(SEND, {"path": "nothing:here", "args": {}})
    assert (status, body["status"]) == (200, "error")
    assert body["errorMessage"] == "Could not find public function for 'nothing:here'."
    assert await api.state() == seeded


@pytest.mark.parametrize("bad_id", ["garbage", "0" * 32, None])
async def test_invalid_ids(api, seeded, bad_id) -> None:
    status, body = await api.post("/api/query", {"path": "messages:get", "args": {"id": bad_id}})
    assert (status, body["status"]) == (200, "error")
    assert body["errorMessage"].startswith("ArgumentValidationError")
    assert await api.state() == seeded


async def test_id_of_another_table(api, seeded) -> None:
    _, up = await api.post(SEND, {"path": "messages:upload", "args": {"data": {"$bytes": "AA=="}}})
    before = await api.state()
    _, body = await api.post("/api/query", {"path": "messages:get", "args": {"id": up["value"]}})
    assert body["status"] == "error"
    assert "ArgumentValidationError" in body["errorMessage"]
    assert await api.state() == before


async def test_cursor_from_another_query(api, seeded) -> None:
    for text in ["a", "b", "c"]:
        await api.post(SEND, {"path": "messages:send", "args": {"body": text}})
    before = await api.state()
    opts = {"numItems": 2, "cursor": None}
    _, first = await api.post(
        "/api/query", {"path": "messages:page", "args": {"paginationOpts": opts}}
    )
    cursor = first["value"]["continueCursor"]
    foreign = {"paginationOpts": {"numItems": 2, "cursor": cursor}}
    status, body = await api.post("/api/query", {"path": "messages:page_desc", "args": foreign})
    assert (status, body["status"]) == (200, "error")
    assert "InvalidCursor" in body["errorMessage"]
    assert "different query" in body["errorMessage"]
    assert await api.state() == before


async def test_wrong_admin_key(api, seeded) -> None:
    data = json.dumps({"path": "messages:wipe", "args": {}}).encode()
    await expect_refused(
        api,
        seeded,
        403,
        "BadAdminKey",
        "not this gateway's",
        data=data,
        headers={"Authorization": "Convex nope"},
    )
