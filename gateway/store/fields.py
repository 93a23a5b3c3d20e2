"""Reading a document's field by path: what index keys and search rows are made of."""

from __future__ import annotations

from typing import Any

from gateway.values import UNSET

Document = dict[str, Any]


def field_value(doc: Document, path: str) -> Any:
    """The value at a dotted path, descending only through objects; UNSET if missing."""
    return value_at(doc, tuple(path.split(".")))


def value_at(doc: Document, path: tuple[str, ...]) -> Any:
    """The value at ``path`` (its parts), descending only through objects; UNSET if missing."""
    value: Any = doc
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return UNSET
        value = value[part]
    return value
