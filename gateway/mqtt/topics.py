"""Topic patterns: literal segments and whole-segment ``{name}`` placeholders.

A pattern is checked once, when ``convex/mqtt.py`` declares a route; matching then
compares segment by segment, never with regular expressions, because a device ID is
one topic segment and must match exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TOPIC_BYTES = 65_535  # the MQTT limit on a topic name's UTF-8 length
RESERVED_PREFIXES = ("$", "outpost/")  # the broker's $SYS tree; the gateway's ack/call topics


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A ``{name}`` segment: matches any one non-empty segment and binds it to ``name``."""

    name: str


Segment = str | Placeholder


def parse_pattern(pattern: object) -> tuple[Segment, ...]:
    """The segments of a route's topic pattern; ``ValueError`` says what is wrong."""
    if not isinstance(pattern, str):
        raise ValueError(f"a topic pattern is a str, not {type(pattern).__name__}")
    if pattern.startswith(RESERVED_PREFIXES):
        raise ValueError(f"topic {pattern!r} is reserved ($SYS and outpost/ belong to the gateway)")
    return parse_segments(pattern)


def parse_segments(pattern: str) -> tuple[Segment, ...]:
    """``parse_pattern`` without the reserved trees: the gateway's own ack and call
    topics are patterns too (the broker's ACL is written from them)."""
    check_topic_text(pattern)
    segments = tuple(_segment(part, pattern) for part in pattern.split("/"))
    names = [s.name for s in segments if isinstance(s, Placeholder)]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"topic {pattern!r} names the placeholder {{{name}}} twice")
    return segments


def check_topic_text(topic: str) -> None:
    """Refuse what is not a usable topic name: empty, too long, NUL, empty segments."""
    if not topic:
        raise ValueError("a topic cannot be empty")
    if "\0" in topic:
        raise ValueError(f"topic {topic[:80]!r} contains a NUL character")
    if len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        raise ValueError(f"topic {topic[:80]!r}... is over {MAX_TOPIC_BYTES} bytes of UTF-8")
    if topic.startswith("/") or topic.endswith("/"):
        raise ValueError(f"topic {topic!r} starts or ends with '/'")
    if "//" in topic:
        raise ValueError(f"topic {topic!r} has an empty segment ('//')")


def _segment(part: str, pattern: str) -> Segment:
    if "+" in part or "#" in part:
        raise ValueError(
            f"topic {pattern!r} uses the MQTT wildcard in {part!r}; "
            "name the segment instead, e.g. {device}"
        )
    if part.startswith("{") and part.endswith("}"):
        name = part[1:-1]
        if not name.isidentifier() or not name.isascii():
            raise ValueError(
                f"topic {pattern!r}: {part!r} is not a placeholder name (an identifier)"
            )
        return Placeholder(name)
    if "{" in part or "}" in part:
        raise ValueError(
            f"topic {pattern!r}: {part!r} is not a whole segment; a placeholder fills a "
            "segment on its own, e.g. 'sensors/{device}/temp'"
        )
    return part


def placeholders(segments: tuple[Segment, ...]) -> list[str]:
    """The placeholder names of a pattern, in order."""
    return [s.name for s in segments if isinstance(s, Placeholder)]


def bind(segments: tuple[Segment, ...], parts: list[str]) -> dict[str, str] | None:
    """The placeholder values if ``parts`` (a split topic) matches, else None."""
    if len(parts) != len(segments):
        return None
    bound: dict[str, str] = {}
    for seg, part in zip(segments, parts, strict=True):
        if isinstance(seg, Placeholder):
            if not part:
                return None  # 'sensors//temp' names no device
            bound[seg.name] = part
        elif seg != part:
            return None
    return bound


def overlap(a: tuple[Segment, ...], b: tuple[Segment, ...]) -> bool:
    """Whether some topic matches both patterns (no multi-level wildcards, so per segment)."""
    if len(a) != len(b):
        return False
    return all(
        isinstance(x, Placeholder) or isinstance(y, Placeholder) or x == y
        for x, y in zip(a, b, strict=True)
    )


def render(segments: tuple[Segment, ...]) -> str:
    """The pattern's text (for messages)."""
    return "/".join(f"{{{s.name}}}" if isinstance(s, Placeholder) else s for s in segments)
