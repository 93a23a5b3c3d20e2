"""Mutations, indexed reads, pages, errors and log lines."""

import logging

from gateway import ConvexError, action, internal_query, mutation, pagination_opts, query, v

log = logging.getLogger(__name__)


@mutation(args={"batch": v.string(), "n": v.float64()}, returns=v.id("items"))
async def add(ctx, args):
    return await ctx.db.insert("items", args)


@mutation(args={"batch": v.string(), "count": v.float64()})
async def fill(ctx, args):
    """Insert ``count`` items numbered 0..count-1 into a batch; return their ids."""
    return [
        await ctx.db.insert("items", {"batch": args["batch"], "n": float(n)})
        for n in range(int(args["count"]))
    ]


@query(args={"id": v.id("items")})
async def get(ctx, args):
    return await ctx.db.get("items", args["id"])


@query(args={"batch": v.string(), "paginationOpts": pagination_opts})
async def page(ctx, args):
    """One batch in index order, one page at a time."""
    return await (
        ctx.db.query("items")
        .with_index("by_batch", lambda q: q.eq("batch", args["batch"]))
        .paginate(args["paginationOpts"])
    )


@mutation(args={"code": v.string()})
async def refuse(ctx, args):
    """Write, then throw a ConvexError with object data: the write must not stay."""
    await ctx.db.insert("items", {"batch": "refused", "n": 0.0})
    raise ConvexError({"code": args["code"], "limit": 3.0, "tags": ["a", "b"], "ok": False})


@query(args={"batch": v.string()})
async def count(ctx, args):
    rows = await (
        ctx.db.query("items")
        .with_index("by_batch", lambda q: q.eq("batch", args["batch"]))
        .collect()
    )
    return float(len(rows))


@query(args={"who": v.string()})
async def chatty(ctx, args):
    """Log lines: print, and the logging module at two levels."""
    print("hello", args["who"])
    log.info("info for %s", args["who"])
    log.warning("careful")
    return "done"


@action(args={"batch": v.string()})
async def relabel(ctx, args):
    """An action: a mutation and a query through ctx, and a log line."""
    item_id = await ctx.run_mutation("items:add", {"batch": args["batch"], "n": 41.0})
    item = await ctx.run_query("items:get", {"id": item_id})
    print("action read", item["n"])
    return {"id": item_id, "n_plus_one": item["n"] + 1}


@internal_query(args={})
async def secret(ctx, args):
    return "internal only"


@query(args={"batch": v.string()})
async def strict(ctx, args):
    """A batch's size, or a ConvexError with data while it is empty (live queries)."""
    rows = await (
        ctx.db.query("items")
        .with_index("by_batch", lambda q: q.eq("batch", args["batch"]))
        .collect()
    )
    if not rows:
        raise ConvexError({"code": "EMPTY", "batch": args["batch"]})
    return float(len(rows))
