"""``python -m firmware_clients.simulator``: run a fleet of simulated devices.

Prints one status line a second; at the end (``--duration`` or Ctrl-C) it stops making
readings, waits up to ``--drain-s`` for the gateway's acks to cover every reading and
exits 0 if they did, 1 if not.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from firmware_clients.simulator.credentials import Credentials, load_credentials, provision
from firmware_clients.simulator.fleet import Fleet

STATUS_EVERY_S = 1.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m firmware_clients.simulator",
        description="Simulated Outpost devices: readings with seq/boot, resent until acked.",
    )
    p.add_argument(
        "--credentials",
        type=Path,
        required=True,
        metavar="FILE",
        help="devices' credentials: the JSON of `outpost device add ID --json`, "
        "as a list or one per line (with --provision: where new ones are saved)",
    )
    p.add_argument(
        "--provision",
        type=Path,
        metavar="APP_DIR",
        help="add missing devices with `outpost device add` for this app",
    )
    p.add_argument("--data-dir", type=Path, help="the app's data directory (with --provision)")
    p.add_argument("--devices", type=int, help="how many devices (default: all in the file)")
    p.add_argument("--prefix", default="sim-", help="device IDs with --provision: PREFIX001 ...")
    p.add_argument("--host", help="broker host (default: from the credentials)")
    p.add_argument("--port", type=int, help="broker port (default: from the credentials)")
    p.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="readings per second per device; 0 = as fast as acks allow",
    )
    p.add_argument("--codec", choices=["cbor", "json"], default="cbor")
    p.add_argument("--topic", default="greenhouse/{device}/reading")
    p.add_argument(
        "--config-topic",
        default="greenhouse/{device}/config",
        help="subscribed per device; '' for none",
    )
    p.add_argument(
        "--duration", type=float, default=math.inf, help="seconds (default: until Ctrl-C)"
    )
    p.add_argument(
        "--disconnect-every",
        type=float,
        metavar="S",
        help="mean seconds between random disconnects per device",
    )
    p.add_argument(
        "--skew",
        type=float,
        default=0.0,
        metavar="S",
        help="clock skew: each device's clock off by up to +-S seconds (needs --time-field)",
    )
    p.add_argument("--time-field", help="a field with the device's time in ms since the epoch")
    p.add_argument(
        "--max-queue", type=int, default=100_000, help="unacked readings kept per device"
    )
    p.add_argument(
        "--drain-s", type=float, default=10.0, help="how long to wait for acks at the end"
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--verbose", action="store_true")
    return p


def credentials_for(args: argparse.Namespace) -> list[Credentials]:
    if args.provision is not None:
        if args.devices is None:
            raise SystemExit("--provision needs --devices N")
        ids = [f"{args.prefix}{i:03d}" for i in range(1, args.devices + 1)]
        return provision(ids, args.provision, args.data_dir, args.credentials)
    found = load_credentials(args.credentials)
    if not found:
        raise SystemExit(f"no credentials in {args.credentials} (or use --provision APP_DIR)")
    return found[: args.devices] if args.devices is not None else found


def make_fleet(args: argparse.Namespace, credentials: list[Credentials]) -> Fleet:
    first = credentials[0]
    return Fleet(
        [(c["device"], c["password"]) for c in credentials],
        args.host or first["host"],
        args.port or first["port"],
        topic=args.topic,
        config_topic=args.config_topic or None,
        rate_hz=args.rate if args.rate > 0 else math.inf,
        codec=args.codec,
        max_queue=args.max_queue,
        disconnect_every_s=args.disconnect_every,
        clock_skew_s=args.skew,
        time_field=args.time_field,
        seed=args.seed,
    )


def run(fleet: Fleet, duration_s: float, drain_s: float) -> bool:
    """Run until ``duration_s`` or SIGINT/SIGTERM; True if every reading was covered."""
    stop = False

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    with fleet:
        while not stop and time.monotonic() - started < duration_s and fleet.error is None:
            time.sleep(STATUS_EVERY_S)
            print(status(fleet, time.monotonic() - started), flush=True)
        fleet.stop_readings()
        covered = fleet.wait_covered(drain_s)
        print(status(fleet, time.monotonic() - started), flush=True)
    return covered


def status(fleet: Fleet, elapsed_s: float) -> str:
    return f"t={elapsed_s:.0f}s " + json.dumps(fleet.totals())


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        fleet = make_fleet(args, credentials_for(args))
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    covered = run(fleet, args.duration, args.drain_s)
    print("every reading covered by an ack" if covered else "some readings were not acked in time")
    return 0 if covered else 1


if __name__ == "__main__":
    sys.exit(main())
