"""The cron expression parser against an independent reference.

Hypothesis builds each field from random items (``*``, ``*/s``, ``n``, ``a-b``, ``a-b/s``,
``n/s``, names), computes the set of values the item means by its own reading of cron's
rules, and checks ``next_after`` against a day-by-day, minute-by-minute search over
those sets: the answer matches the expression, is after ``now``, and no earlier minute
does.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.runtime.cron_expr import MONTHS, WEEKDAYS, CronExpr, CronSyntaxError

UTC = dt.UTC
# (low, high, names) per field, as cron(5) has them; weekday 7 is Sunday again.
FIELDS = [(0, 59, ()), (0, 23, ()), (1, 31, ()), (1, 12, MONTHS), (0, 7, WEEKDAYS)]


@st.composite
def item(draw: st.DrawFn, low: int, high: int, names: tuple[str, ...]) -> tuple[str, set[int]]:
    kind = draw(st.sampled_from(["star", "star_step", "one", "range", "range_step", "from_step"]))
    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    step = draw(st.integers(1, high - low + 1))
    text_a = str(a)
    if names and a - low < len(names) and draw(st.booleans()):
        text_a = names[a - low].upper() if draw(st.booleans()) else names[a - low]
    if kind == "star":
        return "*", set(range(low, high + 1))
    if kind == "star_step":
        return f"*/{step}", set(range(low, high + 1, step))
    if kind == "one":
        return text_a, {a}
    if kind == "range":
        return f"{text_a}-{b}", set(range(a, b + 1))
    if kind == "range_step":
        return f"{text_a}-{b}/{step}", set(range(a, b + 1, step))
    return f"{text_a}/{step}", set(range(a, high + 1, step))


@st.composite
def field(draw: st.DrawFn, index: int) -> tuple[str, set[int]]:
    low, high, names = FIELDS[index]
    items = draw(st.lists(item(low, high, names), min_size=1, max_size=3))
    return ",".join(t for t, _ in items), set().union(*(s for _, s in items))


@st.composite
def expression(draw: st.DrawFn) -> tuple[str, list[set[int]], bool]:
    parts = [draw(field(i)) for i in range(5)]
    text = " ".join(t for t, _ in parts)
    # Both day fields restricted (not starting with '*'): a day matches if either does.
    either = not parts[2][0].startswith("*") and not parts[4][0].startswith("*")
    sets = [s for _, s in parts]
    sets[4] = {d % 7 for d in sets[4]}
    return text, sets, either


def reference_next(sets: list[set[int]], either: bool, now: dt.datetime) -> dt.datetime | None:
    minutes, hours, days, months, weekdays = sets
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for _ in range(366 * 30):
        in_dom, in_dow = day.day in days, day.isoweekday() % 7 in weekdays
        day_ok = (in_dom or in_dow) if either else (in_dom and in_dow)
        if day.month in months and day_ok:
            for h in sorted(hours):
                for m in sorted(minutes):
                    candidate = day.replace(hour=h, minute=m)
                    if candidate > now:
                        return candidate
        day += dt.timedelta(days=1)
    return None


instants = st.datetimes(
    min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2090, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(expression(), instants)
def test_next_after_agrees_with_the_reference(
    expr: tuple[str, list[set[int]], bool], now: dt.datetime
) -> None:
    text, sets, either = expr
    expected = reference_next(sets, either, now)
    try:
        parsed = CronExpr.parse(text)
    except CronSyntaxError as exc:
        assert "never runs" in str(exc)
        assert expected is None
        return
    assert expected is not None
    got = dt.datetime.fromtimestamp(parsed.next_after(now.timestamp() * 1000) / 1000, UTC)
    assert got == expected
    assert got > now
    assert parsed.matches(got)


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("0 3 * * *", "2026-12-04T20:00", "2026-12-05T03:00"),
        ("0 3 * * *", "2026-12-05T03:00", "2026-12-06T03:00"),  # strictly after
        ("*/15 * * * *", "2026-12-04T20:07:59", "2026-12-04T20:15"),
        ("0 0 1 * mon", "2026-12-02T00:00", "2026-12-07T00:00"),  # a Monday before the 1st
        ("0 0 29 feb *", "2026-03-01T00:00", "2028-02-29T00:00"),
        ("30 12 * * 7", "2026-12-04T00:00", "2026-12-06T12:30"),  # 7 is Sunday
        ("0 0 31 * *", "2026-11-01T00:00", "2026-12-31T00:00"),  # November has no 31st
        ("59 23 31 12 *", "2026-12-31T23:59", "2027-12-31T23:59"),
    ],
)
def test_examples(text: str, now: str, expected: str) -> None:
    start = dt.datetime.fromisoformat(now).replace(tzinfo=UTC).timestamp() * 1000
    got = dt.datetime.fromtimestamp(CronExpr.parse(text).next_after(start) / 1000, UTC)
    assert got == dt.datetime.fromisoformat(expected).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0 3 * *", "has 4 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24 is outside 0-23"),
        ("* * 0 * *", "day of month: 0 is outside 1-31"),
        ("* * * 13 *", "month: 13 is outside"),
        ("* * * * 8", "day of week: 8 is outside"),
        ("*/0 * * * *", "step in '*/0' must be at least 1"),
        ("5-1 * * * *", "runs backwards"),
        ("x * * * *", "'x' is not a number"),
        ("* * * foo *", "or a name (jan"),
        ("0 0 30 feb *", "never runs"),
        ("1,,2 * * * *", "'' is not a number"),
        ("١ * * * *", "is not a number"),  # Arabic-Indic digit: isdigit() but not cron's
    ],
)
def test_refusals_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(CronSyntaxError, match=None) as info:
        CronExpr.parse(text)
    assert says in str(info.value)
