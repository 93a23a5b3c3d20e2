"""Dedupe marks: the bitmask window against a plain set model on random streams, and
the table round trip."""

from __future__ import annotations

import random
import sqlite3

import pytest

from gateway.mqtt import marks
from gateway.mqtt.marks import WINDOW, Mark


class PlainMarks:
    """The reference: sets of applied and given-up seqs, no bit tricks."""

    def __init__(self) -> None:
        self.applied: set[int] = set()
        self.given_up: set[int] = set()
        self._acked = 0  # only grows: resume the count where it stopped

    @property
    def acked(self) -> int:
        while self._acked + 1 in self.applied or self._acked + 1 in self.given_up:
            self._acked += 1
        return self._acked

    def seen(self, seq: int) -> bool:
        return seq <= self.acked or seq in self.applied or seq in self.given_up

    def add(self, seq: int) -> None:
        floor = seq - WINDOW  # everything at or below it leaves the window
        for k in range(self.acked + 1, floor + 1):
            if k not in self.applied:
                self.given_up.add(k)
        self.applied.add(seq)


@pytest.mark.parametrize("seed", range(20))
def test_the_window_agrees_with_the_plain_model(seed: int) -> None:
    rng = random.Random(seed)
    fast, plain = Mark("d", 1), PlainMarks()
    top = 0
    for _ in range(400):
        roll = rng.random()
        if roll < 0.6:
            top += 1
            seq = top  # in order
        elif roll < 0.85:
            seq = max(1, top - rng.randrange(0, 2 * WINDOW))  # a redelivery or a late one
        else:
            top += rng.choice([2, 5, WINDOW - 1, WINDOW, WINDOW + 1, 3 * WINDOW])
            seq = top  # a gap
        assert fast.seen(seq) == plain.seen(seq), (seed, seq)
        if not fast.seen(seq):
            fast.add(seq)
            plain.add(seq)
        assert fast.acked == plain.acked, (seed, seq)


def test_in_order_stream_acks_each_message() -> None:
    mark = Mark("d", 1)
    for seq in range(1, 200):
        assert not mark.seen(seq)
        mark.add(seq)
        assert mark.acked == seq and mark.above == 0 and mark.gave_up == 0


def test_a_jump_past_the_window_gives_up_the_gap_and_says_how_much() -> None:
    mark = Mark("d", 1)
    mark.add(1)
    mark.add(1 + WINDOW + 10)  # the window's top: 2..11 fall below it, 12.. still wait
    assert mark.acked == 11
    assert mark.gave_up == 10
    assert mark.seen(5) and not mark.seen(12)


def test_marks_round_trip_through_the_table_and_old_boots_are_pruned() -> None:
    conn = sqlite3.connect(":memory:")
    marks.ensure_table(conn)
    for boot in range(marks.BOOTS_KEPT + 3):
        mark = marks.load(conn, "d", boot)
        assert mark.new
        mark.add(1)
        mark.add(3)
        marks.save(conn, mark, now_ms=float(boot))
    again = marks.load(conn, "d", marks.BOOTS_KEPT + 2)
    assert (again.acked, again.above, again.new) == (1, 0b10, False)
    boots = [row[0] for row in conn.execute("SELECT boot FROM mqtt_marks ORDER BY boot")]
    assert boots == list(range(3, marks.BOOTS_KEPT + 3))
