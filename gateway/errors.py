"""The error tree: one root, a few leaves, each with a message a user can act on.

A leaf that a caller may want to catch as a builtin also inherits it
(``InvalidIdError`` is a ``ValueError``). The wire layers turn these into Convex's
error shapes; user code raises ``ConvexError`` to send structured data to a client.
"""

from __future__ import annotations

from typing import Any


class OutpostError(Exception):
    """Root of every error Outpost raises on purpose."""


class ConvexError(Exception):
    """Raised by app code to send ``data`` (any Convex value) to the client as ``errorData``."""

    def __init__(self, data: Any = None) -> None:
        self.data = data
        super().__init__(data if isinstance(data, str) else repr(data))


# --- values ---------------------------------------------------------------------------


class ConvexValueError(OutpostError, ValueError):
    """A Python object is not a Convex value, or breaks a size or shape limit."""


class InvalidIdError(ConvexValueError):
    """A string is not a document id (or not one of the expected table)."""


# --- schema and validation ------------------------------------------------------------


class SchemaDefinitionError(OutpostError, ValueError):
    """``convex/schema.py`` declares something Convex would refuse (bad name, index...)."""


class ValidationError(OutpostError, ValueError):
    """A value does not match a validator. ``str()`` is the Convex-style message."""


class ArgumentValidationError(ValidationError):
    """A function's arguments do not match its ``args`` validators."""


class ReturnsValidationError(ValidationError):
    """A function's return value does not match its ``returns`` validator."""


class SchemaEnforcementError(ValidationError):
    """A write would store a document that does not match the table's schema."""


# --- the store ------------------------------------------------------------------------


class StoreError(OutpostError):
    """The SQLite store cannot do what was asked."""


class StoreClosedError(StoreError, RuntimeError):
    """The store (or a connection of it) was used after it was closed."""


class DamagedStoreError(StoreError):
    """The database file failed its integrity check and was moved aside."""


class StoreUnavailableError(StoreError):
    """The store cannot be opened now (locked, in use, read-only, no permission, I/O);
    every file was left as it was. ``str()`` is one line: the cause and what to do."""


class LayoutTooNewError(StoreError):
    """The data directory was written by a newer Outpost than this one."""


class CommitError(StoreError, OSError):
    """A batch could not be made durable (disk full, I/O error); nothing in it happened."""


class DiskFullError(CommitError):
    """The data directory's disk is full: writes are refused (not applied) until space
    is freed, then accepted again by themselves. ``str()`` says where and what to free."""


# --- running functions ----------------------------------------------------------------


class FunctionError(OutpostError):
    """A function call failed for a reason the caller should see (not a bug in Outpost)."""


class FunctionNotFoundError(FunctionError, LookupError):
    """No public function (or no function at all) has this path."""


class DeterminismError(FunctionError, RuntimeError):
    """A query or mutation awaited something that is not a ``ctx`` operation."""


class FunctionTimeoutError(FunctionError, TimeoutError):
    """A query or mutation ran past its time budget and was aborted."""


class QueryError(FunctionError):
    """A database query was built or used wrongly (index range, order, pagination...)."""


class InvalidCursorError(QueryError):
    """A pagination cursor is malformed or belongs to another query."""


class LimitExceededError(FunctionError):
    """A transaction went past one of Convex's per-function limits (reads, writes, ...)."""


class AppLoadError(OutpostError):
    """The app under ``convex/`` could not be loaded; the message names file and line."""


class MqttRouteError(AppLoadError, ValueError):
    """``convex/mqtt.py`` declares a route Outpost would refuse; the message names file and line."""


class HttpRouteError(AppLoadError, ValueError):
    """``convex/http.py`` declares a route Convex would refuse; the message names file and line."""


class PayloadError(OutpostError, ValueError):
    """An MQTT payload cannot become a mutation's arguments; ``str()`` is a dead-letter reason.

    ``seq`` and ``boot``: the payload's counters when they could be read before the
    problem was found (the dead letter then moves the device's ack like an applied one).
    """

    seq: int | None = None
    boot: int | None = None


class ConfigError(OutpostError, ValueError):
    """``outpost.toml``, the environment or a flag holds a setting that cannot be used."""


class MissingProgramError(OutpostError):
    """A program the settings need is not installed (``mosquitto`` for the managed MQTT
    broker); ``str()`` says how to install it. The command exits 2, as for a setting."""


class BrokerError(OutpostError):
    """The managed MQTT broker could not start or be stopped; ``str()`` is one line."""


class TlsError(OutpostError):
    """The local CA (``<data dir>/tls/``) cannot be read or its certificate cannot be
    made; ``str()`` says which file and what to do."""


class StartError(OutpostError):
    """A start step failed and every step started before it was stopped; ``str()`` is
    one line, ``cannot start: <step>: <reason>``, and ``__cause__`` is the step's error."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"cannot start: {step}: {reason}")
        self.step = step


class HandlerAborted(BaseException):
    """Delivered into a runaway handler's thread by the watchdog.

    A ``BaseException`` so that app code's ``except Exception`` cannot swallow it.
    """
