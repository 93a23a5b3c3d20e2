"""Values in and out: what the server decoded, and values only the server makes."""

import math

from gateway import ConvexError, Int64, action, query, v


@query()
async def value(ctx, args):
    """Return ``args["value"]`` unchanged (any Convex value)."""
    return args.get("value")


@query(args={"i": v.int64(), "b": v.bytes(), "nan": v.float64(), "negzero": v.float64()})
async def inspect(ctx, args):
    """Say what the server received, so a round trip cannot hide a decoding mistake."""
    return {
        "i_is_int64": isinstance(args["i"], Int64),
        "i_plus_one": Int64(args["i"] + 1),
        "b_len": float(len(args["b"])),
        "b_reversed": args["b"][::-1],
        "nan_is_nan": math.isnan(args["nan"]),
        "negzero_sign": math.copysign(1.0, args["negzero"]),
    }


@query(args={})
async def made(ctx, args):
    """Values the client has to decode on its own."""
    return {
        "int64_big": Int64(2**62 + 1),
        "int64_neg": Int64(-1),
        "bytes": bytes(range(256)),
        "nan": math.nan,
        "negzero": -0.0,
        "inf": math.inf,
        "neg_inf": -math.inf,
        "whole": 3.0,
        "half": 0.5,
        "nested": {"list": [1.0, "two", None, True, {"deep": [Int64(3)]}], "empty": {}},
    }


@action(args={"text": v.string()})
async def refuse_text(ctx, args):
    """A ConvexError whose data is a string (clients use it as the message)."""
    raise ConvexError(args["text"])
