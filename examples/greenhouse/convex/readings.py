"""Readings: ingest from sensors, read back the latest per device."""

from gateway import Int64, internal_mutation, mutation, pagination_opts, query, v

from ._thresholds import above_limit


@mutation(
    args={
        "device": v.string(),
        "celsius": v.float64(),
        "humidity": v.optional(v.float64()),
        "seq": v.optional(v.int64()),
    },
    returns=v.id("readings"),
)
async def ingest(ctx, args):
    """Store one reading; raise an alert when the device's limit is exceeded.

    Over MQTT (convex/mqtt.py) the device is the topic's and ``ctx.mqtt`` holds the
    message's counters, kept with the reading."""
    reading = dict(args)
    if ctx.mqtt is not None and ctx.mqtt.seq is not None:
        reading["seq"], reading["boot"] = Int64(ctx.mqtt.seq), Int64(ctx.mqtt.boot)
    reading_id = await ctx.db.insert("readings", reading)
    device = await (
        ctx.db.query("devices")
        .with_index("by_name", lambda q: q.eq("name", args["device"]))
        .unique()
    )
    if device is not None and above_limit(args["celsius"], device["max_celsius"]):
        await ctx.run_mutation(raise_alert, {"device": args["device"], "celsius": args["celsius"]})
    return reading_id


@internal_mutation(args={"device": v.string(), "celsius": v.float64()})
async def raise_alert(ctx, args):
    print(f"alert: {args['device']} at {args['celsius']} °C")
    await ctx.db.insert("alerts", {**args, "note": "above max_celsius"})


@query(args={"device": v.string(), "limit": v.optional(v.float64())}, returns=v.array(v.any()))
async def latest(ctx, args):
    """The newest readings of one device, newest first."""
    return await (
        ctx.db.query("readings")
        .with_index("by_device", lambda q: q.eq("device", args["device"]))
        .order("desc")
        .take(int(args.get("limit", 10)))
    )


@query(args={"paginationOpts": pagination_opts})
async def page(ctx, args):
    """All readings, oldest first, one page at a time."""
    return await ctx.db.query("readings").paginate(args["paginationOpts"])


@query(args={"device": v.string()})
async def stats(ctx, args):
    """Count, min, max and mean of a device's readings."""
    rows = await (
        ctx.db.query("readings")
        .with_index("by_device", lambda q: q.eq("device", args["device"]))
        .collect()
    )
    values = [r["celsius"] for r in rows]
    if not values:
        return {"count": Int64(0), "min": None, "max": None, "mean": None}
    return {
        "count": Int64(len(values)),
        "min": min(values),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


@query(args={"device": v.string(), "above": v.float64()})
async def hot(ctx, args):
    """Readings of a device above a temperature (a filter over the index range)."""
    return await (
        ctx.db.query("readings")
        .with_index("by_device", lambda q: q.eq("device", args["device"]))
        .filter(lambda q: q.gt(q.field("celsius"), args["above"]))
        .collect()
    )
