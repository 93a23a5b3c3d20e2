"""Upload tokens: single use, Convex's hour on a monotonic clock, released by a failed
upload, bounded in number; and a crashed upload's temporary file is swept at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import Gateway
from gateway.runtime.upload_tokens import UploadTokenError, UploadTokens


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_carries_one_upload() -> None:
    tokens = UploadTokens()
    token = tokens.issue()
    tokens.claim(token)
    with pytest.raises(UploadTokenError, match="in progress"):
        tokens.claim(token)  # a second POST while the first is reading its body
    tokens.complete(token)
    with pytest.raises(UploadTokenError, match="already used"):
        tokens.claim(token)


def test_a_failed_upload_releases_its_token() -> None:
    tokens = UploadTokens()
    token = tokens.issue()
    tokens.claim(token)
    tokens.release(token)
    tokens.claim(token)  # the browser retries the same URL
    tokens.complete(token)


def test_tokens_expire_after_an_hour_of_monotonic_time() -> None:
    clock = Clock()
    tokens = UploadTokens(clock=clock)
    token = tokens.issue()
    clock.now += 3600.0
    tokens.claim(token)  # still valid at the hour itself
    tokens.release(token)
    clock.now += 0.001
    with pytest.raises(UploadTokenError, match="unknown or has expired"):
        tokens.claim(token)
    with pytest.raises(UploadTokenError, match="unknown or has expired"):
        tokens.claim("never-issued")


def test_an_upload_in_progress_outlives_its_token_hour() -> None:
    clock = Clock()
    tokens = UploadTokens(clock=clock)
    token = tokens.issue()
    tokens.claim(token)
    clock.now += 7200.0
    tokens.issue()  # forgetting old tokens never drops one being uploaded to
    tokens.complete(token)
    with pytest.raises(UploadTokenError):
        tokens.claim(token)


def test_the_number_of_tokens_is_bounded() -> None:
    clock = Clock()
    tokens = UploadTokens(max_tokens=3, clock=clock)
    first = tokens.issue()
    for _ in range(10):
        tokens.issue()
    assert len(tokens) == 3
    with pytest.raises(UploadTokenError):
        tokens.claim(first)  # the oldest was forgotten
    clock.now += 3601.0
    tokens.issue()
    assert len(tokens) == 1  # expired ones go as soon as a token is issued


def test_tokens_are_unguessable_and_distinct() -> None:
    tokens = UploadTokens()
    issued = {tokens.issue() for _ in range(1000)}
    assert len(issued) == 1000
    assert all(len(t) >= 32 for t in issued)


FNS = """
    from gateway import mutation

    @mutation
    async def url(ctx, args):
        return await ctx.storage.generate_upload_url()
"""


async def test_a_restart_forgets_tokens_and_sweeps_temporary_files(
    make_app: Any, tmp_path: Path
) -> None:
    app = make_app(files=FNS)
    async with Gateway.open(app, tmp_path / "d") as gw:
        url = await gw.run_mutation("files:url")
        assert url.startswith("http://127.0.0.1:3210/api/storage/upload?token=")
        token = url.split("token=", 1)[1]
        gw.runtime.blobs.uploads.claim(token)
        gw.runtime.blobs.uploads.release(token)
    # What a crash mid-upload leaves: a temporary file no document names.
    left = tmp_path / "d" / "storage" / ".upload-0123456789abcdef.tmp"
    left.parent.mkdir(mode=0o700, exist_ok=True)
    left.write_bytes(b"half a file")
    async with Gateway.open(app, tmp_path / "d") as gw:
        assert not left.exists()
        with pytest.raises(UploadTokenError, match="not across a gateway restart"):
            gw.runtime.blobs.uploads.claim(token)
