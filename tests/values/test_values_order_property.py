"""THE property test: SQLite BLOB order of ``encode_key`` equals ``compare_values``.

Hypothesis draws lists of 200 values (nested arrays/objects, -0.0, NaNs with many
payloads, ±inf, Int64 at the ±2^63 bounds, strings with NUL and non-BMP
characters, bytes with 0x00/0xFF, UNSET at the top level): 500 examples, so at
least 100,000 values go through the check.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from functools import cmp_to_key
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from values_strategies import top_values

from gateway.values import Value, compare_values, encode_index_key, encode_key, key_successor

PER_EXAMPLE = 200
EXAMPLES = 500

_PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k BLOB NOT NULL, i INTEGER NOT NULL)")
    yield conn
    conn.close()


def _sql_order(conn: sqlite3.Connection, keys: list[bytes]) -> list[int]:
    conn.execute("DELETE FROM t")
    conn.executemany("INSERT INTO t (k, i) VALUES (?, ?)", [(k, i) for i, k in enumerate(keys)])
    return [i for (i,) in conn.execute("SELECT i FROM t ORDER BY k, i")]


def _check_order(conn: sqlite3.Connection, items: list[Value]) -> None:
    keys = [encode_key(v) for v in items]
    by_sql = _sql_order(conn, keys)

    def by_value(a: int, b: int) -> int:
        return compare_values(items[a], items[b])

    by_cmp = sorted(range(len(items)), key=cmp_to_key(by_value))
    # Same order: the j-th value of each ordering compares equal.
    for j, (a, b) in enumerate(zip(by_sql, by_cmp)):
        assert compare_values(items[a], items[b]) == 0, (j, items[a], items[b])
    # Equal keys exactly when the values compare equal, on every adjacent pair.
    for a, b in pairwise(by_cmp):
        c = compare_values(items[a], items[b])
        assert c in (-1, 0), (items[a], items[b])
        assert compare_values(items[b], items[a]) == -c
        assert (keys[a] == keys[b]) == (c == 0), (items[a], items[b])
        assert keys[a] <= keys[b]


def test_encode_key_orders_like_compare_values(db: sqlite3.Connection) -> None:
    seen = 0

    @_PROPERTY
    @given(st.lists(top_values, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def check(items: list[Value]) -> None:
        nonlocal seen
        seen += len(items)
        _check_order(db, items)

    check()
    assert seen >= 100_000, seen


def _tuple_cmp(xs: tuple[Value, ...], ys: tuple[Value, ...]) -> int:
    for x, y in zip(xs, ys):
        c = compare_values(x, y)
        if c:
            return c
    return (len(xs) > len(ys)) - (len(xs) < len(ys))


@settings(_PROPERTY, max_examples=150)
@given(st.lists(st.lists(top_values, min_size=1, max_size=3).map(tuple), min_size=60, max_size=60))
def test_index_keys_order_like_tuples_and_are_prefix_safe(items: list[tuple[Value, ...]]) -> None:
    keys = [encode_index_key(t) for t in items]
    order = sorted(range(len(items)), key=keys.__getitem__)
    for a, b in pairwise(order):
        c = _tuple_cmp(items[a], items[b])
        assert c in (-1, 0), (items[a], items[b])
        assert (keys[a] == keys[b]) == (c == 0)
    for t, k in zip(items, keys):
        for n in range(len(t) + 1):
            prefix = encode_index_key(t[:n])
            assert k.startswith(prefix)
            assert prefix == b"".join(encode_key(v) for v in t[:n])
    # Range scans over any tuple prefix: [p, key_successor(p)) is "starts with",
    # and >= key_successor(p) is "greater than every tuple starting with it".
    for t in items[:12]:
        for n in range(1, len(t) + 1):
            lo = encode_index_key(t[:n])
            hi = key_successor(lo)
            for u, k in zip(items, keys):
                c = _tuple_cmp(u[:n], t[:n])
                assert (lo <= k < hi) == (c == 0), (t[:n], u)
                assert (k >= hi) == (c > 0), (t[:n], u)
