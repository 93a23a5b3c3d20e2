"""``deploy/convex/``: type-checked with ``tsc`` against npm ``convex``, its ``convex-test``
suite run by ``vitest`` under Node, and its golden batch fixtures valid per
``gateway/replication/batch.py``.

The npm packages (``deploy/convex/package.json``, exact versions) are installed once into
a cache outside the repository, keyed by that file's digest, as ``tests/compat`` installs
npm ``convex``; each run copies the sources to ``tmp_path`` beside a link to that install.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from debian import ensure_programs

from gateway.replication.batch import GAP_CODE, MAX_BATCH_CHANGES, UNAUTHORIZED_CODE

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "convex"
FIXTURES = sorted((DEPLOY / "fixtures").glob("*.json"))
NPM_DEADLINE_S = 300.0
RUN_DEADLINE_S = 90.0
INSTALLED_MARKER = ".outpost-installed"
NODE_AT_LEAST = (20, 19)  # vite 8, under vitest 4
BATCH_KEYS = {"gateway", "key", "epoch", "first", "last", "clockTrusted", "schema", "changes"}
CHANGE_KEYS = {"seq", "op", "table", "id", "ts", "doc"}


def _cache_dir(digest: str) -> Path:
    """Outside the repository, so fresh clones on one machine share one install."""
    name = f"outpost-tests/npm-deploy-convex-{digest}"
    try:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        (cache / name).mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # no usable home directory
        cache = Path(tempfile.gettempdir())
    return cache / name


def _install(npm: str, prefix: Path, manifest: bytes, digest: str) -> None:
    (prefix / "package.json").write_bytes(manifest)
    cmd = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--include=dev"]
    cmd += ["--prefer-offline", "--loglevel=error", "--prefix", str(prefix)]
    done = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=NPM_DEADLINE_S
    )
    assert done.returncode == 0, (
        f"npm install of deploy/convex/package.json into {prefix} failed "
        f"({done.returncode}):\n{done.stdout}\n{done.stderr}"
    )
    (prefix / INSTALLED_MARKER).write_text(digest)


def _check_node(node: str) -> None:
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major, minor = (int(part) for part in version.stdout.strip().lstrip("v").split(".")[:2])
    if (major, minor) < NODE_AT_LEAST:
        pytest.fail(
            f"the deploy/convex tests need Node >= {'.'.join(map(str, NODE_AT_LEAST))} "
            f"(vitest 4), {node} is {version.stdout.strip()}: install a newer nodejs "
            "(Debian trixie's, or NodeSource's)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def deploy_npm() -> Path:
    """A directory whose ``node_modules`` holds deploy/convex's devDependencies."""
    found = ensure_programs(["node", "npm"], ["nodejs", "npm"], "the deploy/convex tests")
    _check_node(found["node"])
    npm = found["npm"]
    manifest = (DEPLOY / "package.json").read_bytes()
    digest = hashlib.sha256(manifest).hexdigest()[:16]
    prefix = _cache_dir(digest)
    marker = prefix / INSTALLED_MARKER
    if marker.exists() and marker.read_text() == digest:
        return prefix
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f"{prefix.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be installing it right now
        if not (marker.exists() and marker.read_text() == digest):
            _install(npm, prefix, manifest, digest)
    return prefix


@pytest.fixture
def project(deploy_npm: Path, tmp_path: Path) -> Path:
    """deploy/convex's sources in ``tmp_path``, with ``node_modules`` linked to the install."""
    work = tmp_path / "convex-project"
    shutil.copytree(DEPLOY, work, ignore=shutil.ignore_patterns("node_modules"))
    (work / "node_modules").symlink_to(deploy_npm / "node_modules", target_is_directory=True)
    return work


