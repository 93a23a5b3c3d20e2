"""The function endpoints: every path form, args shape, format and outcome."""

from __future__ import annotations

import base64
import json
import math
import struct

import pytest

ENC = "convex_encoded_json"


def f64(x: float) -> str:
    return base64.b64encode(struct.pack("<d", x)).decode()


async def test_mutation_then_query(api) -> None:
    status, sent = await api.post(
        "/api/mutation", {"path": "messages:send", "args": {"body": "hi"}}
    )
    assert status == 200
    assert sent["status"] == "success"
    assert sent["logLines"] == ["[LOG] sending hi"]
    status, listed = await api.post(
        "/api/query", {"path": "messages:list", "args": {}, "format": ENC}
    )
    assert status == 200
    assert [d["body"] for d in listed["value"]] == ["hi"]
    assert listed["value"][0]["_id"] == sent["value"]
    assert listed["logLines"] == []


async def test_action_runs_and_collects_log_lines(api) -> None:
    status, body = await api.post(
        "/api/action", {"path": "messages:shout", "args": {"text": "hey"}}
    )
    assert (status, body) == (
        200,
        {"status": "success", "value": "HEY", "logLines": ["[LOG] echo"]},
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("dir/nested:hello", "hello from dir/nested"),
        ("dir/nested.js:hello", "hello from dir/nested"),
        ("solo", "the default export"),
        ("solo.js", "the default export"),
        ("solo:default", "the default export"),
    ],
)
async def test_path_forms(api, path: str, expected: str) -> None:
    status, body = await api.post("/api/query", {"path": path, "args": {}})
    assert (status, body["status"], body["value"]) == (200, "success", expected)


@pytest.mark.parametrize("args", [{"value": "x"}, [{"value": "x"}]])
async def test_args_as_object_or_one_element_array(api, args) -> None:
    _, body = await api.post("/api/query", {"path": "messages:echo", "args": args})
    assert body["value"] == "x"


async def test_missing_args_are_an_empty_object(api) -> None:
    _, body = await api.post("/api/query", {"path": "messages:echo"})
    assert body == {"status": "success", "value": None, "logLines": ["[LOG] echo"]}


async def test_encoded_round_trip_keeps_every_type(api) -> None:
    value = {
        "int": {
            "$integer": base64.b64encode((-(2**63)).to_bytes(8, "little", signed=True)).decode()
        },
        "bytes": {"$bytes": base64.b64encode(b"\x00\xffraw").decode()},
        "nan": {"$float": f64(math.nan)},
        "negzero": {"$float": f64(-0.0)},
        "inf": {"$float": f64(math.inf)},
        "n": 1,
        "list": [1.5, "s", None, True],
    }
    async with api.session.post(
        "/api/query", json={"path": "messages:echo", "args": [{"value": value}], "format": ENC}
    ) as resp:
        text = await resp.text()
    body = json.loads(text)
    assert body["value"] == {**value, "n": 1.0}
    # Float64 always carries a decimal point (the pip legacy client refuses `1`).
    assert '"n":1.0' in text
    assert '"list":[1.5,"s",null,true]' in text


@pytest.mark.parametrize("fmt", [None, "json", "convex_clean_json"])
async def test_clean_json_format(api, fmt) -> None:
    args = {
        "value": {
            "i": {"$integer": "BQAAAAAAAAA="},
            "b": {"$bytes": "AAE="},
            "nan": {"$float": f64(math.nan)},
            "n": 2,
        }
    }
    request = {"path": "messages:echo", "args": args}
    if fmt is not None:
        request["format"] = fmt
    async with api.session.post("/api/query", json=request) as resp:
        text = await resp.text()
    assert json.loads(text)["value"] == {"i": "5", "b": "AAE=", "nan": "NaN", "n": 2.0}
    assert '"n":2.0' in text


async def test_convex_json_is_an_alias_of_the_encoded_format(api) -> None:
    args = {"value": {"$integer": "BQAAAAAAAAA="}}
    _, body = await api.post(
        "/api/query", {"path": "messages:echo", "args": args, "format": "convex_json"}
    )
    assert body["value"] == {"$integer": "BQAAAAAAAAA="}


@pytest.mark.parametrize(
    ("client", "encoded"),
    [
        ("npm-1.4.1", True),
        ("python-0.5.0", True),
        ("npm-1.48.0", False),
        ("python-0.8.1", False),
        ("rust-0.1.0", False),
    ],
)
async def test_missing_format_follows_the_client_version(api, client: str, encoded: bool) -> None:
    args = {"value": {"$integer": "BQAAAAAAAAA="}}
    _, body = await api.post(
        "/api/query", {"path": "messages:echo", "args": args}, headers={"Convex-Client": client}
    )
    assert body["value"] == ({"$integer": "BQAAAAAAAAA="} if encoded else "5")


