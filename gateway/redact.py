"""Keep the admin key out of every log line and every response body.

A key reaches text in ways nobody writes on purpose: a parser's error message that
quotes the raw request line or header, an exception that quotes a value, an echoed
function path. So besides never formatting it, every text that leaves the process
through the HTTP layer or a log handler passes ``redact``: the keys this process
serves (registered when a server gets one) and anything shaped like a generated key
(``outpost-`` + hex, also a cut-off one) become ``[redacted]``.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Final

REDACTED: Final = "[redacted]"

# A generated key is "outpost-" + 64 hex digits; a message may cut it short.
_KEY_SHAPE: Final = re.compile(r"outpost-[0-9a-fA-F]{8,}")
# Loggers whose records may quote raw request bytes or our handlers' errors.
_LOGGERS: Final = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "asyncio",
    "gateway.http",
    "gateway.http.access",
    "gateway.replication",
    "gateway.sync",
)

# A secret is also hidden in pieces: any run of this many of its characters (a
# message cut at 80 characters, a key with one byte changed, still shows most of it).
FRAGMENT_CHARS: Final = 12

_lock = threading.Lock()
_secrets: dict[str, int] = {}  # key -> how many holders registered it
_fragments: dict[str, frozenset[str]] = {}


def register_secret(secret: str) -> None:
    """Redact ``secret`` from now on (counted: ``forget_secret`` once per register)."""
    if secret:
        with _lock:
            _secrets[secret] = _secrets.get(secret, 0) + 1
            _fragments[secret] = _windows(secret)


def forget_secret(secret: str) -> None:
    with _lock:
        left = _secrets.get(secret, 0) - 1
        if left > 0:
            _secrets[secret] = left
        else:
            _secrets.pop(secret, None)
            _fragments.pop(secret, None)


def redact(text: str) -> str:
    """``text`` with every registered secret (and any run of ``FRAGMENT_CHARS`` of one)
    and every key-shaped token replaced."""
    spans = [span for fragments in tuple(_fragments.values()) for span in _find(text, fragments)]
    if spans:
        text = _cover(text, spans)
    return _KEY_SHAPE.sub(REDACTED, text)


def _windows(secret: str) -> frozenset[str]:
    if len(secret) <= FRAGMENT_CHARS:
        return frozenset([secret])
    last = len(secret) - FRAGMENT_CHARS
    return frozenset(secret[i : i + FRAGMENT_CHARS] for i in range(last + 1))


def _find(text: str, fragments: frozenset[str]) -> list[tuple[int, int]]:
    spans = []
    for fragment in fragments:
        at = text.find(fragment)
        while at != -1:
            spans.append((at, at + len(fragment)))
            at = text.find(fragment, at + 1)
    return spans


def _cover(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each union of overlapping ``spans`` replaced by one ``REDACTED``."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out = []
    done = 0
    for start, end in merged:
        out += [text[done:start], REDACTED]
        done = end
    out.append(text[done:])
    return "".join(out)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and traceback text through ``redact`` (never drops)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "outpost_redacted", False):
            return True  # one record passes several filtered loggers' handlers
        record.outpost_redacted = True
        try:
            message = record.getMessage()
        except Exception:  # a broken format: logging reports it later, unformatted
            message = str(record.msg)
            record.args = None
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


REDACTING_FILTER: Final = RedactingFilter()


def install_redaction() -> None:
    """Put the filter on the loggers that can see request bytes (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if REDACTING_FILTER not in logger.filters:
            logger.addFilter(REDACTING_FILTER)
