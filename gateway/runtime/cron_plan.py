"""When a cron job runs next: the clock rule for a box whose wall clock may jump.

A Pi without an RTC boots with a wrong wall clock (1970, or the time fake-hwclock saved
at shutdown) and steps it when NTP arrives, hours or years at once. The rule:

1. Calendar schedules (``cron``, hourly ... monthly) are wall-clock times: "03:00 UTC"
   means what the wall clock says. Interval schedules are durations and live on the
   monotonic clock: a wall-clock jump never moves them.
2. Waits are measured on the monotonic clock and never longer than ``MAX_NAP_S``; at
   each wake the runner compares how far the wall clock moved with how far the
   monotonic clock moved. A difference beyond ``JUMP_TOLERANCE_MS`` is a jump.
3. An occurrence reached more than ``LATE_TOLERANCE_MS`` after its time is skipped and
   logged, never caught up, whatever made it late (gateway off, a busy box, a forward
   jump): a jump of a day forward skips a day of runs instead of firing them at once,
   and the job goes on at its first occurrence that is still on time.
4. A backward jump of at most ``BACKWARD_HOLD_MS`` keeps every plan: occurrences that
   already ran are not run again, and a job waits at most that long extra. A larger
   backward jump (the clock was far ahead, typically a bad saved time) re-plans every
   calendar job from the new time, so nothing stalls for the size of the jump; an
   occurrence may then run a second time, the lesser harm. At start the same rule
   applies with the jump estimated as how far the last handled occurrence is ahead.
"""

from __future__ import annotations

import math

from gateway.runtime.crons import IntervalSchedule, Schedule

LATE_TOLERANCE_MS = 60_000.0  # a wake-up this late still runs the occurrence
JUMP_TOLERANCE_MS = 5_000.0  # wall vs monotonic disagreement that counts as a jump
BACKWARD_HOLD_MS = 3_600_000.0  # a backward jump up to this keeps the plans
MAX_NAP_S = 30.0  # a jump is noticed within this
MAX_COUNTED_SKIPS = 1000  # past this a skip is reported as "at least"


def next_occurrence(schedule: Schedule, after_ms: float) -> float:
    """The occurrence that follows the one at ``after_ms``."""
    if isinstance(schedule, IntervalSchedule):
        return after_ms + schedule.seconds * 1000.0
    return schedule.expr.next_after(after_ms)


def fresh_next(schedule: Schedule, now_ms: float) -> float:
    """The first occurrence of a newly registered job (intervals run at once, as Convex's)."""
    if isinstance(schedule, IntervalSchedule):
        return now_ms
    return schedule.expr.next_after(now_ms)


def skip_missed(schedule: Schedule, occ_ms: float, now_ms: float) -> tuple[float, int]:
    """(the first occurrence from ``occ_ms`` on that is still on time, how many before it
    were too late): rule 3. The count stops at ``MAX_COUNTED_SKIPS``."""
    return skip_before(schedule, occ_ms, now_ms - LATE_TOLERANCE_MS)


def skip_before(schedule: Schedule, occ_ms: float, cutoff: float) -> tuple[float, int]:
    """(the first occurrence from ``occ_ms`` on at or after ``cutoff``, how many are before)."""
    if occ_ms >= cutoff:
        return occ_ms, 0
    if isinstance(schedule, IntervalSchedule):
        period_ms = schedule.seconds * 1000.0
        count = math.floor((cutoff - occ_ms) / period_ms) + 1
        return occ_ms + count * period_ms, count
    count, t = 0, occ_ms
    while t < cutoff and count < MAX_COUNTED_SKIPS:
        count, t = count + 1, schedule.expr.next_after(t)
    if t < cutoff:
        t = schedule.expr.next_after(cutoff - 1)
    return t, count


def after_jump(schedule: Schedule, next_ms: float, drift_ms: float, now_ms: float) -> float:
    """A job's next occurrence after the wall clock moved ``drift_ms`` more than the
    monotonic clock (positive: forward): rules 1, 3 and 4."""
    if isinstance(schedule, IntervalSchedule):
        return next_ms + drift_ms  # same monotonic instant, told in the new wall time
    if drift_ms < -BACKWARD_HOLD_MS:
        return fresh_next(schedule, now_ms)
    return next_ms  # forward: what it passed over comes due late and is skipped


def resume(
    schedule: Schedule, stored_next_ms: float, stored_prev_ms: float | None, now_ms: float
) -> float:
    """The next occurrence of an unchanged job after a restart (rule 4 at start)."""
    if stored_prev_ms is not None and stored_prev_ms - now_ms > BACKWARD_HOLD_MS:
        return fresh_next(schedule, now_ms)
    return stored_next_ms
