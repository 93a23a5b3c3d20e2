"""The official clients' live queries against a real ``outpost serve`` (compat app).

npm ``convex@1.48.0`` ``ConvexClient`` under Node (``node/live_client.mjs``) and PyPI
``convex`` 0.8.1 ``ConvexClient`` (its Rust core speaks the sync protocol).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from compat.conftest import run_node
from convex import ConvexClient

NODE_SCRIPT = Path(__file__).resolve().parent / "node" / "live_client.mjs"


def test_sync_npm_convex_client_on_update(server: Any, convex_npm: Path) -> None:
    batch = f"npm-live-{uuid.uuid4().hex[:8]}"
    report = run_node(str(NODE_SCRIPT), convex_npm, {"url": server.url, "batch": batch})
    assert "failure" not in report, report
    assert report["initial"] == 0
    # Each mutation resolved only after the subscription showed its write.
    assert report["atResolve"] == [
        {"id": "string", "latest": 1},
        {"id": "string", "latest": 2},
        {"id": "string", "latest": 3},
    ], report
    assert report["seen"] == [0, 1, 2, 3], report
    assert not [entry for entry in report["logged"] if entry[0] == "error"], report["logged"]


def test_sync_pip_convex_client_query_subscribe_mutation(server: Any) -> None:
    batch = f"pip-live-{uuid.uuid4().hex[:8]}"
    client = ConvexClient(server.url)
    assert client.query("items:count", {"batch": batch}) == 0.0
    subscription = client.subscribe("items:count", {"batch": batch})
    updates = iter(subscription)
    assert next(updates) == 0.0
    item_id = client.mutation("items:add", {"batch": batch, "n": 1})
    assert isinstance(item_id, str)
    assert next(updates) == 1.0
    # The mutation returned only after a Transition covering its write: a query sees it.
    client.mutation("items:add", {"batch": batch, "n": 2})
    assert client.query("items:count", {"batch": batch}) == 2.0
    assert next(updates) == 2.0
    assert client.action("items:relabel", {"batch": batch})["n_plus_one"] == 42.0
    assert next(updates) == 3.0
    subscription.unsubscribe()


RESILIENCE_SCRIPT = Path(__file__).resolve().parent / "node" / "resilience_client.mjs"


def test_sync_npm_convex_client_errors_concurrency_and_lost_socket(
    server: Any, convex_npm: Path
) -> None:
    batch = f"npm-res-{uuid.uuid4().hex[:8]}"
    report = run_node(str(RESILIENCE_SCRIPT), convex_npm, {"url": server.url, "batch": batch})
    assert "failure" not in report, report
    # A ConvexError from a subscribed query: the error callback gets its data.
    errors = report["queryError"]["errors"]
    assert errors[0]["name"] == "ConvexError", errors
    assert errors[0]["data"] == {"code": "EMPTY", "batch": f"{batch}-strict"}, errors
    assert report["queryError"]["values"][-1] == 1
    # 200 concurrent mutations: every promise resolved, each applied exactly once.
    assert report["concurrent"] == {"resolved": 200, "distinctIds": 200, "count": 200}
    # Socket dropped after the commit, before the answer: reconnect, applied once.
    lost = report["lost"]
    assert lost["kills"] == 1 and lost["connections"] >= 2, lost
    assert lost["ids"] == ["string", "string"]
    assert lost["count"] == 2, lost
    assert lost["seen"][0] == 0 and lost["seen"][-1] == 2 and 3 not in lost["seen"], lost


def test_sync_pip_convex_client_errors(server: Any) -> None:
    """Errors through the PyPI client's socket: ConvexError data, plain errors, bad args."""
    from convex import ConvexError

    client = ConvexClient(server.url)
    batch = f"pip-err-{uuid.uuid4().hex[:8]}"
    try:
        client.mutation("items:refuse", {"code": "E42"})
    except ConvexError as exc:
        assert exc.data == {"code": "E42", "limit": 3.0, "tags": ["a", "b"], "ok": False}
    else:
        pytest.fail("items:refuse did not raise")
    assert client.query("items:count", {"batch": "refused"}) == 0.0  # its write rolled back
    try:
        client.query("items:strict", {"batch": batch})
    except ConvexError as exc:
        assert exc.data == {"code": "EMPTY", "batch": batch}
    else:
        pytest.fail("items:strict did not raise on an empty batch")
    with pytest.raises(Exception, match="ArgumentValidationError"):
        client.mutation("items:add", {"batch": batch, "n": "not a number"})
    with pytest.raises(Exception, match="Could not find public function"):
        client.query("items:nope", {})
    # The socket is still good after the errors.
    client.mutation("items:add", {"batch": batch, "n": 1})
    assert client.query("items:strict", {"batch": batch}) == 1.0
