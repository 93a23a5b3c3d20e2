"""The app author's cron jobs: ``crons = cron_jobs()`` in ``convex/crons.py``.

``crons.interval / hourly / daily / weekly / monthly / cron(name, schedule, fn, args)``
take Convex's schedule shapes in snake_case (``{"minute_utc": 30}``...). Every
declaration is checked when it is made and a refusal is a ``CronDefinitionError`` (an
``AppLoadError``) starting with the ``file:line`` of the call, as the loader words every
app error; ``check_crons`` then resolves each job's function against the loaded app.
Calendar schedules become a ``CronExpr``; ``gateway.runtime.cron_runner`` runs them.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, NoReturn

from gateway.errors import AppLoadError
from gateway.runtime.cron_expr import WEEKDAYS, CronExpr, CronSyntaxError
from gateway.runtime.declared import declared_args, declared_at
from gateway.runtime.functions import RegisteredFunction
from gateway.runtime.loader import canonical_path

DAYS_OF_WEEK = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_INTERVAL_UNITS_S = {"seconds": 1, "minutes": 60, "hours": 3600}


class CronDefinitionError(AppLoadError, ValueError):
    """``convex/crons.py`` declares a job Outpost would refuse; the message names file:line."""


@dataclass(frozen=True)
class IntervalSchedule:
    """Every ``seconds``, the first run when the job is registered."""

    seconds: int

    def describe(self) -> str:
        return f"every {self.seconds} s"


@dataclass(frozen=True)
class CalendarSchedule:
    """At the UTC minutes a cron expression names (hourly/daily/... become one too)."""

    expr: CronExpr

    def describe(self) -> str:
        return f"cron {self.expr.text!r} UTC"


Schedule = IntervalSchedule | CalendarSchedule


@dataclass(frozen=True)
class CronJob:
    """One registered job; ``path`` is set by ``check_crons`` once the app is loaded."""

    name: str
    schedule: Schedule
    ref: Any  # a RegisteredFunction or a 'module:function' path
    args: dict[str, Any]
    where: str  # file:line of the declaration
    path: str = ""

    def same_as(self, other: CronJob) -> bool:
        """Same schedule, function and args: a reload keeps such a job's timing."""
        return (self.schedule, self.path, self.args) == (other.schedule, other.path, other.args)


@dataclass
class CronJobs:
    """The jobs an app declares, by name (unique per app, as Convex requires)."""

    jobs: dict[str, CronJob] = field(default_factory=dict)

    def interval(self, name: str, schedule: dict[str, Any], fn: Any, args: Any = None) -> None:
        """Run ``fn`` every ``{"seconds" | "minutes" | "hours": n}``, first at registration."""
        where = declared_at(__file__)
        keys = _keys(schedule, set(_INTERVAL_UNITS_S), set(), where)
        if len(keys) != 1:
            _refuse(where, "an interval names exactly one of seconds, minutes or hours")
        unit = keys.pop()
        count = _integer(schedule[unit], unit, 1, None, where)
        self._add(name, IntervalSchedule(count * _INTERVAL_UNITS_S[unit]), fn, args, where)

    def hourly(self, name: str, schedule: dict[str, Any] | None, fn: Any, args: Any = None) -> None:
        """Every hour at ``minute_utc`` (omitted: a minute chosen from the job's name)."""
        where = declared_at(__file__)
        minute = self._minute(name, schedule or {}, set(), where)
        self._calendar(name, f"{minute} * * * *", fn, args, where)

    def daily(self, name: str, schedule: dict[str, Any], fn: Any, args: Any = None) -> None:
        """Every day at ``hour_utc``:``minute_utc``."""
        where = declared_at(__file__)
        minute = self._minute(name, schedule, {"hour_utc"}, where)
        hour = _integer(schedule["hour_utc"], "hour_utc", 0, 23, where)
        self._calendar(name, f"{minute} {hour} * * *", fn, args, where)

    def weekly(self, name: str, schedule: dict[str, Any], fn: Any, args: Any = None) -> None:
        """Every week on ``day_of_week`` ("monday"...) at ``hour_utc``:``minute_utc``."""
        where = declared_at(__file__)
        minute = self._minute(name, schedule, {"day_of_week", "hour_utc"}, where)
        hour = _integer(schedule["hour_utc"], "hour_utc", 0, 23, where)
        day = schedule["day_of_week"]
        if day not in DAYS_OF_WEEK:
            _refuse(where, f"day_of_week is one of {', '.join(DAYS_OF_WEEK)}, not {day!r}")
        weekday = WEEKDAYS[DAYS_OF_WEEK.index(day)]
        self._calendar(name, f"{minute} {hour} * * {weekday}", fn, args, where)

    def monthly(self, name: str, schedule: dict[str, Any], fn: Any, args: Any = None) -> None:
        """Every month on ``day`` (1-31; months without that day are skipped) at a time."""
        where = declared_at(__file__)
        minute = self._minute(name, schedule, {"day", "hour_utc"}, where)
        hour = _integer(schedule["hour_utc"], "hour_utc", 0, 23, where)
        day = _integer(schedule["day"], "day", 1, 31, where)
        self._calendar(name, f"{minute} {hour} {day} * *", fn, args, where)

    def cron(self, name: str, expression: str, fn: Any, args: Any = None) -> None:
        """At the UTC minutes a standard 5-field cron expression names."""
        self._calendar(name, expression, fn, args, declared_at(__file__))

    def _minute(self, name: str, schedule: Any, required: set[str], where: str) -> int:
        _keys(schedule, required | {"minute_utc"}, required, where)
        if "minute_utc" in schedule:
            return _integer(schedule["minute_utc"], "minute_utc", 0, 59, where)
        # Convex spreads unpinned jobs over the hour with a stable random minute; a hash
        # of the name is stable across restarts and reloads, and spreads as well.
        return zlib.crc32(name.encode()) % 60

    def _calendar(self, name: str, expression: Any, fn: Any, args: Any, where: str) -> None:
        try:
            expr = CronExpr.parse(expression)
        except CronSyntaxError as exc:
            _refuse(where, str(exc))
        self._add(name, CalendarSchedule(expr), fn, args, where)

    def _add(self, name: Any, schedule: Schedule, fn: Any, args: Any, where: str) -> None:
        if not isinstance(name, str) or not name or not (name.isascii() and name.isprintable()):
            _refuse(where, f"a cron job's name is a non-empty printable ASCII string, not {name!r}")
        if name in self.jobs:
            _refuse(
                where, f"a cron job named {name!r} is already declared at {self.jobs[name].where}"
            )
        if not isinstance(fn, RegisteredFunction | str):
            _refuse(where, f"the function is a function or a 'module:function' path, not {fn!r}")
        self.jobs[name] = CronJob(name, schedule, fn, _args(args, where), where)


