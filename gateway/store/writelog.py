"""The in-memory write log: every index key each recent commit changed, old and new.

Live queries (and OCC-style checks) intersect these keys with read sets. It holds a
bounded window of recent commits; a consumer that falls behind the window must treat
everything as changed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from gateway.store.writer import Committed

Listener = Callable[[list[Committed]], None]


class WriteLog:
    """Recent commits in commit order, plus listeners told of each new group."""

    # Each entry keeps its changed keys and documents alive, and every live object is
    # work for the garbage collector on the writer's path: keep the window modest.
    def __init__(self, max_commits: int = 1024) -> None:
        self._entries: deque[Committed] = deque(maxlen=max_commits)
        self._listeners: list[Listener] = []

    def append(self, commits: Iterable[Committed]) -> None:
        group = list(commits)
        # The window keeps keys only: documents (a bulk import's, say) must not stay
        # alive here. Listeners, told now, see the whole commit.
        self._entries.extend(Committed(c.ts, c.changed_keys, [], c.tables) for c in group)
        for listener in list(self._listeners):
            listener(group)

    def since(self, ts: int) -> list[Committed] | None:
        """Commits after ``ts`` (changed keys only); None if the window no longer
        reaches back that far."""
        if (
            self._entries
            and self._entries[0].ts > ts + 1
            and len(self._entries) == self._entries.maxlen
        ):
            return None
        return [c for c in self._entries if c.ts > ts]

    @property
    def last_ts(self) -> int:
        return self._entries[-1].ts if self._entries else 0

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with each group of commits; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def __len__(self) -> int:
        return len(self._entries)
