"""Greenhouse: sensors report readings; each device has a config the gateway serves."""

from gateway import define_schema, define_table, v

schema = define_schema(
    {
        "readings": define_table(
            {
                "device": v.string(),
                "celsius": v.float64(),
                "humidity": v.optional(v.float64()),
                "seq": v.optional(v.int64()),
                "boot": v.optional(v.int64()),
            }
        )
        .index("by_device", ["device"])
        .replicate("up")
        .retention(max_age_s=7 * 86400),
        "devices": define_table(
            {
                "name": v.string(),
                "zone": v.string(),
                "max_celsius": v.float64(),
            }
        ).index("by_name", ["name"]),
        "alerts": define_table(
            {
                "device": v.string(),
                "celsius": v.float64(),
                "note": v.string(),
            }
        ).index("by_device", ["device"]),
    }
)
