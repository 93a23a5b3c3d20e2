"""One batch of items as a live, paginated feed (the clients' reactive pagination)."""

from gateway import mutation, pagination_opts, query, v

ORDER = v.union(v.literal("asc"), v.literal("desc"))
CHUNK = 4096


@mutation(args={"batch": v.string(), "ns": v.array(v.float64())})
async def put_many(ctx, args):
    """Insert one item per ``n``; return their ids in the same order."""
    return [await ctx.db.insert("items", {"batch": args["batch"], "n": n}) for n in args["ns"]]


@query(args={"batch": v.string(), "order": ORDER, "paginationOpts": pagination_opts})
async def page(ctx, args):
    """A batch by ``n``, one page at a time: what a paginated subscription loads."""
    return await (
        ctx.db.query("items")
        .with_index("by_batch", lambda q: q.eq("batch", args["batch"]))
        .order(args["order"])
        .paginate(args["paginationOpts"])
    )


@query(args={"batch": v.string(), "order": ORDER})
async def listing(ctx, args):
    """The whole batch in the same order, as ``[id, n]`` pairs: what the pages must add up to.

    In chunks of at most ``CHUNK`` pairs (an array holds at most 8192 values).
    """
    rows = await (
        ctx.db.query("items")
        .with_index("by_batch", lambda q: q.eq("batch", args["batch"]))
        .order(args["order"])
        .collect()
    )
    pairs = [[row["_id"], row["n"]] for row in rows]
    return [pairs[i : i + CHUNK] for i in range(0, len(pairs), CHUNK)]