def cron_jobs() -> CronJobs:
    """A new, empty set of jobs; ``convex/crons.py`` binds it to the name ``crons``."""
    return CronJobs()


def check_crons(crons: object, app: Any) -> list[CronJob]:
    """The app's jobs with their function paths, or a ``CronDefinitionError`` naming one
    that is missing, not exported, or a query. ``app`` is the loaded ``App``."""
    if crons is None:
        return []
    if not isinstance(crons, CronJobs):
        where = f"{app.directory}/crons.py"
        _refuse(where, f"crons is a {type(crons).__name__}; write crons = cron_jobs()")
    return [_resolve(job, app) for job in crons.jobs.values()]


def _resolve(job: CronJob, app: Any) -> CronJob:
    ref = job.ref
    if isinstance(ref, RegisteredFunction):
        if not ref.path:  # defined but not a public attribute of any module under convex/
            _refuse(job.where, f"the function of {job.name!r} is not exported by a module")
        path = _home_path(ref, app)
    else:
        path = canonical_path(ref)
    fn = app.lookup(path)
    if fn is None:
        _refuse(job.where, f"no function {path!r} in the app (is it defined under convex/?)")
    if fn.kind == "query":
        _refuse(job.where, f"{path!r} is a query; a cron job runs a mutation or an action")
    return dataclasses.replace(job, path=path)


def _home_path(fn: RegisteredFunction, app: Any) -> str:
    """The path of the module that defines ``fn``: ``crons.py`` importing ``bump`` from
    ``tick.py`` makes it reachable as ``crons:bump`` too, but its name is ``tick:bump``."""
    module = getattr(fn.handler, "__module__", "") or ""
    prefix = f"{app.package}."
    if module.startswith(prefix):
        home = f"{module[len(prefix) :].replace('.', '/')}:{fn.handler.__name__}"
        if app.lookup(home) is fn:
            return home
    return fn.path


def _refuse(where: str, message: str) -> NoReturn:
    raise CronDefinitionError(f"{where}: {message}")


def _keys(schedule: Any, allowed: set[str], required: set[str], where: str) -> set[str]:
    if not isinstance(schedule, dict):
        _refuse(where, f"the schedule is a dict, not {type(schedule).__name__}")
    keys = set(schedule)
    unknown = sorted(keys - allowed)
    if unknown:
        hint = (
            " (Python spells Convex's camelCase in snake_case)"
            if any(k != k.lower() for k in unknown)
            else ""
        )
        _refuse(where, f"unknown schedule key(s) {unknown}; allowed: {sorted(allowed)}{hint}")
    missing = sorted(required - keys)
    if missing:
        _refuse(where, f"the schedule needs {', '.join(missing)}")
    return keys


def _integer(value: Any, what: str, low: int, high: int | None, where: str) -> int:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    whole = number and math.isfinite(value) and value == int(value)
    if not whole or value < low or (high is not None and value > high):
        bounds = f"{low}-{high}" if high is not None else f"at least {low}"
        _refuse(where, f"{what} is a whole number {bounds}, not {value!r}")
    return int(value)


def _args(args: Any, where: str) -> dict[str, Any]:
    return declared_args(args, what="cron args", where=where, error=CronDefinitionError)
