"""The admin key: created once with mode 0600, required for internal functions."""

from __future__ import annotations

import base64
import json
import logging
import stat

from gateway.http import ADMIN_KEY_FILENAME, load_or_create_admin_key


def test_key_is_created_once_with_mode_0600(tmp_path, caplog) -> None:
    data = tmp_path / "fresh" / "data"
    with caplog.at_level(logging.DEBUG):
        key = load_or_create_admin_key(data)
    path = data / ADMIN_KEY_FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key
    assert len(key) >= 64
    assert load_or_create_admin_key(data) == key
    assert key not in caplog.text  # never logged


def test_a_key_readable_by_others_is_tightened(tmp_path) -> None:
    key = load_or_create_admin_key(tmp_path)
    (tmp_path / ADMIN_KEY_FILENAME).chmod(0o644)
    assert load_or_create_admin_key(tmp_path) == key
    assert stat.S_IMODE((tmp_path / ADMIN_KEY_FILENAME).stat().st_mode) == 0o600


async def test_internal_function_needs_the_admin_key(api) -> None:
    request = {"path": "messages:secret", "args": {}}
    status, body = await api.post("/api/query", request)
    assert (status, body["status"]) == (200, "error")
    assert body["errorMessage"] == "Could not find public function for 'messages:secret'."

    status, body = await api.post(
        "/api/query", request, headers={"Authorization": f"Convex {api.admin_key}"}
    )
    assert (status, body["value"]) == (200, "s3cret")

    status, body = await api.post(f"/api/query?adminKey={api.admin_key}", request)
    assert (status, body["value"]) == (200, "s3cret")

    status, body = await api.post(
        "/api/function", request, headers={"Authorization": f"convex {api.admin_key}"}
    )
    assert (status, body["value"]) == (200, "s3cret")


async def test_wrong_admin_key_is_refused_and_nothing_runs(api) -> None:
    await api.post("/api/mutation", {"path": "messages:send", "args": {"body": "keep"}})
    before = await api.state()
    for headers, path in [
        ({"Authorization": "Convex not-the-key"}, "/api/mutation"),
        ({"Authorization": f"Convex {api.admin_key}x"}, "/api/mutation"),
        ({}, "/api/mutation?adminKey=wrong"),
    ]:
        status, body = await api.post(path, {"path": "messages:wipe", "args": {}}, headers=headers)
        assert status == 403
        assert body["code"] == "BadAdminKey"
        assert "admin key" in body["message"]
        assert api.admin_key not in body["message"]
    assert await api.state() == before


async def test_bad_authorization_header_is_401(api) -> None:
    status, body = await api.post(
        "/api/query", {"path": "solo"}, headers={"Authorization": "Basic abc"}
    )
    assert (status, body["code"]) == (401, "InvalidAuthHeader")


async def test_bearer_token_without_auth_providers_is_401(api) -> None:
    # Verified for real (tests/auth); an app with no auth.config.py refuses every token.
    status, body = await api.post(
        "/api/query", {"path": "solo"}, headers={"Authorization": "bearer  eyJ.x.y "}
    )
    assert (status, body["code"]) == (401, "NoAuthProvider")


async def test_admin_acting_as_a_user(api) -> None:
    identity = base64.b64encode(json.dumps({"subject": "u1"}).encode()).decode()
    headers = {"Authorization": f"Convex {api.admin_key}:{identity}"}
    status, body = await api.post("/api/query", {"path": "messages:secret"}, headers=headers)
    assert (status, body["value"]) == (200, "s3cret")
    headers = {"Authorization": f"Convex {api.admin_key}:!!notbase64"}
    status, body = await api.post("/api/query", {"path": "messages:secret"}, headers=headers)
    assert (status, body["code"]) == (401, "InvalidAuthHeader")


async def test_table_data_pages_a_table_for_the_admin_key_only(api) -> None:
    """``_system/cli/tableData``, what ``npx convex data`` calls: dead letters and any
    other table over the HTTP API, with the admin key."""
    for body in ("a", "b"):
        await api.post("/api/mutation", {"path": "messages:send", "args": {"body": body}})
    request = {
        "path": "_system/cli/tableData",
        "args": {
            "table": "messages",
            "order": "desc",
            "paginationOpts": {"numItems": 1, "cursor": None},
        },
        "format": "json",
    }
    status, body = await api.post("/api/query", request)
    assert (status, body["status"]) == (200, "error")
    assert "Could not find public function" in body["errorMessage"]
    status, body = await api.post(
        "/api/query", request, headers={"Authorization": f"Convex {api.admin_key}"}
    )
    assert status == 200 and body["status"] == "success", body
    assert [d["body"] for d in body["value"]["page"]] == ["b"] and not body["value"]["isDone"]
    request["args"] = {"table": "_dead_letters", "paginationOpts": {"numItems": 5, "cursor": None}}
    status, body = await api.post(
        "/api/query", request, headers={"Authorization": f"Convex {api.admin_key}"}
    )
    assert status == 200 and body["value"]["page"] == [], body
