"""Reading a field path (``"a.b.c"``) out of a document, for indexes and filters."""

from __future__ import annotations

from typing import Any

from gateway.values import UNSET, Value

__all__ = ["get_field_path"]


def get_field_path(doc: dict[str, Any], path: str) -> Value:
    """The value at dotted ``path`` in ``doc``, or ``UNSET`` if there is none.

    Descends through objects (``dict``) only: through anything else, arrays
    included, the result is ``UNSET`` (Convex's "missing"). Leading and trailing
    dots are ignored, as in Convex's field-path parser.
    """
    current: Any = doc
    for part in path.strip(".").split("."):
        if not isinstance(current, dict):
            return UNSET
        current = current.get(part, UNSET)
        if current is UNSET:
            return UNSET
    return current
