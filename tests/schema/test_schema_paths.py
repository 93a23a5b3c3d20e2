"""``get_field_path``: dotted paths descend through objects only."""

from __future__ import annotations

import pytest

from gateway.schema import get_field_path
from gateway.values import UNSET

DOC = {
    "a": {"b": {"c": 1.0}, "n": None, "arr": [{"x": 1.0}]},
    "top": "t",
    "u": UNSET,
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("top", "t"),
        ("a.b.c", 1.0),
        ("a.b", {"c": 1.0}),
        ("a.n", None),
        (".a.b.c.", 1.0),
        ("missing", UNSET),
        ("a.missing", UNSET),
        ("a.b.c.d", UNSET),  # through a float
        ("top.length", UNSET),  # through a string
        ("a.n.x", UNSET),  # through null
        ("a.arr.x", UNSET),  # arrays are not traversed
        ("a.arr.0", UNSET),
        ("u", UNSET),
        ("", UNSET),
    ],
)
def test_get_field_path(path: str, expected: object) -> None:
    result = get_field_path(DOC, path)
    if expected is UNSET:
        assert result is UNSET
    else:
        assert result == expected
