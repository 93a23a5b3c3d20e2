# The device's flash state: the (boot, seq) counter and the queue of unacked readings.
#
# Plain MicroPython-compatible code (os and json only; no pathlib, no annotations) so
# that the same file runs on the board and under CPython in the tests.
#
# Rules the delivery contract rests on (issue 9, docs/mqtt.md):
# - `boot` is chosen at random (1 .. 2^31-1) only when there is no counter file (first
#   start, flash wiped); afterwards a reboot keeps it and continues `seq`.
# - A reading's file is written before the counter, so after a crash between the two
#   the counter is raised to the newest queued seq: a seq is never used twice in a boot.
# - A reading stays in the queue until an ack of this boot covers its seq.
# - The queue is bounded: when full, the oldest reading is dropped and counted
#   (`dropped`, kept in the counter file) rather than filling the flash.

import json
import os

try:
    from os import urandom
except ImportError:  # some MicroPython ports have no os.urandom
    urandom = None

COUNTER_NAME = "counter.json"
QUEUE_DIR_NAME = "queue"
MAX_BOOT = (1 << 31) - 1


def _join(directory, name):
    return directory + "/" + name


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def makedirs(path):
    """Make `path` and its parents where missing (MicroPython's os has no makedirs)."""
    built = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        built = built + part if built in ("", "/") else built + "/" + part
        if not _exists(built):
            os.mkdir(built)


def write_file_atomic(path, data):
    """Write `data` (bytes) to `path` through a temporary file and a rename."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    try:
        os.rename(tmp, path)
    except OSError:  # FAT refuses to rename over an existing file; littlefs does not
        os.remove(path)
        os.rename(tmp, path)


def random_boot():
    """A random boot number in 1 .. 2^31-1."""
    if urandom is not None:
        raw = urandom(4)
        number = (raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]
    else:
        import random

        number = random.getrandbits(32)
    return 1 + number % MAX_BOOT


class Counter:
    """The persisted (boot, seq, dropped) of a device; `next_seq()` reserves one seq."""

    def __init__(self, directory):
        makedirs(directory)  # a board's first start: /outpost is not there yet
        self.path = _join(directory, COUNTER_NAME)
        self.fresh = False  # True when this start chose a new boot
        state = self._load()
        if state is None:
            self.boot, self.seq, self.dropped = random_boot(), 0, 0
            self.fresh = True
            self.save()
        else:
            self.boot, self.seq, self.dropped = state

    def _load(self):
        for path in (self.path, self.path + ".tmp"):  # a crash between write and rename
            try:
                with open(path) as f:
                    state = json.loads(f.read())
                return int(state["boot"]), int(state["seq"]), int(state.get("dropped", 0))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return None

    def raise_to(self, seq):
        """Never reuse a seq already given to a queued reading."""
        if seq > self.seq:
            self.seq = seq
            self.save()

    def next_seq(self):
        self.seq += 1
        return self.seq

    def save(self):
        state = {"boot": self.boot, "seq": self.seq, "dropped": self.dropped}
        write_file_atomic(self.path, json.dumps(state).encode())


class Queue:
    """Unacked readings of this boot as files `queue/<seq>`, oldest first."""

    def __init__(self, directory, max_items):
        self.directory = _join(directory, QUEUE_DIR_NAME)
        self.max_items = max_items
        makedirs(self.directory)
        self.seqs = sorted(self._scan())

    def _scan(self):
        for name in os.listdir(self.directory):
            if name.endswith(".tmp"):
                os.remove(_join(self.directory, name))  # never renamed: not queued
            else:
                yield int(name)

    def _path(self, seq):
        return _join(self.directory, f"{seq:010d}")  # names sort like their numbers

    def __len__(self):
        return len(self.seqs)

    def newest(self):
        return self.seqs[-1] if self.seqs else 0

    def put(self, seq, payload):
        """Keep `payload` under `seq`; the number of old readings dropped to make room."""
        dropped = 0
        while len(self.seqs) >= self.max_items:
            self._remove(self.seqs.pop(0))
            dropped += 1
        write_file_atomic(self._path(seq), payload)
        self.seqs.append(seq)
        return dropped

    def get(self, seq):
        with open(self._path(seq), "rb") as f:
            return f.read()

    def after(self, seq):
        """The first queued seq above `seq`, or None."""
        for queued in self.seqs:
            if queued > seq:
                return queued
        return None

    def cover(self, seq):
        """Forget every reading with a seq <= `seq`; how many were forgotten."""
        count = 0
        while self.seqs and self.seqs[0] <= seq:
            self._remove(self.seqs.pop(0))
            count += 1
        return count

    def clear(self):
        return self.cover(self.newest())

    def _remove(self, seq):
        try:
            os.remove(self._path(seq))
        except OSError:
            pass
