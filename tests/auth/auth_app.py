"""The auth tests' app: functions that show who called, and its ``auth.config.py``."""

from __future__ import annotations

import textwrap
from pathlib import Path

WHO = """
    from gateway import action, mutation, query

    @query
    async def me(ctx, args):
        return await ctx.auth.get_user_identity()

    @query
    async def subject(ctx, args):
        identity = await ctx.auth.get_user_identity()
        return None if identity is None else identity["subject"]

    @mutation
    async def whoami(ctx, args):
        identity = await ctx.auth.get_user_identity()
        return None if identity is None else identity["tokenIdentifier"]

    @action
    async def act(ctx, args):
        identity = await ctx.auth.get_user_identity()
        return None if identity is None else identity["subject"]
"""

# The app's own ``auth.py`` next to ``auth.config.py``: both must load.
AUTH = """
    from gateway import query

    @query
    async def ping(ctx, args):
        return "pong"
"""


def write_app(root: Path, issuer_url: str | None, audience: str = "outpost-tests") -> Path:
    """An app under ``root``; with ``issuer_url``, an OIDC provider for it."""
    convex = root / "convex"
    convex.mkdir(parents=True, exist_ok=True)
    (convex / "who.py").write_text(textwrap.dedent(WHO))
    (convex / "auth.py").write_text(textwrap.dedent(AUTH))
    write_config(root, issuer_url, audience)
    return root


def write_config(root: Path, issuer_url: str | None, audience: str = "outpost-tests") -> None:
    config = root / "convex" / "auth.config.py"
    if issuer_url is None:
        config.unlink(missing_ok=True)
        return
    config.write_text(
        "auth_config = {\n"
        f'    "providers": [{{"domain": "{issuer_url}", "applicationID": "{audience}"}}],\n'
        "}\n"
    )
