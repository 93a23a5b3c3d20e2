"""The ``hub`` setting: a boolean from outpost.toml or OUTPOST_HUB, refused otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config_file import resolve_settings
from gateway.errors import ConfigError


@pytest.mark.parametrize(("text", "value"), [("true", True), ("1", True), ("False", False)])
def test_the_environment_sets_hub(tmp_path: Path, text: str, value: bool) -> None:
    resolved = resolve_settings(tmp_path, environ={"OUTPOST_HUB": text})
    assert resolved.settings.hub is value
    assert resolved.origins["hub"] == "OUTPOST_HUB"


def test_the_file_sets_hub_and_a_non_boolean_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outpost.toml").write_text("hub = true\n")
    assert resolve_settings(tmp_path).settings.hub is True
    (tmp_path / "outpost.toml").write_text('hub = "yes"\n')
    with pytest.raises(ConfigError, match=r"outpost.toml:1: hub must be a boolean"):
        resolve_settings(tmp_path)
    with pytest.raises(ConfigError, match="OUTPOST_HUB: hub must be a boolean"):
        resolve_settings(tmp_path / "none", environ={"OUTPOST_HUB": "maybe"})
