"""PyPI ``convex`` 0.8.1 HTTP client against ``outpost serve``.

convex 0.8.1 has one HTTP client, ``convex.http_client.ConvexHttpClient`` (requests-based,
"legacy" in its own docstring; ``convex.ConvexClient`` speaks the WebSocket protocol).
It decodes with ``json_to_convex``, which refuses integral JSON literals: every Float64
the server writes must carry a decimal point, so a plain success here checks that too.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from convex import ConvexError, ConvexInt64
from convex.http_client import ConvexExecutionError, ConvexHttpClient

NOT_FOUND = "Could not find public function for '{}'."


@pytest.fixture
def client(server: Any) -> ConvexHttpClient:
    return ConvexHttpClient(server.url)


def test_compat_pip_query_mutation_action(client: ConvexHttpClient) -> None:
    item_id = client.mutation("items:add", {"batch": "pip-basic", "n": 7})
    assert isinstance(item_id, str) and 31 <= len(item_id) <= 37
    doc = client.query("items:get", {"id": item_id})
    assert set(doc) == {"_id", "_creationTime", "batch", "n"}
    assert doc["_id"] == item_id
    assert doc["batch"] == "pip-basic"
    assert doc["n"] == 7.0 and type(doc["n"]) is float
    assert type(doc["_creationTime"]) is float and doc["_creationTime"] > 1.6e12
    result = client.action("items:relabel", {"batch": "pip-action"})
    assert result["n_plus_one"] == 42.0
    assert client.query("items:get", {"id": result["id"]})["n"] == 41.0


def test_compat_pip_convex_error_with_data(client: ConvexHttpClient) -> None:
    with pytest.raises(ConvexError) as caught:
        client.mutation("items:refuse", {"code": "E_pip"})
    # The pip client hands errorData over as it came (not decoded) and says
    # "Convex error" when the data is not a string.
    assert caught.value.data == {"code": "E_pip", "limit": 3.0, "tags": ["a", "b"], "ok": False}
    assert str(caught.value) == "Convex error"
    assert client.query("items:count", {"batch": "refused"}) == 0.0


def test_compat_pip_convex_error_with_string_data(client: ConvexHttpClient) -> None:
    with pytest.raises(ConvexError) as caught:
        client.action("echo:refuse_text", {"text": "no thanks"})
    assert str(caught.value) == "no thanks"
    assert caught.value.data == "no thanks"


BYTES = bytes([0, 1, 127, 128, 254, 255])


def test_compat_pip_values_round_trip(client: ConvexHttpClient) -> None:
    sent = {
        "int64": ConvexInt64(2**62 + 1),
        "int64Neg": ConvexInt64(-(2**63)),
        "bytes": BYTES,
        "nan": math.nan,
        "negZero": -0.0,
        "inf": math.inf,
        "whole": 1,  # a Python int is sent as the Float64 1.0
        "nested": {"list": [1.5, "s", None, True, {"deep": [ConvexInt64(3)]}], "empty": {}},
    }
    got = client.query("echo:value", {"value": sent})
    assert set(got) == set(sent)
    assert got["int64"] == ConvexInt64(2**62 + 1)
    assert got["int64Neg"] == ConvexInt64(-(2**63))
    assert got["bytes"] == BYTES
    assert math.isnan(got["nan"])
    assert got["negZero"] == 0.0 and math.copysign(1.0, got["negZero"]) == -1.0
    assert got["inf"] == math.inf
    assert got["whole"] == 1.0 and type(got["whole"]) is float
    assert got["nested"] == {
        "list": [1.5, "s", None, True, {"deep": [ConvexInt64(3)]}],
        "empty": {},
    }


def test_compat_pip_server_decodes_client_values(client: ConvexHttpClient) -> None:
    got = client.query(
        "echo:inspect", {"i": ConvexInt64(41), "b": BYTES, "nan": math.nan, "negzero": -0.0}
    )
    assert got == {
        "i_is_int64": True,
        "i_plus_one": ConvexInt64(42),
        "b_len": 6.0,
        "b_reversed": BYTES[::-1],
        "nan_is_nan": True,
        "negzero_sign": -1.0,
    }


def test_compat_pip_decodes_server_values(client: ConvexHttpClient) -> None:
    got = client.query("echo:made")
    assert got["int64_big"] == ConvexInt64(2**62 + 1)
    assert got["int64_neg"] == ConvexInt64(-1)
    assert got["bytes"] == bytes(range(256))
    assert math.isnan(got["nan"])
    assert got["negzero"] == 0.0 and math.copysign(1.0, got["negzero"]) == -1.0
    assert got["inf"] == math.inf and got["neg_inf"] == -math.inf
    assert got["whole"] == 3.0 and type(got["whole"]) is float
    assert got["half"] == 0.5
    assert got["nested"] == {
        "list": [1.0, "two", None, True, {"deep": [ConvexInt64(3)]}],
        "empty": {},
    }


@pytest.mark.parametrize(
    ("kind", "path"),
    [("query", "items:nope"), ("mutation", "nowhere:nope"), ("action", "echo:nope")],
)
def test_compat_pip_unknown_function(client: ConvexHttpClient, kind: str, path: str) -> None:
    with pytest.raises(ConvexExecutionError) as caught:
        getattr(client, kind)(path, {})
    assert NOT_FOUND.format(path) in str(caught.value)


def test_compat_pip_internal_function_refused(server: Any, client: ConvexHttpClient) -> None:
    with pytest.raises(ConvexExecutionError) as caught:
        client.query("items:secret", {})
    assert NOT_FOUND.format("items:secret") in str(caught.value)
    admin = ConvexHttpClient(server.url)
    admin.set_admin_auth(server.admin_key)
    assert admin.query("items:secret", {}) == "internal only"


@pytest.mark.parametrize(
    ("args", "texts"),
    [
        (
            {"batch": 5, "n": 1},
            [
                "ArgumentValidationError: Value does not match validator.",
                "Path: .batch",
                "Validator: v.string()",
            ],
        ),
        (
            {"batch": "pip-bad", "n": 1, "extra": True},
            ["ArgumentValidationError: Object contains extra field `extra`"],
        ),
        (
            {"batch": "pip-bad"},
            ["ArgumentValidationError: Object is missing the required field `n`"],
        ),
    ],
    ids=["wrong-type", "extra-field", "missing-field"],
)
def test_compat_pip_bad_args(client: ConvexHttpClient, args: Any, texts: list[str]) -> None:
    with pytest.raises(ConvexExecutionError) as caught:
        client.mutation("items:add", args)
    for text in texts:
        assert text in str(caught.value)
    assert client.query("items:count", {"batch": "pip-bad"}) == 0.0


def test_compat_pip_pagination_to_the_end(client: ConvexHttpClient) -> None:
    inserted = client.mutation("items:fill", {"batch": "pip-pages", "count": 250})
    assert len(inserted) == len(set(inserted)) == 250
    pages = []
    cursor = None
    for _ in range(100):
        result = client.query(
            "items:page",
            {"batch": "pip-pages", "paginationOpts": {"numItems": 40, "cursor": cursor}},
        )
        pages.append(result)
        if result["isDone"]:
            break
        assert isinstance(result["continueCursor"], str)
        cursor = result["continueCursor"]
    assert [len(p["page"]) for p in pages] == [40] * 6 + [10]
    assert [p["isDone"] for p in pages] == [False] * 6 + [True]
    seen = [doc["_id"] for p in pages for doc in p["page"]]
    assert len(seen) == len(set(seen)) == 250
    assert set(seen) == set(inserted)
    assert [doc["n"] for p in pages for doc in p["page"]] == [float(n) for n in range(250)]


def test_compat_pip_log_lines(client: ConvexHttpClient, capsys: pytest.CaptureFixture[str]) -> None:
    # The pip client prints a response's logLines in debug mode, one per line.
    client.set_debug(True)
    assert client.query("items:chatty", {"who": "pip"}) == "done"
    assert capsys.readouterr().out.splitlines() == [
        "[LOG] hello pip",
        "[INFO] info for pip",
        "[WARN] careful",
    ]
    client.action("items:relabel", {"batch": "pip-log"})
    assert capsys.readouterr().out.splitlines() == ["[LOG] action read 41.0"]
    client.set_debug(False)
    client.query("items:chatty", {"who": "quiet"})
    assert capsys.readouterr().out == ""
