"""IntervalIndex: which subscriptions a commit's changed keys fall into."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.runtime.index_range import KeyRange
from gateway.runtime.readset import ReadSet
from gateway.sync.intervals import IntervalIndex
from gateway.values import encode_index_key, key_successor

PROPS = settings(max_examples=300, deadline=None, derandomize=True)

Intervals = list[tuple[int, KeyRange]]


def naive(subs: dict[int, Intervals], keys: list[tuple[int, bytes]]) -> set[int]:
    return {
        sub
        for sub, intervals in subs.items()
        if any(i == ki and r.contains(k) for i, r in intervals for ki, k in keys)
    }


def check_layers(index: IntervalIndex[int]) -> None:
    """Inside each layer: sorted by (start, end), ends non-decreasing, no empty layer."""
    for per in index._indexes.values():
        assert per.layers
        stored = 0
        for layer in per.layers:
            assert layer.starts
            assert len(layer.starts) == len(layer.ends) == len(layer.subs)
            stored += len(layer.starts)
            assert all(subs and len(set(subs)) == len(subs) for subs in layer.subs)
            for j in range(1, len(layer.starts)):
                a, b = layer.ends[j - 1], layer.ends[j]
                assert layer.starts[j - 1] <= layer.starts[j]
                assert b is None or (a is not None and a <= b)
        assert stored == len(per.where)


# ---------------------------------------------------------------- unit tests


def test_point_key_in_range_and_bounds() -> None:
    index: IntervalIndex[str] = IntervalIndex()
    index.add("a", [(1, KeyRange(b"b", b"d"))])
    assert index.affected([(1, b"b")]) == {"a"}  # start included
    assert index.affected([(1, b"c\xff")]) == {"a"}
    assert index.affected([(1, b"d")]) == set()  # end excluded
    assert index.affected([(1, b"a")]) == set()
    assert index.affected([(2, b"c")]) == set()  # another index
    assert index.affected([]) == set()


def test_unbounded_nested_and_shared_start() -> None:
    index: IntervalIndex[str] = IntervalIndex()
    index.add("all", [(1, KeyRange(b"", None))])
    index.add("from-m", [(1, KeyRange(b"m", None))])
    index.add("group", [(1, KeyRange(b"g", b"g\xff"))])
    index.add("take", [(1, KeyRange(b"g", b"g\x05"))])
    index.add("inner", [(1, KeyRange(b"g\x02", b"g\x03"))])
    assert index.affected([(1, b"a")]) == {"all"}
    assert index.affected([(1, b"g\x01")]) == {"all", "group", "take"}
    assert index.affected([(1, b"g\x02")]) == {"all", "group", "take", "inner"}
    assert index.affected([(1, b"g\x06")]) == {"all", "group"}
    assert index.affected([(1, b"z" * 50)]) == {"all", "from-m"}
    assert index.affected([(1, b"a"), (1, b"m")]) == {"all", "from-m"}
    check_layers(index)


def test_empty_intervals_are_ignored_and_subscription_kept() -> None:
    index: IntervalIndex[int] = IntervalIndex()
    index.add(1, [(1, KeyRange(b"b", b"b")), (1, KeyRange(b"c", b"a"))])
    index.add(2, [])
    assert len(index) == 2 and 1 in index and 2 in index
    assert index.affected([(1, b"b")]) == set()
    assert index._indexes == {}


def test_identical_intervals_shared_and_removed_one_by_one() -> None:
    index: IntervalIndex[int] = IntervalIndex()
    for sub in range(5):
        index.add(sub, [(3, KeyRange(b"k", b"l")), (3, KeyRange(b"k", b"l"))])
    assert len(index._indexes[3].where) == 1
    assert index._indexes[3].layers[0].subs == [(0, 1, 2, 3, 4)]
    assert index.affected([(3, b"k1")]) == {0, 1, 2, 3, 4}
    index.remove(2)
    assert index.affected([(3, b"k1")]) == {0, 1, 3, 4}
    for sub in (0, 1, 3, 4):
        index.remove(sub)
    assert index.affected([(3, b"k1")]) == set()
    assert index._indexes == {} and len(index) == 0
    index.remove(99)  # unknown: no error


def test_add_extends_and_replace_replaces() -> None:
    index: IntervalIndex[str] = IntervalIndex()
    index.add("s", [(1, KeyRange(b"a", b"b"))])
    index.add("s", [(2, KeyRange(b"x", None))])
    assert index.affected([(1, b"a")]) == {"s"}
    assert index.affected([(2, b"y")]) == {"s"}
    index.replace("s", [(1, KeyRange(b"c", b"d"))])
    assert index.affected([(1, b"a")]) == set()
    assert index.affected([(2, b"y")]) == set()
    assert index.affected([(1, b"c")]) == {"s"}
    assert list(index._indexes) == [1]


def test_read_set_intervals_with_real_keys() -> None:
    """Feeding ``ReadSet.intervals()``: an eq range, a take() prefix, a point read."""
    group = encode_index_key(["device-00007"])
    rs = ReadSet()
    rs.record(5, KeyRange(group, key_successor(group))).exhausted = True
    partial = rs.record(6, KeyRange(b"", None))
    partial.last_key = encode_index_key([10.0])  # took up to 10.0
    rs.point(1, b"id-1")
    index: IntervalIndex[str] = IntervalIndex()
    index.add("q", rs.intervals())
    keys: list[list[tuple[int, bytes]]] = [
        [(5, encode_index_key(["device-00007", 3.0, "id"]))],
        [(5, encode_index_key(["device-00008", 3.0, "id"]))],
        [(6, encode_index_key([10.0]))],
        [(6, encode_index_key([11.0]))],
        [(1, b"id-1")],
        [(1, b"id-1\x00")],
    ]
    for changed in keys:
        assert (index.affected(changed) == {"q"}) == rs.intersects(changed), changed


def test_many_disjoint_ranges_use_one_layer() -> None:
    index: IntervalIndex[int] = IntervalIndex()
    for n in reversed(range(500)):
        p = encode_index_key([f"device-{n:05d}"])
        index.add(n, [(7, KeyRange(p, key_successor(p)))])
    assert len(index._indexes[7].layers) == 1
    for n in (0, 250, 499):
        key = encode_index_key([f"device-{n:05d}", 1.0, "x"])
        assert index.affected([(7, key)]) == {n}
    check_layers(index)


# ------------------------------------------------------------ property test

_alphabet = st.sampled_from([0x00, 0x01, 0x02, 0x10, 0x7F, 0xFF])
keys_st = st.lists(_alphabet, max_size=4).map(bytes)
range_st = st.builds(KeyRange, keys_st, st.one_of(st.none(), keys_st))
interval_st = st.tuples(st.integers(1, 3), range_st)
# An op: ("add", sub, intervals) | ("remove", sub) | ("replace", sub, intervals)
op_st = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 25), st.lists(interval_st, max_size=4)),
    st.tuples(st.just("remove"), st.integers(0, 25)),
    st.tuples(st.just("replace"), st.integers(0, 25), st.lists(interval_st, max_size=3)),
)
probe_st = st.lists(st.tuples(st.integers(1, 4), keys_st), max_size=3)


@PROPS
@given(ops=st.lists(op_st, max_size=60), probes=st.lists(probe_st, min_size=1, max_size=8))
def test_affected_matches_linear_check(
    ops: list[tuple[object, ...]], probes: list[list[tuple[int, bytes]]]
) -> None:
    index: IntervalIndex[int] = IntervalIndex()
    model: dict[int, Intervals] = {}
    for step, op in enumerate(ops):
        kind, sub = op[0], op[1]
        assert isinstance(sub, int)
        if kind == "remove":
            index.remove(sub)
            model.pop(sub, None)
        else:
            intervals = op[2]
            assert isinstance(intervals, list)
            if kind == "add":
                index.add(sub, intervals)
                model.setdefault(sub, []).extend(intervals)
            else:
                index.replace(sub, intervals)
                model[sub] = list(intervals)
        assert len(index) == len(model)
        if step % 7 == 0:
            for changed in probes:
                assert index.affected(changed) == naive(model, changed)
    check_layers(index)
    for changed in probes:
        assert index.affected(changed) == naive(model, changed)
    # Every key that is a bound of some interval, singly.
    bounds = {(i, b) for ivs in model.values() for i, r in ivs for b in (r.start, r.end) if b}
    for i, b in bounds:
        assert index.affected([(i, b)]) == naive(model, [(i, b)])
        assert index.affected([(i, b + b"\x00")]) == naive(model, [(i, b + b"\x00")])
    for sub in list(model):
        index.remove(sub)
    assert index._indexes == {} and len(index) == 0


@PROPS
@given(
    ranges=st.lists(range_st, min_size=1, max_size=40),
    probes=st.lists(keys_st, min_size=1, max_size=20),
)
def test_one_index_many_subscriptions(ranges: list[KeyRange], probes: list[bytes]) -> None:
    """Many subscriptions sharing one index (nesting, overlaps, duplicates, unbounded)."""
    index: IntervalIndex[int] = IntervalIndex()
    model = {sub: [(9, r)] for sub, r in enumerate(ranges)}
    for sub, intervals in model.items():
        index.add(sub, intervals)
    check_layers(index)
    for key in probes:
        assert index.affected([(9, key)]) == naive(model, [(9, key)])
    for sub in range(0, len(ranges), 2):
        index.remove(sub)
        del model[sub]
    check_layers(index)
    for key in probes:
        assert index.affected([(9, key)]) == naive(model, [(9, key)])
