"""Device credentials: read from a file, or made with ``outpost device add ID --json``.

A credentials file is a JSON list of the objects ``outpost device add ID --json``
prints (``device``, ``username``, ``password``, ``host``, ``port``), or one such object
per line. The gateway shows a password only once, so ``provision`` saves the devices it
adds to the file at once (mode 0600) and reuses those already in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict


class Credentials(TypedDict):
    device: str
    username: str
    password: str
    host: str
    port: int


def load_credentials(path: Path) -> list[Credentials]:
    """The credentials in ``path`` (a JSON list, or JSON lines); [] if there is no file."""
    if not path.exists():
        return []
    text = path.read_text()
    if text.lstrip().startswith("["):
        items: list[Any] = json.loads(text)
    else:
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    for item in items:
        missing = {"device", "username", "password", "host", "port"} - set(item)
        if missing:
            raise ValueError(f"{path}: an entry lacks {sorted(missing)}: {item.get('device')!r}")
    return items


def provision(
    device_ids: Sequence[str],
    app_dir: Path,
    data_dir: Path | None,
    store: Path,
    outpost: Sequence[str] = (sys.executable, "-m", "gateway.cli"),
) -> list[Credentials]:
    """Credentials for ``device_ids``: from ``store``, else added with ``outpost device add``."""
    known = {c["device"]: c for c in load_credentials(store)}
    for device_id in device_ids:
        if device_id in known:
            continue
        command = [*outpost, "device", "add", device_id, "--json", str(app_dir)]
        if data_dir is not None:
            command += ["--data-dir", str(data_dir)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        known[device_id] = json.loads(done.stdout)
        save_credentials(store, list(known.values()))  # at once: shown only this once
    return [known[device_id] for device_id in device_ids]


def save_credentials(path: Path, credentials: Sequence[Credentials]) -> None:
    """Write ``credentials`` as JSON lines, readable by this user only (they hold passwords)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(json.dumps(c) + "\n" for c in credentials)
    os.replace(tmp, path)
