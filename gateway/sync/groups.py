"""Subscriptions grouped by what they run, so the interval index holds each query once.

A hundred sockets subscribed to the same query under the same identity share one
execution per round (``rounds``); they share one entry per interval in the interval
index too. Each group counts, per interval, how many of its members read it: the index
learns of an interval when the first member reads it and forgets it when the last one
stops. A rerun that moves the range of a "latest reading" query then costs two index
operations per group instead of two per socket, and per member only a count moving
from one tuple of intervals to the next (members of one run share that tuple object).

Members of a group may have been rerun at different snapshots and read slightly
different ranges; the group is indexed on the union, so a commit touching any
member's range marks every member dirty. A member marked needlessly reruns (shared
with the others) and, its result unchanged, sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from gateway.runtime.index_range import KeyRange
from gateway.sync.intervals import IntervalIndex

if TYPE_CHECKING:
    from gateway.sync.engine import Subscription

Interval = tuple[int, KeyRange]
Intervals = tuple[Interval, ...]
GroupKey = tuple[str, str]  # (principal key, query key): see ``rounds``


class QueryGroup:
    """The subscriptions that run one query as one principal."""

    __slots__ = ("counts", "holders", "key", "members")

    def __init__(self, key: GroupKey) -> None:
        self.key = key
        self.members: set[Subscription] = set()
        # Members hold the very tuple of intervals their shared run produced, so they are
        # counted per tuple object (a dict of ints: no interval is hashed per member) ...
        self.holders: dict[int, tuple[Intervals, int]] = {}  # id(tuple) -> (tuple, members)
        # ... and intervals per tuple holding them: the index has those counted here.
        self.counts: dict[Interval, int] = {}


class GroupIndex:
    """The interval index over query groups, kept from each member's read intervals."""

    def __init__(self) -> None:
        self.index: IntervalIndex[QueryGroup] = IntervalIndex()
        self.groups: dict[GroupKey, QueryGroup] = {}

    def __len__(self) -> int:
        return len(self.groups)

    def track(self, sub: Subscription, key: GroupKey, intervals: Intervals) -> None:
        """``sub`` (in group ``key``) now reads exactly ``intervals`` (no duplicates)."""
        group = sub.group
        if group is not None and group.key != key:  # its journal or identity changed
            self.forget(sub)
            group = None
        if group is None:
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = QueryGroup(key)
            group.members.add(sub)
            sub.group = group
        elif sub.intervals is not None:
            self._release(group, sub.intervals)
        self._hold(group, intervals)
        sub.intervals = intervals

    def forget(self, sub: Subscription) -> None:
        """``sub`` is gone (removed, its session closed, or moving to another group)."""
        group = sub.group
        if group is None:
            return
        if sub.intervals is not None:
            self._release(group, sub.intervals)
        group.members.discard(sub)
        sub.group = None
        sub.intervals = None
        if not group.members:
            del self.groups[group.key]
            self.index.remove(group)

    def affected(self, changed_keys: Iterable[tuple[int, bytes]]) -> Iterator[Subscription]:
        """Every subscription whose group reads one of these keys."""
        for group in self.index.affected(changed_keys):
            yield from group.members

    def _hold(self, group: QueryGroup, intervals: Intervals) -> None:
        held = group.holders.get(id(intervals))
        if held is not None:
            group.holders[id(intervals)] = (intervals, held[1] + 1)
            return
        group.holders[id(intervals)] = (intervals, 1)
        self._count(group, intervals, +1)

    def _release(self, group: QueryGroup, intervals: Intervals) -> None:
        held = group.holders[id(intervals)]
        if held[1] > 1:
            group.holders[id(intervals)] = (intervals, held[1] - 1)
            return
        del group.holders[id(intervals)]
        self._count(group, intervals, -1)

    def _count(self, group: QueryGroup, intervals: Iterable[Interval], delta: int) -> None:
        first: list[Interval] = []
        last: list[Interval] = []
        counts = group.counts
        for interval in intervals:
            n = counts.get(interval, 0) + delta
            if n > 0:
                counts[interval] = n
                if n == 1 and delta > 0:
                    first.append(interval)
            else:
                counts.pop(interval, None)
                last.append(interval)
        if first:
            self.index.add(group, first)
        if last:
            self.index.discard(group, last)
