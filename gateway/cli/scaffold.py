"""``outpost init DIR``: a small app that runs as is."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.config_doc import toml_template

SCHEMA = '''\
"""The tables of this app: their fields, types and indexes."""

from gateway import define_schema, define_table, v

schema = define_schema(
    {
        "readings": define_table(
            {
                "device": v.string(),
                "celsius": v.float64(),
            }
        ).index("by_device", ["device"]),
    }
)
'''

READINGS = '''\
"""Readings: sensors add them, dashboards read the newest ones back."""

from gateway import mutation, query, v


@mutation(args={"device": v.string(), "celsius": v.float64()}, returns=v.id("readings"))
async def add(ctx, args):
    """Store one reading; returns its id."""
    print(f"reading from {args['device']}: {args['celsius']} C")
    return await ctx.db.insert("readings", args)


@query(args={"device": v.string()}, returns=v.array(v.any()))
async def latest(ctx, args):
    """The ten newest readings of one device, newest first."""
    return await (
        ctx.db.query("readings")
        .with_index("by_device", lambda q: q.eq("device", args["device"]))
        .order("desc")
        .take(10)
    )
'''

NEXT_STEPS = """\
Created an Outpost app in {dir}. Next:

  cd {dir}
  outpost serve
  outpost run readings:add '{{"device": "d1", "celsius": 21.5}}'
  outpost run readings:latest '{{"device": "d1"}}'
  outpost data readings
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = commands.add_parser("init", help="create a small app that runs as is")
    init.add_argument("dir", type=Path, help="a new (or empty) directory")
    init.set_defaults(handler=lambda args: init_app(args.dir))


def init_app(target: Path) -> int:
    """Write the app's files into ``target``, which must be new or empty."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        print(f"outpost: {target} exists and is not empty; pick a new directory", file=sys.stderr)
        return 1
    files = {
        "convex/schema.py": SCHEMA,
        "convex/readings.py": READINGS,
        "outpost.toml": toml_template(),
    }
    for name, text in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(NEXT_STEPS.format(dir=target), end="")
    return 0
