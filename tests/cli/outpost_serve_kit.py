"""``outpost serve`` as a subprocess for CLI tests: its URL once it listens, stopped after."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

OUTPOST = Path(sys.executable).parent / "outpost"
READY = "Outpost listening on "


@asynccontextmanager
async def serving(app: Path, data: Path, env: dict[str, str]) -> AsyncIterator[str]:
    """``outpost serve APP --data-dir DATA`` on an ephemeral port; yields its URL."""
    proc = await asyncio.create_subprocess_exec(
        str(OUTPOST), "serve", str(app), "--port", "0", "--data-dir", str(data),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith(READY), line
        yield line.strip().removeprefix(READY)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
