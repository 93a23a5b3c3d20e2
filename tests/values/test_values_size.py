from __future__ import annotations

import pytest

from gateway.values import UNSET, Int64, convex_size


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (None, 1),
        (True, 1),
        (False, 1),
        (Int64(5), 9),
        (1.5, 9),
        (7, 9),  # a plain int is a Float64
        (float("nan"), 9),
        ("", 2),
        ("abc", 5),
        ("é", 4),  # two UTF-8 bytes
        ("\U0001f600", 6),  # four UTF-8 bytes
        (b"", 2),
        (b"\x00\x01\x02", 5),
        ([], 2),
        ([1.0, None], 2 + 9 + 1),
        ({}, 2),
        ({"ab": 1.0}, 2 + 2 + 1 + 9),
        ({"a": {"b": "c"}}, 2 + (1 + 1 + (2 + (1 + 1 + 3)))),
        (UNSET, 0),
        ({"a": UNSET, "b": None}, 2 + 1 + 1 + 1),
    ],
)
def test_sizes(value: object, size: int) -> None:
    assert convex_size(value) == size


def test_system_fields_size_as_spec_says() -> None:
    # _creationTime as a field: name 13 + 1 + Float64 9 = 23 bytes.
    assert convex_size({"_creationTime": 1.0}) - 2 == 23
    assert convex_size({"_id": "x" * 31}) - 2 == 3 + 1 + 2 + 31


def test_basic_type_subclasses() -> None:
    assert convex_size((1.0, 2.0)) == 20
    assert convex_size(bytearray(b"ab")) == 4
