"""Devices: register, configure, summarise."""

from gateway import ConvexError, action, mutation, query, v


@mutation(
    args={"name": v.string(), "zone": v.string(), "max_celsius": v.float64()},
    returns=v.id("devices"),
)
async def register(ctx, args):
    """Add a device, or update the one with that name."""
    existing = await (
        ctx.db.query("devices").with_index("by_name", lambda q: q.eq("name", args["name"])).unique()
    )
    if existing is not None:
        await ctx.db.patch(
            "devices", existing["_id"], {"zone": args["zone"], "max_celsius": args["max_celsius"]}
        )
        return existing["_id"]
    return await ctx.db.insert("devices", args)


@query(args={})
async def list_all(ctx, args):
    return await ctx.db.query("devices").with_index("by_name").collect()


@query(args={})
async def configs(ctx, args):
    """One config per device, published to greenhouse/<name>/config (convex/mqtt.py)."""
    devices = await ctx.db.query("devices").with_index("by_name").collect()
    return [
        {"device": d["name"], "zone": d["zone"], "max_celsius": d["max_celsius"]} for d in devices
    ]


@mutation(args={"name": v.string()})
async def remove(ctx, args):
    device = await (
        ctx.db.query("devices").with_index("by_name", lambda q: q.eq("name", args["name"])).unique()
    )
    if device is None:
        raise ConvexError({"code": "UNKNOWN_DEVICE", "name": args["name"]})
    await ctx.db.delete("devices", device["_id"])


@action(args={"zone": v.string()})
async def zone_report(ctx, args):
    """Summarise every device of a zone (an action: several separate reads)."""
    devices = await ctx.run_query("devices:list_all", {})
    report = {}
    for device in devices:
        if device["zone"] == args["zone"]:
            print(f"summarising {device['name']}")
            report[device["name"]] = await ctx.run_query(
                "readings:stats", {"device": device["name"]}
            )
    return report
