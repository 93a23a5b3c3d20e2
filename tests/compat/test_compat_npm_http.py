"""npm ``convex`` ``ConvexHttpClient`` (Node) against ``outpost serve``.

``node/http_client.mjs`` runs every scenario once and reports, as JSON, what the client
returned or raised, values described in JavaScript terms (``bigint``, ``ArrayBuffer``,
``Object.is(x, -0)``). Each test below asserts one part of that report.
"""

from __future__ import annotations

from typing import Any

import pytest

NOT_FOUND = "Could not find public function for '{}'."


@pytest.fixture(scope="module")
def report(node_http_client_report: dict[str, Any]) -> dict[str, Any]:
    return node_http_client_report


def num(value: float) -> dict[str, Any]:
    return {"type": "number", "value": value}


def string(value: str) -> dict[str, Any]:
    return {"type": "string", "value": value}


def fields(described: dict[str, Any]) -> dict[str, Any]:
    assert described["type"] == "object", described
    return described["fields"]  # type: ignore[no-any-return]


def test_compat_npm_query_mutation_action(report: dict[str, Any]) -> None:
    basic = report["basic"]
    assert isinstance(basic["id"], str) and 31 <= len(basic["id"]) <= 37
    doc = fields(basic["doc"])
    assert doc["_id"] == string(basic["id"])
    assert doc["batch"] == string("npm-basic")
    assert doc["n"] == num(7)
    assert doc["_creationTime"]["type"] == "number" and doc["_creationTime"]["value"] > 1.6e12
    assert set(doc) == {"_id", "_creationTime", "batch", "n"}
    action = basic["action"]
    assert action["ok"], action
    result = fields(action["value"])
    assert result["n_plus_one"] == num(42)
    assert result["id"]["type"] == "string"


def test_compat_npm_convex_error_with_data(report: dict[str, Any]) -> None:
    failed = report["convexError"]["mutation"]
    assert failed["ok"] is False
    assert failed["convexError"] is True, failed
    assert failed["data"] == {
        "type": "object",
        "fields": {
            "code": string("E_npm"),
            "limit": num(3),
            "tags": {"type": "array", "items": [string("a"), string("b")]},
            "ok": {"type": "boolean", "value": False},
        },
    }
    # The mutation's own write was rolled back with it.
    assert report["convexError"]["refusedCount"] == 0


BYTES_HEX = "00017f80feff"


def test_compat_npm_values_round_trip(report: dict[str, Any]) -> None:
    echoed = report["roundTrip"]["echoed"]
    assert echoed["ok"], echoed
    assert fields(echoed["value"]) == {
        "int64": {"type": "bigint", "text": str(2**62 + 1)},
        "int64Neg": {"type": "bigint", "text": str(-(2**63))},
        "bytes": {"type": "bytes", "hex": BYTES_HEX},
        "nan": {"type": "number", "special": "NaN"},
        "negZero": {"type": "number", "special": "-0"},
        "inf": {"type": "number", "special": "Infinity"},
        "whole": num(1),  # a JS number stays a number (Float64), never a bigint
        "nested": {
            "type": "object",
            "fields": {
                "list": {
                    "type": "array",
                    "items": [
                        num(1.5),
                        string("s"),
                        {"type": "null"},
                        {"type": "boolean", "value": True},
                        {
                            "type": "object",
                            "fields": {
                                "deep": {
                                    "type": "array",
                                    "items": [{"type": "bigint", "text": "3"}],
                                }
                            },
                        },
                    ],
                },
                "empty": {"type": "object", "fields": {}},
            },
        },
    }


def test_compat_npm_server_decodes_client_values(report: dict[str, Any]) -> None:
    inspected = report["roundTrip"]["inspected"]
    assert inspected["ok"], inspected
    assert fields(inspected["value"]) == {
        "i_is_int64": {"type": "boolean", "value": True},
        "i_plus_one": {"type": "bigint", "text": "42"},
        "b_len": num(6),
        "b_reversed": {"type": "bytes", "hex": "fffe807f0100"},
        "nan_is_nan": {"type": "boolean", "value": True},
        "negzero_sign": num(-1),
    }


