"""Standard 5-field cron expressions in UTC: ``minute hour day-of-month month day-of-week``.

Each field is a comma list of ``*``, ``n``, ``a-b``, each optionally ``/step`` (``n/step``
means ``n-max/step``, as Vixie cron has it); months and weekdays also take English
three-letter names, and weekday 7 is Sunday like 0. When both day fields are restricted
(neither starts with ``*``) a day matches if EITHER does, the rule every cron since
Vixie's follows (``0 0 1 * mon`` = the 1st and every Monday).

Written here rather than taken from a library: croniter, the usual choice, was declared
abandoned by its author in 2024-25 before pallets-eco adopted it, and it carries time
zones, seconds and Quartz extensions a UTC-only 5-field parser does not need. Its
correctness rests on ``tests/runtime/test_cron_expr.py``'s property test against a
minute-by-minute reference (``matches``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

UTC = dt.UTC
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# Feb 29 on a given weekday recurs within 28 years (2100 is not a leap year): any
# expression with no occurrence in this window has none at all.
SEARCH_YEARS = 29
_MINUTE_MS = 60_000


class CronSyntaxError(ValueError):
    """A cron expression Outpost cannot read; the message says which field and why."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, MONTHS, 1),
    _Field("day of week", 0, 7, WEEKDAYS, 0),
)


@dataclass(frozen=True)
class CronExpr:
    """A parsed expression: the allowed values of each field."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronExpr:
        """Parse ``text`` or raise ``CronSyntaxError`` (also for one that never runs)."""
        if not isinstance(text, str):
            raise CronSyntaxError(f"a cron expression is a string, not {type(text).__name__}")
        parts = text.split()
        if len(parts) != 5:
            raise CronSyntaxError(
                f"{text!r} has {len(parts)} fields; a cron expression has 5: "
                "minute hour day-of-month month day-of-week (e.g. '0 3 * * *')"
            )
        sets = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        expr = cls(
            text,
            minutes=frozenset(sets[0]),
            hours=frozenset(sets[1]),
            days=frozenset(sets[2]),
            months=frozenset(sets[3]),
            weekdays=frozenset(d % 7 for d in sets[4]),
            days_restricted=not parts[2].startswith("*"),
            weekdays_restricted=not parts[4].startswith("*"),
        )
        start = dt.datetime(2000, 1, 1, tzinfo=UTC)
        if expr._search(start, start.replace(year=2000 + SEARCH_YEARS)) is None:
            raise CronSyntaxError(f"{text!r} never runs (no such day in any month it names)")
        return expr

    def matches(self, when: dt.datetime) -> bool:
        """Whether the minute ``when`` (UTC) is an occurrence: the reference definition."""
        return (
            when.minute in self.minutes
            and when.hour in self.hours
            and when.month in self.months
            and self._day_matches(when)
        )

    def next_after(self, ms: float) -> float:
        """The first occurrence strictly after ``ms`` (ms since the epoch, UTC)."""
        start_ms = (ms // _MINUTE_MS + 1) * _MINUTE_MS
        start = dt.datetime.fromtimestamp(start_ms / 1000, UTC)
        found = self._search(start, start + dt.timedelta(days=366 * SEARCH_YEARS))
        assert found is not None  # parse refused expressions that never run
        return found.timestamp() * 1000

    def _day_matches(self, when: dt.datetime) -> bool:
        in_days = when.day in self.days
        in_weekdays = (when.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def _search(self, t: dt.datetime, limit: dt.datetime) -> dt.datetime | None:
        # Skip whole months, days and hours that cannot match before stepping minutes:
        # at most a few hundred steps for any expression within the window.
        while t < limit:
            if t.month not in self.months:
                t = _first_of_next_month(t)
            elif not self._day_matches(t):
                t = (t + dt.timedelta(days=1)).replace(hour=0, minute=0)
            elif t.hour not in self.hours:
                t = (t + dt.timedelta(hours=1)).replace(minute=0)
            elif t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
            else:
                return t
        return None


def _first_of_next_month(t: dt.datetime) -> dt.datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=year, month=month, day=1, hour=0, minute=0)


def _parse_field(text: str, spec: _Field) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        values |= _parse_item(item, spec)
    return values


def _parse_item(item: str, spec: _Field) -> set[int]:
    body, slash, step_text = item.partition("/")
    step = 1
    if slash:
        step = _number(step_text, spec, "step")
        if step < 1:
            raise CronSyntaxError(f"{spec.name}: the step in {item!r} must be at least 1")
    if body == "*":
        low, high = spec.low, spec.high
    elif "-" in body:
        first, _, last = body.partition("-")
        low, high = _value(first, spec), _value(last, spec)
        if low > high:
            raise CronSyntaxError(f"{spec.name}: the range {item!r} runs backwards")
    else:
        low = _value(body, spec)
        high = spec.high if slash else low  # 'n/step' = from n to the end, every step
    return set(range(low, high + 1, step))


def _value(text: str, spec: _Field) -> int:
    lowered = text.lower()
    if lowered in spec.names:
        return spec.names.index(lowered) + spec.name_base
    value = _number(text, spec, "value")
    if not spec.low <= value <= spec.high:
        raise CronSyntaxError(
            f"{spec.name}: {value} is outside {spec.low}-{spec.high} in the expression"
        )
    return value


def _number(text: str, spec: _Field, what: str) -> int:
    if not (text.isascii() and text.isdigit()):
        names = f" or a name ({', '.join(spec.names)})" if spec.names else ""
        raise CronSyntaxError(f"{spec.name}: {what} {text!r} is not a number{names}")
    return int(text)
