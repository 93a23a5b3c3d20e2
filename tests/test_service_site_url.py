"""``--port 0``: the site URL derived from host and port names the port bound."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway import Settings
from gateway.service import Service

NOTES = """
from gateway import query

@query(args={})
async def nothing(ctx, args):
    return None
"""


async def test_a_derived_site_url_names_the_port_bound(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    derived = Settings(port=0, site_url="http://127.0.0.1:0", data_dir=str(tmp_path / "d"))
    async with Service(make_app(notes=NOTES), derived) as service:
        assert service.port != 0
        url = service.gateway.runtime.storage_url("abc")
        assert url == f"http://127.0.0.1:{service.port}/api/storage/abc"


async def test_a_site_url_the_user_set_is_kept(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    chosen = Settings(port=0, site_url="https://gw.example:8443", data_dir=str(tmp_path / "d"))
    async with Service(make_app(notes=NOTES), chosen) as service:
        assert (
            service.gateway.runtime.storage_url("abc") == "https://gw.example:8443/api/storage/abc"
        )
