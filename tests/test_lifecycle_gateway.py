"""A gateway's start fails at each of its steps in turn: the steps before it stop in
reverse, nothing is left running (the autouse guards check threads and tasks), and
the data directory opens again. Then real failures, and a bounded close."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from lifecycle_kit import GATEWAY_STEPS

from gateway import Gateway, Settings
from gateway.errors import AppLoadError, SchemaEnforcementError, StartError
from gateway.lifecycle import Phase

GREENHOUSE = Path(__file__).resolve().parent.parent / "examples" / "greenhouse"


class Recorder:
    """A step hook: records every start and stop; fails the start of ``fail_at``."""

    def __init__(self, fail_at: str | None = None) -> None:
        self.fail_at = fail_at
        self.started: list[str] = []
        self.stopped: list[str] = []

    async def __call__(self, phase: Phase, name: str) -> None:
        if phase == "stop":
            self.stopped.append(name)
            return
        if name == self.fail_at:
            raise OSError(5, "Input/output error (injected)")
        self.started.append(name)


async def _reopens(data: Path) -> None:
    """The store was closed (its lock released, its threads joined): it opens again."""
    async with Gateway.open(GREENHOUSE, data) as gw:
        assert await gw.run_query("readings:latest", {"device": "d1"}) == []


async def test_a_clean_start_runs_every_step_in_order_and_close_reverses_them(
    tmp_path: Path,
) -> None:
    hook = Recorder()
    async with Gateway.open(GREENHOUSE, tmp_path / "d", step_hook=hook):
        assert hook.started == GATEWAY_STEPS
    assert hook.stopped == GATEWAY_STEPS[::-1]


@pytest.mark.parametrize("step", GATEWAY_STEPS)
async def test_a_failure_at_each_step_unwinds_the_steps_before_it(
    step: str, tmp_path: Path
) -> None:
    hook, data = Recorder(fail_at=step), tmp_path / "d"
    with pytest.raises(StartError) as caught:
        await Gateway.launch(GREENHOUSE, data, keep_last_good=True, step_hook=hook)
    assert str(caught.value) == f"cannot start: {step}: Input/output error (injected)"
    assert caught.value.step == step
    before = GATEWAY_STEPS[: GATEWAY_STEPS.index(step)]
    assert hook.started == before
    assert hook.stopped == before[::-1]
    await _reopens(data)


async def test_start_raises_the_steps_own_error_after_unwinding(tmp_path: Path) -> None:
    """In-process users keep catching what they caught before (``AppLoadError``...)."""
    hook = Recorder(fail_at="scheduler")
    with pytest.raises(OSError, match="injected") as caught:
        await Gateway.start(GREENHOUSE, tmp_path / "d", step_hook=hook)
    assert "while starting the gateway: scheduler" in "".join(caught.value.__notes__)
    assert hook.stopped == GATEWAY_STEPS[: GATEWAY_STEPS.index("scheduler")][::-1]
    await _reopens(tmp_path / "d")


async def test_a_data_dir_that_is_a_file_fails_the_store_step(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("not a directory")
    hook = Recorder()
    with pytest.raises(StartError) as caught:
        await Gateway.launch(GREENHOUSE, data, step_hook=hook)
    assert caught.value.step == "store"
    assert "\n" not in str(caught.value) and str(data) in str(caught.value)
    assert hook.stopped == ["auth", "app"]


async def test_a_broken_module_fails_the_app_step(make_app, tmp_path: Path) -> None:
    app = make_app(fns="def f(:\n    pass\n")
    with pytest.raises(StartError, match=r"^cannot start: app: .*fns\.py:1: SyntaxError") as caught:
        await Gateway.launch(app, tmp_path / "d")
    assert isinstance(caught.value.__cause__, AppLoadError)


async def test_a_schema_the_data_breaks_fails_the_schema_step(make_app, tmp_path: Path) -> None:
    loose = """
        from gateway import define_schema, define_table, v
        schema = define_schema({"t": define_table({"x": v.any()})})
    """
    fns = """
        from gateway import mutation
        @mutation
        async def add(ctx, args):
            return await ctx.db.insert("t", {"x": "text"})
    """
    app = make_app(schema=loose, fns=fns)
    async with Gateway.open(app, tmp_path / "d") as gw:
        await gw.run_mutation("fns:add")
    (app / "convex" / "schema.py").write_text(
        "from gateway import define_schema, define_table, v\n"
        'schema = define_schema({"t": define_table({"x": v.float64()})})\n'
    )
    hook = Recorder()
    with pytest.raises(StartError) as caught:
        await Gateway.launch(app, tmp_path / "d", step_hook=hook)
    assert caught.value.step == "schema"
    assert isinstance(caught.value.__cause__, SchemaEnforcementError)
    assert hook.stopped == ["system tables", "store", "auth", "app"]


async def test_a_last_good_copy_that_cannot_be_written_fails_its_step(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "app-last-good.new").write_text("in the way")  # where the copy is built
    hook = Recorder()
    with pytest.raises(StartError) as caught:
        await Gateway.launch(GREENHOUSE, data, keep_last_good=True, step_hook=hook)
    assert caught.value.step == "last good copy"
    assert hook.stopped == ["schema", "system tables", "store", "auth", "app"]
    (data / "app-last-good.new").unlink()
    await _reopens(data)


async def test_close_is_bounded_when_a_step_hangs_and_the_store_still_closes(
    tmp_path: Path, caplog
) -> None:
    async def hang_one_stop(phase: Phase, name: str) -> None:
        if (phase, name) == ("stop", "stored files"):
            await asyncio.Event().wait()

    settings = Settings(shutdown_timeout_s=0.8)
    gw = await Gateway.start(GREENHOUSE, tmp_path / "d", settings, step_hook=hang_one_stop)
    began = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="gateway.lifecycle"):
        await gw.close()
    assert time.monotonic() - began < 0.8 + 0.4
    assert "gateway: stopping stored files took longer than" in caplog.text
    await gw.close()  # idempotent
    await _reopens(tmp_path / "d")  # the runtime, store and app steps stopped after it
