"""The compatibility app: items in batches, read back by index and page by page."""

from gateway import define_schema, define_table, v

schema = define_schema(
    {
        "items": define_table(
            {
                "batch": v.string(),
                "n": v.float64(),
                "label": v.optional(v.string()),
            }
        ).index("by_batch", ["batch", "n"]),
    }
)
