"""``dumps_yielding`` (the pure-Python encoder a worker thread uses for big values) gives
the same text as ``dumps`` (the C encoder with its fast path), for any value."""

from __future__ import annotations

from hypothesis import given, settings
from values_strategies import values

from gateway.values import Int64, dumps, dumps_yielding
from gateway.values.core import Value


@settings(max_examples=1500, deadline=None)
@given(values)
def test_dumps_yielding_is_dumps(value: Value) -> None:
    assert dumps_yielding(value) == dumps(value)


@given(values)
def test_dumps_yielding_is_dumps_inside_arguments(value: Value) -> None:
    args = {"a": value, "n": [value, -0.0, Int64(-1)]}
    assert dumps_yielding(args) == dumps(args)
