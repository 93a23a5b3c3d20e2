"""``convex/auth.config.py``: loaded on its own, checked at load, followed on reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from auth.auth_app import write_app, write_config
from auth.auth_issuer import Issuer

from gateway import Gateway
from gateway.auth import AuthConfigError
from gateway.runtime.loader import load_app


def test_loaded_beside_an_app_auth_module(tmp_path: Path) -> None:
    app = load_app(write_app(tmp_path, "https://issuer.example"))
    try:
        [provider] = app.auth_providers
        assert (provider.issuer, provider.application_id) == (
            "https://issuer.example",
            "outpost-tests",
        )
        assert "auth:ping" in app.functions  # convex/auth.py is still an ordinary module
        assert not any(path.startswith("auth.config") for path in app.functions)
    finally:
        app.unload()


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("auth_config = []", "must be a dict with a 'providers' list"),
        ("x = 1", "defines no auth_config"),
        ('auth_config = {"providers": [{"domain": "https://i.example"}]}', "applicationID must"),
        ('auth_config = {"providers": [{"domain": "x.example", "applicationID": "a"}]}', "URL"),
        (
            'auth_config = {"providers": [{"type": "customJwt", "issuer": "i", '
            '"jwks": "https://j", "algorithm": "HS256"}]}',
            "algorithm must be one of RS256, ES256",
        ),
        (
            'auth_config = {"providers": [{"type": "customJwt", "issuer": "i", '
            '"jwks": "file:///x", "algorithm": "RS256"}]}',
            "jwks must be an http(s) URL or a data: URL",
        ),
        ('auth_config = {"providers": [{"type": "oidc"}]}', "type must be 'customJwt'"),
        (
            'auth_config = {"providers": [{"domain": "https://i", "applicationID": "a", '
            '"aplicationId": "typo"}]}',
            "unknown keys ['aplicationId']",
        ),
    ],
)
def test_a_bad_shape_names_the_file(tmp_path: Path, source: str, reason: str) -> None:
    root = write_app(tmp_path, None)
    config = root / "convex" / "auth.config.py"
    config.write_text(source + "\n")
    with pytest.raises(AuthConfigError) as caught:
        load_app(root)
    assert str(caught.value).startswith(str(config)) and reason in str(caught.value)


async def test_a_reload_follows_a_changed_config(issuer: Issuer, tmp_path: Path) -> None:
    root = write_app(tmp_path / "app", None)
    async with Gateway.open(root, tmp_path / "data") as gw:
        assert (await _refusal(gw, issuer.sign())).code == "NoAuthProvider"
        write_config(root, issuer.url)
        await gw.reload_app()
        assert (await gw.verify_token(issuer.sign()))["subject"] == "user-1"
        write_config(root, issuer.url, audience="another-app")
        await gw.reload_app()
        assert (await _refusal(gw, issuer.sign())).code == "NoAuthProvider"


async def _refusal(gw: Gateway, token: str) -> Exception:
    with pytest.raises(Exception) as caught:
        await gw.verify_token(token)
    return caught.value
