"""``outpost gateway add|list|remove``: a hub's edge gateways, through the real command."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import Gateway
from gateway.cli import main
from gateway.config import Settings
from gateway.replication.batch import PUSH_PATH, UNAUTHORIZED_CODE
from gateway.replication.credentials import KeyRing, hash_key, read_registry, registry_path

OUTPOST = Path(sys.executable).parent / "outpost"
EDGE = "9a8b7c6d5e4f40312a1b2c3d4e5f6a7b"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    (folder / "convex").mkdir(parents=True)
    return folder


def _data(app: Path) -> Path:
    return app.parent / "data"


def _gateway(app: Path, *args: str) -> int:
    return main(["gateway", *args, str(app), "--data-dir", str(_data(app))])


def _add_json(app: Path, name: str, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert _gateway(app, "add", name, "--json") == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    answer: dict[str, str] = json.loads(out)
    return answer


def test_add_prints_the_key_once_and_stores_only_its_hash(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = _add_json(app, EDGE, capsys)
    assert answer["gateway"] == EDGE and len(answer["key"]) >= 43
    path = registry_path(_data(app))
    assert read_registry(path) == {EDGE: hash_key(answer["key"])}
    assert answer["key"] not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert _gateway(app, "add", EDGE) == 1  # a second add is refused: the key is not reshown
    assert "already exists" in capsys.readouterr().err


def test_plain_add_list_and_remove(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _gateway(app, "list") == 0
    assert "no gateways yet" in capsys.readouterr().err
    assert _gateway(app, "add", "b-edge") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "gateway: b-edge" and lines[1].startswith("key: ")
    assert _gateway(app, "add", "a-edge", "--json") == 0
    capsys.readouterr()
    assert _gateway(app, "list") == 0
    assert capsys.readouterr().out.splitlines() == ["a-edge", "b-edge"]
    assert _gateway(app, "remove", "b-edge") == 0
    assert _gateway(app, "remove", "b-edge") == 1
    assert _gateway(app, "list") == 0
    assert capsys.readouterr().out.splitlines() == ["a-edge"]
    assert _gateway(app, "add", "../etc") == 1
    assert "not a gateway name" in capsys.readouterr().err


def test_concurrent_adds_keep_every_gateway(app: Path) -> None:
    names = [f"edge-{i}" for i in range(8)]
    procs = [
        subprocess.Popen(
            [
                str(OUTPOST),
                "gateway",
                "add",
                name,
                "--json",
                str(app),
                "--data-dir",
                str(_data(app)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in names
    ]
    keys = {}
    for name, proc in zip(names, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        keys[name] = json.loads(out)["key"]
    registry = read_registry(registry_path(_data(app)))
    assert registry == {name: hash_key(key) for name, key in keys.items()}


async def test_remove_revokes_at_once_for_a_running_hub(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _add_json(app, EDGE, capsys)["key"]
    batch = {
        "gateway": EDGE,
        "key": key,
        "epoch": 1.0,
        "first": 1.0,
        "last": 1.0,
        "clockTrusted": False,
        "schema": "",
        "changes": [{"seq": 1.0, "op": "skip", "table": "t", "id": "x", "ts": "1", "doc": None}],
    }
    async with Gateway.open(app, _data(app), Settings(hub=True)) as hub:
        accepted = await hub.call("mutation", PUSH_PATH, batch)
        assert accepted.unwrap() == {"applied": 1.0}
        assert _gateway(app, "remove", EDGE) == 0
        refused = await hub.call("mutation", PUSH_PATH, {**batch, "first": 2.0, "last": 2.0})
        assert refused.error_data == {"code": UNAUTHORIZED_CODE}


def test_a_damaged_registry_is_named_and_refuses_every_key(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _add_json(app, EDGE, capsys)["key"]
    path = registry_path(_data(app))
    ring = KeyRing(path)
    assert ring.verify(EDGE, key) and not ring.verify(EDGE, key + "x")
    path.write_text(path.read_text() + "not a line\n")
    assert not ring.verify(EDGE, key)
    assert _gateway(app, "list") == 1
    assert (
        "gateways:2: not a 'NAME SHA256-HEX' line (fix or move the file)" in capsys.readouterr().err
    )