def _run_bin(project: Path, name: str, *args: str) -> None:
    node = ensure_programs(["node"], ["nodejs"], "the deploy/convex tests")["node"]
    cmd = [node, str(project / "node_modules" / ".bin" / name), *args]
    env = {**os.environ, "CI": "1", "NO_COLOR": "1", "FORCE_COLOR": "0"}
    done = subprocess.run(
        cmd,
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE_S,
    )
    assert done.returncode == 0, (
        f"{name} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    )


def test_deploy_convex_typechecks(project: Path) -> None:
    _run_bin(project, "tsc", "--noEmit")


def test_deploy_convex_vitest_suite(project: Path) -> None:
    _run_bin(project, "vitest", "run")


# --- the golden fixtures ------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _batch_problems(batch: dict[str, Any]) -> list[str]:
    """Why ``batch`` is not a batch as gateway/replication/batch.py states (none: it is)."""
    if set(batch) != BATCH_KEYS:
        return [f"keys {sorted(batch)} != {sorted(BATCH_KEYS)}"]
    problems = []
    for name in ("gateway", "key", "schema"):
        if not isinstance(batch[name], str):
            problems.append(f"{name} is not a string")
    for name in ("epoch", "first", "last"):
        if not _is_number(batch[name]):
            problems.append(f"{name} is not a float (Convex float64)")
    if not isinstance(batch["clockTrusted"], bool):
        problems.append("clockTrusted is not a bool")
    changes = batch["changes"]
    if not 1 <= len(changes) <= MAX_BATCH_CHANGES:
        problems.append(f"{len(changes)} changes")
    seqs = [c.get("seq") for c in changes]
    if seqs != [batch["first"] + i for i in range(len(changes))] or seqs[-1] != batch["last"]:
        problems.append(f"seqs {seqs} are not exactly first..last")
    for c in changes:
        problems += _change_problems(c)
    return problems


def _change_problems(change: dict[str, Any]) -> list[str]:
    if set(change) != CHANGE_KEYS:
        return [f"change keys {sorted(change)}"]
    problems = []
    if change["op"] not in ("insert", "update", "delete", "skip"):
        problems.append(f"op {change['op']!r}")
    if not (isinstance(change["ts"], str) and change["ts"].isdigit()):
        problems.append(f"ts {change['ts']!r} is not a decimal string")
    has_doc = change["op"] in ("insert", "update")
    if has_doc != isinstance(change["doc"], dict):
        problems.append(f"{change['op']} with doc {change['doc']!r}")
    if has_doc and (
        change["doc"].get("_id") != change["id"] or "_creationTime" not in change["doc"]
    ):
        problems.append("doc lacks its system fields")
    return problems


def test_fixtures_exist() -> None:
    names = {path.stem for path in FIXTURES}
    assert {"ingest", "gap", "overlap", "epoch", "unauthorized"} <= names, names


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_batches_follow_the_contract(path: Path) -> None:
    fixture = json.loads(path.read_text())
    for i, step in enumerate(fixture["steps"]):
        assert _batch_problems(step["batch"]) == [], f"step {i}"
        assert ("expect" in step) != ("error" in step), f"step {i}: one of expect / error"
        if "error" in step:
            assert step["error"]["code"] in (GAP_CODE, UNAUTHORIZED_CODE), f"step {i}"
            if step["error"]["code"] == GAP_CODE:
                assert step["batch"]["first"] > step["error"]["applied"] + 1, f"step {i}"
        else:
            assert step["expect"]["applied"] == _expected_mark(fixture["steps"][: i + 1], step)


def _expected_mark(steps: list[dict[str, Any]], step: dict[str, Any]) -> float:
    """The mark batch.py's rules give after ``steps`` for ``step``'s (gateway, epoch)."""
    key = (step["batch"]["gateway"], step["batch"]["epoch"])
    applied: float | None = None
    for s in steps:
        batch = s["batch"]
        if (batch["gateway"], batch["epoch"]) != key or "error" in s:
            continue
        if applied is None or batch["first"] <= applied + 1:
            applied = max(applied or batch["last"], batch["last"])
    assert applied is not None
    return applied
