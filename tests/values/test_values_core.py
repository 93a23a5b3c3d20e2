from __future__ import annotations

import copy
import pickle

import pytest

from gateway.errors import ConvexValueError
from gateway.values import INT64_MAX, INT64_MIN, UNSET, Int64, Unset


def test_int64_accepts_the_full_range() -> None:
    assert Int64(INT64_MIN) == -(2**63)
    assert Int64(INT64_MAX) == 2**63 - 1
    assert Int64(0) == 0
    assert isinstance(Int64(5), int)
    assert Int64(Int64(7)) == 7


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, 10**30])
def test_int64_rejects_out_of_range(bad: int) -> None:
    with pytest.raises(ConvexValueError, match=r"out of range.*-2\^63 to 2\^63-1"):
        Int64(bad)


@pytest.mark.parametrize("bad", [5.0, "5", True, None])
def test_int64_rejects_non_ints(bad: object) -> None:
    with pytest.raises(ConvexValueError, match="Int64\\(\\) takes an int"):
        Int64(bad)  # type: ignore[arg-type]


def test_int64_repr_str_and_arithmetic() -> None:
    assert repr(Int64(5)) == "Int64(5)"
    assert repr(Int64(-3)) == "Int64(-3)"
    assert str(Int64(5)) == "5"
    assert f"{Int64(5)}" == "5"
    assert Int64(2) + 3 == 5
    assert repr([Int64(1)]) == "[Int64(1)]"


def test_int64_pickles_and_copies() -> None:
    x = Int64(-42)
    for y in (pickle.loads(pickle.dumps(x)), copy.copy(x), copy.deepcopy(x)):
        assert type(y) is Int64
        assert y == -42


def test_unset_is_a_falsy_singleton() -> None:
    assert repr(UNSET) == "UNSET"
    assert not UNSET
    assert Unset() is UNSET
    assert copy.copy(UNSET) is UNSET
    assert copy.deepcopy({"a": UNSET})["a"] is UNSET
    assert pickle.loads(pickle.dumps(UNSET)) is UNSET
    assert UNSET is not None
