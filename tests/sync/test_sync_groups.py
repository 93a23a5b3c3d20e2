"""GroupIndex: identical subscriptions share interval-index entries, counted per member."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.runtime.index_range import KeyRange
from gateway.sync.groups import GroupIndex, QueryGroup

A = (1, KeyRange(b"a", b"c"))
B = (1, KeyRange(b"m", b"p"))
C = (2, KeyRange(b"", None))


@dataclass(eq=False)
class Sub:
    name: str
    group: QueryGroup | None = None
    intervals: Any = None
    marks: list[bytes] = field(default_factory=list)


def hit(index: GroupIndex, key: bytes, index_id: int = 1) -> set[str]:
    return {sub.name for sub in index.affected([(index_id, key)])}


def test_members_of_one_query_share_entries_and_keep_them_while_any_reads_them() -> None:
    index = GroupIndex()
    first = (A,)
    subs = [Sub(f"s{i}") for i in range(3)]
    for sub in subs:
        index.track(sub, ("anon", "q"), first)  # type: ignore[arg-type]
    assert len(index) == 1 and len(index.index) == 1  # one group, indexed once
    assert hit(index, b"b") == {"s0", "s1", "s2"}
    moved = (B,)
    index.track(subs[0], ("anon", "q"), moved)  # type: ignore[arg-type]
    # The group reads the union while its members disagree: a write in either range
    # reaches every member (a needless rerun sends nothing).
    assert hit(index, b"b") == hit(index, b"n") == {"s0", "s1", "s2"}
    for sub in subs[1:]:
        index.track(sub, ("anon", "q"), moved)  # type: ignore[arg-type]
    assert hit(index, b"b") == set() and hit(index, b"n") == {"s0", "s1", "s2"}
    assert set(index.groups[("anon", "q")].counts) == {B}


def test_equal_tuples_from_different_runs_are_counted_apart_and_released() -> None:
    index = GroupIndex()
    one, two = Sub("one"), Sub("two")
    index.track(one, ("anon", "q"), (A,))  # type: ignore[arg-type]
    index.track(two, ("anon", "q"), (A,))  # an equal tuple, another object  # type: ignore[arg-type]
    index.forget(one)  # type: ignore[arg-type]
    assert hit(index, b"b") == {"two"}
    index.forget(two)  # type: ignore[arg-type]
    assert len(index) == 0 and len(index.index) == 0 and hit(index, b"b") == set()


def test_a_member_whose_key_changes_moves_to_its_new_group() -> None:
    index = GroupIndex()
    sub, other = Sub("s"), Sub("other")
    index.track(other, ("anon", "q"), (A,))  # type: ignore[arg-type]
    index.track(sub, ("anon", "q"), (A,))  # type: ignore[arg-type]
    index.track(sub, ("admin", "q"), (C,))  # re-authenticated  # type: ignore[arg-type]
    assert sub.group is index.groups[("admin", "q")]
    assert hit(index, b"b") == {"other"}
    assert hit(index, b"zzz", index_id=2) == {"s"}
    index.forget(other)  # type: ignore[arg-type]
    assert set(index.groups) == {("admin", "q")}


def test_a_member_with_no_intervals_is_kept_and_never_hit() -> None:
    index = GroupIndex()
    sub = Sub("s")
    index.track(sub, ("anon", "q"), ())  # type: ignore[arg-type]
    assert len(index) == 1 and hit(index, b"b") == set()
    index.track(sub, ("anon", "q"), (A,))  # type: ignore[arg-type]
    assert hit(index, b"b") == {"s"}
