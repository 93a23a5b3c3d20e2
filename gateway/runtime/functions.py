"""The decorators app code uses, and the registered function they produce."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from gateway.schema import as_args_validator, as_returns_validator
from gateway.schema.flat import FlatObjectCheck

Kind = Literal["query", "mutation", "action"]
Visibility = Literal["public", "internal"]
Handler = Callable[[Any, dict[str, Any]], Awaitable[Any]]


class JsonArgs(dict[str, Any]):
    """Args as parsed from a request's JSON, not yet Convex values: what the HTTP API
    hands a ``json_args`` function. Other callers pass values, which the runtime encodes
    to the same JSON form for such a function."""


@dataclass
class RegisteredFunction:
    """A handler with its kind, visibility, validators and (once loaded) its path."""

    kind: Kind
    visibility: Visibility
    handler: Handler
    args: Any = None
    returns: Any = None
    path: str = ""
    budget_s: float | None = None  # its own time budget (None: the runtime's for its kind)
    # Installed system functions only (never app code): the handler gets its args as
    # Convex JSON, unconverted and unvalidated, and checks them itself in one pass. For
    # bulk payloads (a replication batch) whose generic walks (decode, normalise,
    # validate: three passes over every value) cost more than applying them.
    json_args: bool = False
    args_validator: Any = field(init=False, repr=False)
    returns_validator: Any = field(init=False, repr=False)
    flat_args: FlatObjectCheck | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Built once here, so a bad validator fails when the module loads, not per call.
        self.args_validator = as_args_validator(self.args)
        self.returns_validator = as_returns_validator(self.returns)
        self.flat_args = getattr(self.args_validator, "flat", None)

    @property
    def name(self) -> str:
        return self.handler.__name__

    @property
    def seed_base(self) -> int:
        """A stable number per function path, mixed into ``ctx.random``'s seed."""
        cached: int | None = self.__dict__.get("_seed_base")
        if cached is None:
            digest = hashlib.blake2b(self.path.encode(), digest_size=8).digest()
            cached = self.__dict__["_seed_base"] = int.from_bytes(digest, "big")
        return cached

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
            if not inspect.iscoroutinefunction(handler):
                raise TypeError(
                    f"@{_label(kind, visibility)} decorates an async function: "
                    f"write `async def {getattr(handler, '__name__', 'handler')}(ctx, args)`"
                )
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
