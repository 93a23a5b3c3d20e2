"""A sync socket's outgoing frames: call responses, and at most one Transition waiting.

A client that stops reading (suspended, on a saturated link) must cost the gateway a
bounded amount of memory and must not hold back anyone else. Its sender task blocks
in the socket write; meanwhile rounds keep producing Transitions for it. Instead of
queueing them, a new Transition is merged into the one still waiting: the merged one
goes from the older one's start version to the newer one's end version, and carries,
per query, the newer modification. When the client reads again it gets one Transition
that is current, whatever it missed.

Call responses are never merged or dropped; they stay in order and always go out
before the Transition that follows them (read-your-writes: the JS client resolves a
mutation at the first Transition at or past its ts, the Python client at the next).
Their number is bounded by the session's limits on queued mutations and actions.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from gateway.sync import protocol as p


@dataclass
class Transition:
    """A Transition not yet serialised: versions and one modification per query id."""

    start: p.StateVersion
    end: p.StateVersion
    modifications: dict[int, str] = field(default_factory=dict)  # query id -> frame JSON
    added: set[int] = field(default_factory=set)  # query ids whose first result this is

    def merged_with(self, later: Transition) -> Transition:
        """This Transition followed by ``later`` (which starts where this one ends)."""
        assert later.start == self.end, "Transitions to merge must chain"
        modifications = dict(self.modifications)
        added = set(self.added)
        for query_id, frame in later.modifications.items():
            if query_id in added and query_id not in later.added and _is_removal(frame):
                # Added and removed while the client was not reading: it never saw it.
                del modifications[query_id]
                added.discard(query_id)
                continue
            modifications[query_id] = frame
        added |= later.added
        return Transition(self.start, later.end, modifications, added)

    def json(self) -> str:
        frames = [self.modifications[q] for q in sorted(self.modifications)]
        return p.transition(self.start, self.end, frames)


def _is_removal(frame: str) -> bool:
    return frame.startswith('{"type":"QueryRemoved"')


class Outbox:
    """Frames for one socket's sender, in order; Transitions merge while they wait."""

    def __init__(self) -> None:
        self._frames: deque[str] = deque()  # responses (and pings), in order
        self._transition: Transition | None = None  # always after every frame above
        self._ready = asyncio.Event()
        self.merged = 0  # Transitions folded into a waiting one (for tests and metrics)

    def __len__(self) -> int:
        return len(self._frames) + (self._transition is not None)

    @property
    def waiting_transition(self) -> Transition | None:
        return self._transition

    def put(self, responses: list[str], transition: Transition | None) -> None:
        """One round's output: its responses, then its Transition (if any)."""
        self._frames.extend(responses)
        if transition is not None:
            if self._transition is None:
                self._transition = transition
            else:
                self._transition = self._transition.merged_with(transition)
                self.merged += 1
        if len(self):
            self._ready.set()

    async def get(self) -> str:
        """The next frame to send; a waiting Transition is serialised only now."""
        while not len(self):
            self._ready.clear()
            await self._ready.wait()
        if self._frames:
            return self._frames.popleft()
        transition, self._transition = self._transition, None
        assert transition is not None
        return transition.json()
