"""The LAN dashboard's page: static files in ``static/``, served by ``gateway.http.dashboard``.

Plain ES modules and CSS, written by hand: no build step at install time, no
third-party code, nothing fetched from the network at run time. The page reaches the
gateway only through its public protocols (the sync WebSocket and the HTTP API, with
the admin key), so this package holds no Python beyond where the files are.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def static_dir() -> Traversable:
    """The folder of the page's files (inside the installed package or the checkout)."""
    return files(__name__).joinpath("static")
