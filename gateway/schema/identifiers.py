"""Names in a schema: identifiers (table, field and index names) and field paths.

The rules and texts follow Convex's ``check_valid_identifier``: ASCII, a letter or
``_`` first, then letters, digits and ``_``; at most 64 characters; not only
underscores. Field paths (``"a.b.c"``) are dot-separated identifiers.
"""

from __future__ import annotations

from gateway.schema.display import char_debug

__all__ = ["MAX_IDENTIFIER_LEN", "identifier_problem", "parse_field_path"]

MAX_IDENTIFIER_LEN = 64


def _is_alpha(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _is_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def identifier_problem(s: str) -> str | None:
    """Convex's message for why ``s`` is not an identifier, or ``None`` if it is one."""
    if not s:
        return "Identifier cannot be empty"
    first = s[0]
    if not (_is_alpha(first) or first == "_"):
        return (
            f"Invalid first character {char_debug(first)} in {s}: Identifiers must start "
            "with an alphabetic character or underscore"
        )
    for ch in s[1:]:
        if not (_is_alnum(ch) or ch == "_"):
            return (
                f"Identifier {s} has invalid character {char_debug(ch)}: Identifiers can only "
                "contain alphanumeric characters or underscores"
            )
    if len(s) > MAX_IDENTIFIER_LEN:
        return f"Identifier is too long ({len(s)} > maximum {MAX_IDENTIFIER_LEN})"
    if s.strip("_") == "":
        return f"Identifier {s} cannot have exclusively underscores"
    return None


def parse_field_path(path: str) -> tuple[str, ...] | None:
    """``"a.b"`` -> ``("a", "b")``; ``None`` if a part is not an identifier.

    Leading and trailing dots are ignored, as Convex's ``FieldPath`` parser does.
    """
    trimmed = path.strip(".")
    if not trimmed:
        return None
    parts = tuple(trimmed.split("."))
    if any(identifier_problem(p) is not None for p in parts):
        return None
    return parts
