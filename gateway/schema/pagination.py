"""Validators for ``paginate()``: Convex's ``paginationOptsValidator`` and
``paginationResultValidator`` (``convex/server``, ``src/server/pagination.ts``)."""

from __future__ import annotations

from gateway.schema.base import Validator
from gateway.schema.builder import v
from gateway.schema.compound import ObjectValidator

__all__ = ["pagination_opts", "pagination_result"]

#: The ``args`` entry of a paginated query: ``args={"paginationOpts": pagination_opts}``.
pagination_opts: ObjectValidator = v.object(
    {
        "numItems": v.number(),
        "cursor": v.union(v.string(), v.null()),
        "endCursor": v.optional(v.union(v.string(), v.null())),
        "id": v.optional(v.number()),
        "maximumRowsRead": v.optional(v.number()),
        "maximumBytesRead": v.optional(v.number()),
    }
)


def pagination_result(item: Validator) -> ObjectValidator:
    """The ``returns`` of a paginated query whose page items match ``item``."""
    return v.object(
        {
            "page": v.array(item),
            "continueCursor": v.string(),
            "isDone": v.boolean(),
            "splitCursor": v.optional(v.union(v.string(), v.null())),
            "pageStatus": v.optional(
                v.union(v.literal("SplitRecommended"), v.literal("SplitRequired"), v.null())
            ),
        }
    )
