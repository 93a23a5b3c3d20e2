"""What app declarations (MQTT routes, HTTP routes, crons) share: where they were made,
and their arguments checked as Convex values.

A declaration that Outpost refuses raises an ``AppLoadError`` subclass whose message
starts with the ``file:line`` of the app's call, as every app error does.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from gateway.errors import AppLoadError, ConvexValueError
from gateway.values import to_convex


def declared_at(module_file: str) -> str:
    """``file:line`` of the first frame outside ``module_file`` (the declaring module's
    ``__file__``): the app's call."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == module_file:
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def refuse(error: type[AppLoadError], where: str, message: str) -> NoReturn:
    raise error(f"{where}: {message}")


def declared_args(
    args: object, *, what: str, where: str, error: type[AppLoadError]
) -> dict[str, Any]:
    """``args`` (None: ``{}``) as a dict of Convex values, or ``error`` at ``where``."""
    if args is None:
        return {}
    if not isinstance(args, dict):
        refuse(
            error, where, f"{what} is a dict of the function's arguments, not {type(args).__name__}"
        )
    try:
        value = to_convex(args, what=what)
    except ConvexValueError as exc:
        refuse(error, where, str(exc))
    return value  # type: ignore[no-any-return]
