"""convex/crons.py declarations: Convex's shapes in snake_case, refusals naming file:line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gateway import Gateway, cron_jobs
from gateway.cli.check import check_app
from gateway.errors import AppLoadError
from gateway.runtime.cron_tables import load_states
from gateway.runtime.crons import CalendarSchedule, CronDefinitionError, IntervalSchedule

FNS = """
    from gateway import action, internal_mutation, query

    @internal_mutation
    async def purge(ctx, args):
        pass

    @action
    async def report(ctx, args):
        pass

    @query
    async def count(ctx, args):
        return 0
"""


def expr_of(crons: object, name: str) -> str:
    schedule = crons.jobs[name].schedule  # type: ignore[attr-defined]
    assert isinstance(schedule, CalendarSchedule)
    return schedule.expr.text


def test_shapes_become_schedules() -> None:
    crons = cron_jobs()
    crons.interval("i", {"minutes": 10}, "jobs:purge", {"days": 7})
    crons.interval("h", {"hours": 2}, "jobs:purge")
    crons.hourly("hourly", {"minute_utc": 30}, "jobs:purge")
    crons.daily("daily", {"hour_utc": 3, "minute_utc": 15}, "jobs:purge")
    crons.weekly("weekly", {"day_of_week": "monday", "hour_utc": 8, "minute_utc": 0}, "jobs:report")
    crons.monthly("monthly", {"day": 1, "hour_utc": 16, "minute_utc": 0}, "jobs:report")
    crons.cron("cron", "0 16 1 * *", "jobs:report", {"to": "me"})
    assert crons.jobs["i"].schedule == IntervalSchedule(600)
    assert crons.jobs["i"].args == {"days": 7}
    assert crons.jobs["h"].schedule == IntervalSchedule(7200)
    assert expr_of(crons, "hourly") == "30 * * * *"
    assert expr_of(crons, "daily") == "15 3 * * *"
    assert expr_of(crons, "weekly") == "0 8 * * mon"
    assert expr_of(crons, "monthly") == "0 16 1 * *"
    assert crons.jobs["cron"].args == {"to": "me"}


def test_an_omitted_minute_is_stable_and_spread() -> None:
    first, second = cron_jobs(), cron_jobs()
    for crons in (first, second):
        for n in range(40):
            crons.hourly(f"job {n}", None, "jobs:purge")
        crons.daily("d", {"hour_utc": 5}, "jobs:purge")
    minutes = {expr_of(first, f"job {n}") for n in range(40)}
    assert minutes == {expr_of(second, f"job {n}") for n in range(40)}  # stable
    assert len(minutes) > 10  # spread over the hour, not all at :00
    assert expr_of(first, "d").split()[1:] == ["5", "*", "*", "*"]


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda c: c.interval("x", {"minutes": 0}, "jobs:purge"), "minutes is a whole number"),
        (lambda c: c.interval("x", {"minutes": 1, "seconds": 5}, "jobs:purge"), "exactly one"),
        (lambda c: c.interval("x", {"days": 1}, "jobs:purge"), "unknown schedule key"),
        (lambda c: c.interval("x", {"seconds": 1.5}, "jobs:purge"), "whole number"),
        (lambda c: c.interval("x", {"seconds": float("inf")}, "jobs:purge"), "whole number"),
        (lambda c: c.hourly("x", {"minuteUTC": 5}, "jobs:purge"), "snake_case"),
        (lambda c: c.hourly("x", {"minute_utc": 60}, "jobs:purge"), "minute_utc is a whole"),
        (lambda c: c.daily("x", {"minute_utc": 5}, "jobs:purge"), "needs hour_utc"),
        (lambda c: c.daily("x", {"hour_utc": 24}, "jobs:purge"), "hour_utc is a whole"),
        (lambda c: c.weekly("x", {"day_of_week": "mon", "hour_utc": 1}, "j:p"), "day_of_week"),
        (lambda c: c.monthly("x", {"day": 32, "hour_utc": 1}, "jobs:purge"), "day is a whole"),
        (lambda c: c.cron("x", "0 3 * *", "jobs:purge"), "has 4 fields"),
        (lambda c: c.cron("x", "0 0 30 2 *", "jobs:purge"), "never runs"),
        (lambda c: c.cron("", "0 3 * * *", "jobs:purge"), "printable ASCII"),
        (lambda c: c.cron("x", "0 3 * * *", 42), "a function or a 'module:function'"),
        (lambda c: c.cron("x", "0 3 * * *", "jobs:purge", [1]), "args is a dict"),
        (lambda c: c.cron("x", "0 3 * * *", "jobs:purge", {"n": 2**60}), "Int64"),
    ],
)
def test_refusals_name_the_callers_line(call: Callable[..., None], says: str) -> None:
    with pytest.raises(CronDefinitionError) as info:
        call(cron_jobs())
    assert says in str(info.value)
    assert str(info.value).startswith(f"{__file__}:")  # the lambda's line, not ours


def test_a_duplicate_name_names_both_lines() -> None:
    crons = cron_jobs()
    crons.interval("dup", {"seconds": 30}, "jobs:purge")
    with pytest.raises(CronDefinitionError, match="already declared at .*test_cron_defs.py:"):
        crons.daily("dup", {"hour_utc": 1}, "jobs:purge")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('crons.interval("x", {"seconds": 30}, "jobs:nope")', "no function 'jobs:nope'"),
        ('crons.interval("x", {"seconds": 30}, "jobs:count")', "is a query"),
        ('crons.interval("x", {"seconds": 30}, "nowhere:purge")', "no function"),
        ('crons.cron("x", "61 * * * *", "jobs:purge")', "minute: 61 is outside"),
    ],
)
async def test_the_app_does_not_load_with_a_bad_job(
    make_app: Callable[..., Path], tmp_path: Path, line: str, says: str
) -> None:
    crons = f"from gateway import cron_jobs\n\ncrons = cron_jobs()\n{line}\n"
    app = make_app(jobs=FNS, crons=crons)
    with pytest.raises(AppLoadError) as info:
        async with Gateway.open(app, tmp_path / "data"):
            pass
    assert f"{app / 'convex' / 'crons.py'}:4: " in str(info.value)
    assert says in str(info.value)


async def test_crons_must_be_a_cron_jobs(make_app: Callable[..., Path], tmp_path: Path) -> None:
    app = make_app(jobs=FNS, crons="crons = ['not', 'jobs']\n")
    with pytest.raises(AppLoadError, match="write crons = cron_jobs()"):
        async with Gateway.open(app, tmp_path / "data"):
            pass


async def test_a_function_reference_resolves_to_its_own_module(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    crons = (
        "from gateway import cron_jobs\nfrom .jobs import purge, report\n\n"
        "crons = cron_jobs()\n"
        'crons.interval("p", {"hours": 1}, purge)\n'
        'crons.interval("r", {"hours": 1}, report)\n'
    )
    app = make_app(jobs=FNS, crons=crons)
    async with Gateway.open(app, tmp_path / "data") as gw:
        states, _ = await gw.store.read(load_states)
    assert {name: doc["udfPath"] for name, doc in states.items()} == {
        "p": "jobs:purge",
        "r": "jobs:report",
    }


def test_outpost_check_lists_jobs_and_names_a_bad_one(
    make_app: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    good = 'crons.daily("nightly", {"hour_utc": 3, "minute_utc": 0}, "jobs:purge")'
    app = make_app(
        jobs=FNS, crons=f"from gateway import cron_jobs\n\ncrons = cron_jobs()\n{good}\n"
    )
    assert check_app(app) == 0
    assert "cron     'nightly': jobs:purge cron '0 3 * * *' UTC" in capsys.readouterr().out
    bad = 'crons.daily("nightly", {"hour_utc": 3}, "jobs:count")'
    app = make_app(jobs=FNS, crons=f"from gateway import cron_jobs\n\ncrons = cron_jobs()\n{bad}\n")
    assert check_app(app) == 1
    assert f"{app / 'convex' / 'crons.py'}:4: 'jobs:count' is a query" in capsys.readouterr().err
