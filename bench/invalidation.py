"""Invalidation step of live queries: IntervalIndex vs a linear scan over all read sets.

N subscriptions (default 1,000 and 10,000) each read one distinct index range, the
``eq("device", "device-%05d")`` range of a ``by_device`` index: ``[K, key_successor(K))``
with ``K = encode_index_key(("device-%05d",))``, recorded in a ``ReadSet``. A simulated
commit inserts one reading of a random subscribed device, so its ``changed_keys`` are the
new document's keys in ``by_id``, ``by_creation_time`` and ``by_device`` (real key
encodings); exactly one subscription must be affected. In the same run, on the same
read sets and commits:

- **indexed**: ``IntervalIndex.affected(changed_keys)`` (gateway/sync/intervals.py);
- **linear scan**: every subscription's intervals (taken out of the read sets in advance)
  checked against the changed keys, grouped by index per commit, in a plain loop;
- **ReadSet.intersects**: the same linear scan through the read sets' own method.

Each sample runs a batch of commits (sized to take >= ``--sample-ms``) and gives the
time per commit; the sides take turns sample by sample; medians. Memory of the index per
subscription comes from ``tracemalloc`` (the key bytes are the read sets'; not counted).

    .venv/bin/python bench/invalidation.py
    .venv/bin/python bench/invalidation.py --pin
    .venv/bin/python bench/invalidation.py --sizes 1000,10000,100000 --check
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence

from _common import affinity_text, fmt, median, pin_to_cpu, verdict

from gateway.runtime.index_range import KeyRange
from gateway.runtime.readset import ReadSet
from gateway.sync.intervals import IntervalIndex
from gateway.values import encode_index_key, key_successor

BY_ID, BY_CREATION_TIME, BY_DEVICE = 1, 2, 7
SCALE_GOAL = 2.0  # indexed time at the largest size / at the smallest: at most
SPEEDUP_GOAL = 10.0  # linear scan / indexed at the largest size: at least

Keys = list[tuple[int, bytes]]
Step = Callable[[Keys], set[int]]


def device_key(n: int) -> bytes:
    return encode_index_key([f"device-{n:05d}"])


def read_sets(n: int) -> list[ReadSet]:
    out = []
    for i in range(n):
        rs = ReadSet()
        prefix = device_key(i)
        rs.record(BY_DEVICE, KeyRange(prefix, key_successor(prefix))).exhausted = True
        out.append(rs)
    return out


def commits(n: int, count: int, rng: random.Random) -> tuple[list[Keys], list[int]]:
    """``count`` inserts of a reading of a random device below ``n``: keys and device."""
    keys: list[Keys] = []
    devices: list[int] = []
    for c in range(count):
        device = rng.randrange(n)
        doc_id = f"j{rng.getrandbits(100):026x}"
        created = 1.7e12 + c
        keys.append(
            [
                (BY_ID, encode_index_key([doc_id])),
                (BY_CREATION_TIME, encode_index_key([created, doc_id])),
                (BY_DEVICE, encode_index_key([f"device-{device:05d}", created, doc_id])),
            ]
        )
        devices.append(device)
    return keys, devices


def build_index(sets: Sequence[ReadSet]) -> IntervalIndex[int]:
    index: IntervalIndex[int] = IntervalIndex()
    for sub, rs in enumerate(sets):
        index.add(sub, rs.intervals())
    return index


def linear_step(sets: Sequence[ReadSet]) -> Step:
    """A plain scan of every subscription's intervals, extracted once in advance."""
    flat = [(sub, [(i, r.start, r.end) for i, r in rs.intervals()]) for sub, rs in enumerate(sets)]

    def step(changed: Keys) -> set[int]:
        by_index: dict[int, list[bytes]] = {}
        for index_id, key in changed:
            by_index.setdefault(index_id, []).append(key)
        out: set[int] = set()
        for sub, intervals in flat:
            for index_id, start, end in intervals:
                keys = by_index.get(index_id)
                if keys is not None and any(start <= k and (end is None or k < end) for k in keys):
                    out.add(sub)
                    break
        return out

    return step


def intersects_step(sets: Sequence[ReadSet]) -> Step:
    def step(changed: Keys) -> set[int]:
        return {sub for sub, rs in enumerate(sets) if rs.intersects(changed)}

    return step


def batch_size(step: Step, keys: list[Keys], sample_s: float) -> int:
    batch = 1
    while True:
        t0 = time.perf_counter()
        for j in range(batch):
            step(keys[j % len(keys)])
        if time.perf_counter() - t0 >= sample_s or batch >= 1 << 20:
            return batch
        batch *= 2


def per_commit(step: Step, keys: list[Keys], batch: int, offset: int) -> float:
    """Seconds per commit over one batch, starting at ``keys[offset]``."""
    n = len(keys)
    t0 = time.perf_counter()
    for j in range(offset, offset + batch):
        step(keys[j % n])
    return (time.perf_counter() - t0) / batch


