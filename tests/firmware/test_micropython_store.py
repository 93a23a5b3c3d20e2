"""The MicroPython client's flash rules, without a broker: what a power cut leaves behind."""

from __future__ import annotations

import json
from pathlib import Path

from outpost_client import Device
from outpost_store import Counter, Queue

CREDENTIALS = {"device": "d1", "username": "d1", "password": "x", "host": "127.0.0.1", "port": 1}


def device(flash: Path) -> Device:
    return Device(CREDENTIALS, str(flash), log=lambda _m: None)


def test_a_cut_between_the_reading_and_the_counter_never_reuses_a_seq(tmp_path: Path) -> None:
    first = device(tmp_path)
    first.record({"t": 1.0})
    first.record({"t": 2.0})
    counter = tmp_path / "counter.json"
    counter.write_text(json.dumps({"boot": first.boot, "seq": 1}))  # the counter lagged
    again = device(tmp_path)
    assert (again.boot, again.seq) == (first.boot, 2)
    assert again.record({"t": 3.0}) == 3


def test_a_counter_caught_between_write_and_rename_is_read(tmp_path: Path) -> None:
    counter = Counter(str(tmp_path))
    counter.seq = 41
    counter.save()
    (tmp_path / "counter.json").rename(tmp_path / "counter.json.tmp")
    assert (Counter(str(tmp_path)).boot, Counter(str(tmp_path)).seq) == (counter.boot, 41)


def test_a_half_written_reading_is_not_queued(tmp_path: Path) -> None:
    queue = Queue(str(tmp_path), 10)
    queue.put(1, b"one")
    (tmp_path / "queue" / "0000000002.tmp").write_bytes(b"tw")
    again = Queue(str(tmp_path), 10)
    assert again.seqs == [1] and again.get(1) == b"one"
    assert sorted(p.name for p in (tmp_path / "queue").iterdir()) == ["0000000001"]


def test_readings_of_a_lost_counter_are_dropped_with_the_old_boot(tmp_path: Path) -> None:
    first = device(tmp_path)
    for t in range(3):
        first.record({"t": float(t)})
    (tmp_path / "counter.json").unlink()  # the counter is gone, the queue is not
    again = device(tmp_path)
    assert again.boot != first.boot and again.seq == 0
    assert len(again.queue) == 0 and again.dropped == 3
