"""What a function read, as index key intervals (DESIGN decision 3).

A scan is recorded up to where its iteration stopped, so a write just past the end of
a ``take(10)`` does not touch it. Live queries (the sync engine) keep these and rerun a
subscription only when a committed key falls inside one of its intervals.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from gateway.runtime.index_range import KeyRange


@dataclass
class ScanRecord:
    """One index range being read; its interval grows as iteration advances."""

    index_id: int
    range: KeyRange
    descending: bool
    last_key: bytes | None = None
    exhausted: bool = False

    def interval(self) -> KeyRange | None:
        """The part of the range actually read so far (None: nothing yet)."""
        if self.exhausted:
            return self.range
        if self.last_key is None:
            return None
        # Keys are unique, so ``last_key + b"\0"`` is the smallest key after it.
        if self.descending:
            return KeyRange(self.last_key, self.range.end)
        return KeyRange(self.range.start, self.last_key + b"\x00")


@dataclass
class ReadSet:
    """Every interval a function execution read, per index id."""

    scans: list[ScanRecord] = field(default_factory=list)

    def record(self, index_id: int, key_range: KeyRange, *, descending: bool = False) -> ScanRecord:
        scan = ScanRecord(index_id, key_range, descending)
        self.scans.append(scan)
        return scan

    def point(self, index_id: int, key: bytes) -> None:
        """A single-key read (``db.get``), found or not."""
        self.scans.append(ScanRecord(index_id, KeyRange(key, key + b"\x00"), False, exhausted=True))

    def intervals(self) -> Iterator[tuple[int, KeyRange]]:
        for scan in self.scans:
            interval = scan.interval()
            if interval is not None and not interval.is_empty:
                yield scan.index_id, interval

    def contains(self, index_id: int, key: bytes) -> bool:
        """True when ``key`` of ``index_id`` lies inside something this read."""
        return any(i == index_id and r.contains(key) for i, r in self.intervals())

    def intersects(self, keys: Iterable[tuple[int, bytes]]) -> bool:
        """True when any changed key lies inside something this read."""
        ranges: dict[int, list[KeyRange]] = {}
        for index_id, interval in self.intervals():
            ranges.setdefault(index_id, []).append(interval)
        return any(any(r.contains(key) for r in ranges.get(index_id, ())) for index_id, key in keys)

    def merge(self, other: ReadSet) -> None:
        self.scans.extend(other.scans)