def index_bytes(sets: Sequence[ReadSet]) -> tuple[int, IntervalIndex[int]]:
    intervals = [list(rs.intervals()) for rs in sets]
    gc.collect()
    tracemalloc.start()
    index: IntervalIndex[int] = IntervalIndex()
    for sub, ivs in enumerate(intervals):
        index.add(sub, ivs)
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return used, index


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="1000,10000", help="subscription counts (1000,10000)")
    p.add_argument("--commits", type=int, default=1000, help="distinct commits replayed (1000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (5)")
    p.add_argument("--samples", type=int, default=20, help="samples per round and side (20)")
    p.add_argument("--sample-ms", type=float, default=5.0, help="least time per sample (5 ms)")
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--pin", action="store_true", help="run on one core (re-execs, like taskset)")
    p.add_argument("--cpu", type=int, default=0, help="the core --pin uses (0)")
    p.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = p.parse_args()
    if args.pin:
        pin_to_cpu(args.cpu)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    if len(sizes) < 2:
        p.error("--sizes needs at least two counts")
    rng = random.Random(args.seed)
    label = f"pin={'cpu' + str(args.cpu) if args.pin else 'no'}"
    print(
        f"bench/invalidation.py  {label}  sizes={sizes} commits={args.commits} "
        f"rounds={args.rounds} samples={args.samples} sample>={args.sample_ms} ms"
    )
    print(f"python {sys.version.split()[0]}, {affinity_text()}")

    sides: dict[tuple[str, int], Step] = {}
    workload: dict[int, list[Keys]] = {}
    memory: dict[int, int] = {}
    for n in sizes:
        sets = read_sets(n)
        keys, devices = commits(n, args.commits, rng)
        used, index = index_bytes(sets)
        memory[n] = used
        linear = linear_step(sets)
        slow = intersects_step(sets)
        # Correctness first: every commit reruns exactly its device's subscription.
        for changed, device in zip(keys, devices):
            assert index.affected(changed) == {device}, (n, device)
        for changed, device in list(zip(keys, devices))[:20]:
            assert linear(changed) == slow(changed) == {device}, (n, device)
        outside = encode_index_key([f"device-{n:05d}", 1.0, "x"])  # no one reads it
        assert index.affected([(BY_DEVICE, outside)]) == linear([(BY_DEVICE, outside)]) == set()
        layers = len(index._indexes[BY_DEVICE].layers)
        print(
            f"  n={n:>6}: checked {len(keys)} commits -> exactly 1 affected each; "
            f"{layers} layer(s); index memory {fmt(used / n)} bytes/subscription"
        )
        sides["indexed", n] = index.affected
        sides["linear", n] = linear
        sides["intersects", n] = slow
        workload[n] = keys

    sample_s = args.sample_ms / 1000
    batches = {k: batch_size(step, workload[k[1]], sample_s) for k, step in sides.items()}
    times: dict[tuple[str, int], list[float]] = {k: [] for k in sides}  # round medians
    order = list(sides)
    for r in range(args.rounds):
        gc.collect()
        samples: dict[tuple[str, int], list[float]] = {k: [] for k in sides}
        turn = order if r % 2 == 0 else order[::-1]
        for s in range(args.samples):
            for k in turn:
                offset = (s * batches[k]) % args.commits
                samples[k].append(per_commit(sides[k], workload[k[1]], batches[k], offset))
        for k in sides:
            times[k].append(median(samples[k]) or 0.0)

    small, large = sizes[0], sizes[-1]

    def us(side: str, n: int) -> float:
        return (median(times[side, n]) or 0.0) * 1e6

    def per_round(a: tuple[str, int], b: tuple[str, int]) -> float:
        return median(x / y for x, y in zip(times[a], times[b]) if y) or 0.0

    scale = per_round(("indexed", large), ("indexed", small))
    linear_scale = per_round(("linear", large), ("linear", small))
    speedup = per_round(("linear", large), ("indexed", large))
    speedup_rs = per_round(("intersects", large), ("indexed", large))
    ok_scale = scale <= SCALE_GOAL
    ok_speed = speedup >= SPEEDUP_GOAL

    print()
    print(f"medians over {args.rounds} rounds (us per commit = invalidation step, 3 changed keys):")
    print(f"  {'subscriptions':>13} {'indexed':>10} {'linear scan':>12} {'RS.intersects':>14}")
    for n in sizes:
        print(
            f"  {n:>13,} {us('indexed', n):>10.2f} {us('linear', n):>12.1f} "
            f"{us('intersects', n):>14.1f}"
        )
    print(
        f"  indexed {large:,}/{small:,}: {scale:.2f}x (goal <= {SCALE_GOAL:g}: "
        f"{verdict(ok_scale)}); linear scan {large:,}/{small:,}: {linear_scale:.2f}x"
    )
    print(
        f"  linear scan / indexed at {large:,}: {speedup:,.0f}x (goal >= {SPEEDUP_GOAL:g}: "
        f"{verdict(ok_speed)}); ReadSet.intersects / indexed: {speedup_rs:,.0f}x"
    )
    print(
        "  index memory per subscription: "
        + ", ".join(f"{fmt(memory[n] / n)} B at {n:,}" for n in sizes)
        + " (tracemalloc)"
    )
    print(
        f"SUMMARY invalidation [{label}]: indexed {us('indexed', large):.2f} us/commit at "
        f"{large:,} subs vs {us('indexed', small):.2f} us at {small:,} = {scale:.2f}x "
        f"(goal <= {SCALE_GOAL:g}: {verdict(ok_scale)}); linear scan {us('linear', large):,.0f} us "
        f"= {speedup:,.0f}x slower (goal >= {SPEEDUP_GOAL:g}: {verdict(ok_speed)}); "
        f"{fmt(memory[large] / large)} bytes/subscription"
    )
    if args.check and not (ok_scale and ok_speed):
        sys.exit(1)


if __name__ == "__main__":
    main()