async def test_convex_error_carries_error_data_and_rolls_back(api) -> None:
    before = await api.state()
    status, body = await api.post(
        "/api/mutation", {"path": "messages:fail", "args": {}, "format": ENC}
    )
    assert status == 200
    assert body["status"] == "error"
    assert body["errorData"] == {"code": "E1", "n": {"$integer": "BQAAAAAAAAA="}}
    assert body["errorMessage"].startswith("Uncaught ConvexError: ")
    assert body["logLines"] == ["[LOG] about to fail"]
    assert (await api.state())[1] == before[1]


async def test_other_errors_have_no_error_data(api) -> None:
    status, body = await api.post("/api/mutation", {"path": "messages:crash", "args": {}})
    assert status == 200
    assert body["status"] == "error"
    assert "errorData" not in body
    assert body["errorMessage"].startswith("Uncaught RuntimeError: boom")


async def test_unknown_function_is_a_function_error(api) -> None:
    status, body = await api.post("/api/query", {"path": "messages:nope", "args": {}})
    assert (status, body) == (
        200,
        {
            "status": "error",
            "errorMessage": "Could not find public function for 'messages:nope'.",
            "logLines": [],
        },
    )


async def test_wrong_kind_is_refused(api) -> None:
    _, body = await api.post("/api/query", {"path": "messages:send", "args": {"body": "x"}})
    assert body["status"] == "error"
    assert "defined as Mutation" in body["errorMessage"]
    assert (await api.state())[1] == []


async def test_function_endpoint_runs_any_kind(api) -> None:
    _, sent = await api.post(
        "/api/function", {"path": "messages:send", "args": {"body": "f"}, "format": ENC}
    )
    assert sent["status"] == "success"
    _, listed = await api.post(
        "/api/function", {"path": "messages:list", "args": {}, "format": ENC, "componentPath": ""}
    )
    assert [d["body"] for d in listed["value"]] == ["f"]
    status, body = await api.post(
        "/api/function", {"path": "messages:list", "componentPath": "other"}
    )
    assert (status, body["code"]) == (400, "ComponentsNotSupported")


async def test_run_endpoint(api) -> None:
    status, body = await api.post("/api/run/messages/send", {"args": {"body": "via run"}})
    assert (status, body["status"]) == (200, "success")
    _, body = await api.post("/api/run/dir/nested/hello", {})
    assert body["value"] == "hello from dir/nested"
    # The default format of /api/run is the clean json one.
    _, body = await api.post(
        "/api/run/messages/echo", {"args": {"value": {"$integer": "BQAAAAAAAAA="}}}
    )
    assert body["value"] == "5"
    async with api.session.post("/api/run/solo") as resp:  # no body at all
        assert (await resp.json())["value"] == "the default export"


async def test_get_query(api) -> None:
    params = {
        "path": "messages:echo",
        "args": json.dumps({"value": {"$integer": "BQAAAAAAAAA="}}),
        "format": ENC,
    }
    async with api.session.get("/api/query", params=params) as resp:
        assert resp.status == 200
        assert (await resp.json())["value"] == {"$integer": "BQAAAAAAAAA="}
    async with api.session.get("/api/query", params={"path": "solo"}) as resp:
        assert (await resp.json())["value"] == "the default export"
    async with api.session.get("/api/query", params={"path": "solo", "args": "{"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["code"] == "BadJsonBody"


async def test_query_ts_and_query_at_ts(api) -> None:
    await api.post("/api/mutation", {"path": "messages:send", "args": {"body": "a"}})
    status, body = await api.post("/api/query_ts")
    assert status == 200
    raw = base64.b64decode(body["ts"])
    assert len(raw) == 8
    assert int.from_bytes(raw, "little") == api.gateway.store.clock.last_ts_ns
    request = {"path": "messages:list", "args": {}, "ts": body["ts"], "format": ENC}
    status, result = await api.post("/api/query_at_ts", request)
    assert (status, result["status"], len(result["value"])) == (200, "success", 1)

    await api.post("/api/mutation", {"path": "messages:send", "args": {"body": "b"}})
    status, err = await api.post("/api/query_at_ts", request)
    assert (status, err["code"]) == (400, "TimestampUnavailable")
    assert "only the newest timestamp" in err["message"]
    status, err = await api.post("/api/query_at_ts", {**request, "ts": "AAAA"})
    assert (status, err["code"]) == (400, "InvalidTimestamp")
    status, err = await api.post("/api/query_at_ts", {"path": "messages:list"})
    assert (status, err["code"]) == (400, "InvalidTimestamp")