def test_compat_npm_decodes_server_values(report: dict[str, Any]) -> None:
    made = report["roundTrip"]["made"]
    assert made["ok"], made
    value = fields(made["value"])
    assert value["int64_big"] == {"type": "bigint", "text": str(2**62 + 1)}
    assert value["int64_neg"] == {"type": "bigint", "text": "-1"}
    assert value["bytes"] == {"type": "bytes", "hex": bytes(range(256)).hex()}
    assert value["nan"] == {"type": "number", "special": "NaN"}
    assert value["negzero"] == {"type": "number", "special": "-0"}
    assert value["inf"] == {"type": "number", "special": "Infinity"}
    assert value["neg_inf"] == {"type": "number", "special": "-Infinity"}
    assert value["whole"] == num(3)
    assert value["half"] == num(0.5)
    nested = fields(value["nested"])
    assert nested["list"]["items"][4] == {
        "type": "object",
        "fields": {"deep": {"type": "array", "items": [{"type": "bigint", "text": "3"}]}},
    }


def test_compat_npm_unknown_function(report: dict[str, Any]) -> None:
    for key, path in (("unknownFunction", "items:nope"), ("unknownModule", "nowhere:nope")):
        failed = report["refused"][key]
        assert failed["ok"] is False
        assert failed["convexError"] is False
        assert NOT_FOUND.format(path) in failed["message"], failed


def test_compat_npm_internal_function_refused(report: dict[str, Any]) -> None:
    refused = report["refused"]
    assert refused["internal"]["ok"] is False
    assert refused["internal"]["convexError"] is False
    assert NOT_FOUND.format("items:secret") in refused["internal"]["message"]
    # It exists: with the admin key (setAdminAuth) the same call succeeds.
    assert refused["internalAsAdmin"] == {"ok": True, "value": string("internal only")}


def test_compat_npm_bad_args(report: dict[str, Any]) -> None:
    refused = report["refused"]
    for key, texts in (
        (
            "wrongType",
            [
                "ArgumentValidationError: Value does not match validator.",
                "Path: .batch",
                "Validator: v.string()",
            ],
        ),
        (
            "extraField",
            ["ArgumentValidationError: Object contains extra field `extra`"],
        ),
        (
            "missingField",
            ["ArgumentValidationError: Object is missing the required field `n`"],
        ),
    ):
        failed = refused[key]
        assert failed["ok"] is False, (key, failed)
        assert failed["convexError"] is False, (key, failed)
        for text in texts:
            assert text in failed["message"], (key, failed)
    assert refused["badCount"] == 0


def test_compat_npm_pagination_to_the_end(report: dict[str, Any]) -> None:
    inserted = report["pagination"]["inserted"]
    pages = report["pagination"]["pages"]
    assert len(inserted) == 250 and len(set(inserted)) == 250
    assert [len(p["ids"]) for p in pages] == [40] * 6 + [10]
    assert [p["isDone"] for p in pages] == [False] * 6 + [True]
    assert all(p["cursorType"] == "string" for p in pages)
    seen = [i for p in pages for i in p["ids"]]
    assert len(seen) == len(set(seen)) == 250
    assert set(seen) == set(inserted)
    assert [n for p in pages for n in p["ns"]] == [float(n) for n in range(250)]


def test_compat_npm_log_lines(report: dict[str, Any]) -> None:
    logs = report["logs"]
    assert logs["value"] == "done"
    # ConvexHttpClient hands each line to logger.log(prefix, color, text).
    lines = [(entry[0], entry[1], entry[-1]) for entry in logs["queryLines"]]
    assert lines == [
        ("log", "%c[CONVEX Q(items:chatty)] [LOG]", "hello npm"),
        ("log", "%c[CONVEX Q(items:chatty)] [INFO]", "info for npm"),
        ("log", "%c[CONVEX Q(items:chatty)] [WARN]", "careful"),
    ]
    lines = [(entry[0], entry[1], entry[-1]) for entry in logs["actionLines"]]
    assert lines == [("log", "%c[CONVEX A(items:relabel)] [LOG]", "action read 41.0")]
