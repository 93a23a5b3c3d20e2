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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.sync import protocol as p

FrameCache = dict[tuple[Any, ...], bytes]


@dataclass(slots=True)
class Transition:
    """A Transition not yet serialised: versions and one modification per query id."""

    start: p.StateVersion
    end: p.StateVersion
    modifications: dict[int, p.QueryBody] = field(default_factory=dict)
    added: set[int] = field(default_factory=set)  # query ids whose first result this is
    # Shared by the Transitions of one round: sockets holding the same queries under the
    # same query ids at the same versions (a hundred screens of one dashboard) get the
    # very same bytes, built once.
    cache: FrameCache | None = None

    def merged_with(self, later: Transition) -> Transition:
        """This Transition followed by ``later`` (which starts where this one ends)."""
        assert later.start == self.end, "Transitions to merge must chain"
        modifications = dict(self.modifications)
        added = set(self.added)
        for query_id, body in later.modifications.items():
            if query_id in added and query_id not in later.added and body[0] == "QueryRemoved":
                # Added and removed while the client was not reading: it never saw it.
                del modifications[query_id]
                added.discard(query_id)
                continue
            modifications[query_id] = body
        added |= later.added
        return Transition(self.start, later.end, modifications, added)

    def frame(self) -> bytes:
        """The Transition as the UTF-8 text frame a socket sends."""
        mods = self.modifications
        order = sorted(mods) if len(mods) > 1 else list(mods)
        key = (*self.start, *self.end, *((q, mods[q]) for q in order))
        cache = self.cache
        if cache is not None:
            found = cache.get(key)
            if found is not None:
                return found
        frames = [p.with_query_id(q, mods[q]) for q in order]
        data = p.transition(self.start, self.end, frames).encode()
        if cache is not None:
            cache[key] = data
        return data


class Outbox:
    """Frames for one socket, in order; Transitions merge while they wait.

    ``put`` only queues: whoever queued decides how the frames leave, either taken at
    once (``take``, the round sending inline) or by waking the socket's sender task
    (``wake``, which then ``get``s them).
    """

    def __init__(self) -> None:
        self._frames: deque[bytes] = deque()  # responses, pings, a frame put back
        self._transition: Transition | None = None  # always after every frame above
        self._ready = asyncio.Event()
        self.merged = 0  # Transitions folded into a waiting one (for tests and metrics)

    def __len__(self) -> int:
        return len(self._frames) + (self._transition is not None)

    def put(self, responses: Sequence[str], transition: Transition | None) -> None:
        """One round's output: its responses, then its Transition (if any)."""
        if responses:
            self._frames.extend(text.encode() for text in responses)
        if transition is not None:
            if self._transition is None:
                self._transition = transition
            else:
                self._transition = self._transition.merged_with(transition)
                self.merged += 1

    def clear(self) -> None:
        """Drop every waiting frame (the socket closed)."""
        self._frames.clear()
        self._transition = None

    def wake(self) -> None:
        """Let the sender task (in ``get``) take what is queued."""
        if len(self):
            self._ready.set()

    def take(self) -> bytes | None:
        """The next frame, or None; a waiting Transition is serialised only now."""
        if self._frames:
            return self._frames.popleft()
        transition, self._transition = self._transition, None
        return None if transition is None else transition.frame()

    def put_back(self, frame: bytes) -> None:
        """A frame just taken that could not go yet: it stays first in line."""
        self._frames.appendleft(frame)

    async def get(self) -> bytes:
        """The next frame, once there is one and ``wake`` was called."""
        while True:
            frame = self.take()
            if frame is not None:
                return frame
            self._ready.clear()
            await self._ready.wait()
