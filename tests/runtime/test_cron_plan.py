"""The clock rule's pieces, one by one (the end-to-end tests drive them through a Gateway)."""

from __future__ import annotations

import datetime as dt

from gateway.runtime import cron_plan
from gateway.runtime.cron_expr import CronExpr
from gateway.runtime.crons import CalendarSchedule, IntervalSchedule

HOUR_MS = 3_600_000.0
HOURLY = CalendarSchedule(CronExpr.parse("0 * * * *"))
EVERY_MINUTE = CalendarSchedule(CronExpr.parse("* * * * *"))
TEN_MIN = IntervalSchedule(600)


def at(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp() * 1000


def test_an_occurrence_still_on_time_is_not_skipped() -> None:
    occ = at("2026-12-04T03:00")
    assert cron_plan.skip_missed(HOURLY, occ, occ + 59_000) == (occ, 0)


def test_late_occurrences_are_counted_and_the_next_on_time_one_chosen() -> None:
    occ = at("2026-12-04T03:00")
    assert cron_plan.skip_missed(HOURLY, occ, at("2026-12-04T06:30")) == (
        at("2026-12-04T07:00"),
        4,
    )
    # an interval keeps its phase: 03:00 + k * 10 min
    assert cron_plan.skip_missed(TEN_MIN, occ, at("2026-12-04T04:05")) == (
        at("2026-12-04T04:10"),
        7,
    )


def test_a_year_of_minutes_is_counted_up_to_the_cap() -> None:
    occ = at("2026-01-01T00:00")
    nxt, count = cron_plan.skip_missed(EVERY_MINUTE, occ, at("2027-01-01T00:00"))
    assert count == cron_plan.MAX_COUNTED_SKIPS
    assert at("2026-12-31T23:59") <= nxt <= at("2027-01-01T00:00")


def test_jumps() -> None:
    nxt, now = at("2026-12-04T04:00"), at("2026-12-04T03:30")
    # intervals follow the monotonic clock: the same instant in the new wall time
    assert cron_plan.after_jump(TEN_MIN, nxt, 86_400_000, now) == nxt + 86_400_000
    # forward: the plan stays, so what was passed over comes due late and is skipped
    assert cron_plan.after_jump(HOURLY, nxt, 86_400_000, now + 86_400_000) == nxt
    # a small step back keeps the plan (no repeat), a large one re-plans (no stall)
    assert cron_plan.after_jump(HOURLY, nxt, -HOUR_MS / 2, now - HOUR_MS / 2) == nxt
    far_back = now - 3 * 86_400_000
    assert cron_plan.after_jump(HOURLY, nxt, -3 * 86_400_000, far_back) == far_back + HOUR_MS / 2


def test_resume_after_a_restart() -> None:
    now = at("2026-12-04T03:30")
    stored_next, stored_prev = at("2026-12-04T04:00"), at("2026-12-04T03:00")
    assert cron_plan.resume(HOURLY, stored_next, stored_prev, now) == stored_next
    # booted with a clock behind the last run by more than the hold: re-planned
    early = now - 10 * 86_400_000
    assert cron_plan.resume(HOURLY, stored_next, stored_prev, early) == early + HOUR_MS / 2
    assert cron_plan.resume(TEN_MIN, stored_next, stored_prev, early) == early  # at once


def test_skip_before_counts_what_is_before_the_cutoff() -> None:
    occ = at("2026-12-04T03:00")
    assert cron_plan.skip_before(TEN_MIN, occ, occ) == (occ, 0)
    assert cron_plan.skip_before(TEN_MIN, occ, occ + 1) == (occ + 600_000, 1)
    assert cron_plan.skip_before(HOURLY, occ, at("2026-12-04T05:00")) == (at("2026-12-04T05:00"), 2)
