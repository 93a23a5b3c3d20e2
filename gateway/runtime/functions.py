"""The decorators app code uses, and the registered function they produce."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

Kind = Literal["query", "mutation", "action"]
Visibility = Literal["public", "internal"]
Handler = Callable[[Any, dict[str, Any]], Awaitable[Any]]


@dataclass
class RegisteredFunction:
    """A handler with its kind, visibility, validators and (once loaded) its path."""

    kind: Kind
    visibility: Visibility
    handler: Handler
    args: Any = None
    returns: Any = None
    path: str = ""

    @property
    def name(self) -> str:
        return self.handler.__name__

    async def __call__(self, ctx: Any, args: dict[str, Any]) -> Any:
        # Calling the decorated object directly runs the bare handler, as a helper.
        return await self.handler(ctx, args)


def _decorator(kind: Kind, visibility: Visibility) -> Any:
    @overload
    def decorate(fn: Handler, /) -> RegisteredFunction: ...

    @overload
    def decorate(
        fn: None = None, /, *, args: Any = None, returns: Any = None
    ) -> Callable[[Handler], RegisteredFunction]: ...

    def decorate(
        fn: Handler | None = None, /, *, args: Any = None, returns: Any = None
    ) -> RegisteredFunction | Callable[[Handler], RegisteredFunction]:
        def wrap(handler: Handler) -> RegisteredFunction:
            if not callable(handler):
                raise TypeError(f"@{_label(kind, visibility)} decorates an async function")
            return RegisteredFunction(kind, visibility, handler, args, returns)

        return wrap(fn) if fn is not None else wrap

    decorate.__name__ = _label(kind, visibility)
    decorate.__doc__ = (
        f"Declare a {visibility} {kind}: ``@{_label(kind, visibility)}(args=..., returns=...)``."
    )
    return decorate


def _label(kind: Kind, visibility: Visibility) -> str:
    return kind if visibility == "public" else f"internal_{kind}"


query = _decorator("query", "public")
mutation = _decorator("mutation", "public")
action = _decorator("action", "public")
internal_query = _decorator("query", "internal")
internal_mutation = _decorator("mutation", "internal")
internal_action = _decorator("action", "internal")
