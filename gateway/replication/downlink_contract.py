"""The downlink: what an edge subscribes to upstream, and what the upstream answers.

One contract for both upstream targets, reached the same way (the Convex sync protocol,
``{upstream_url}/api/sync``, as a client): an Outpost hub (``hub = true``) serves it as
``HUB_CHANGES_PATH``, a Convex deployment with ``deploy/convex/`` as
``CONVEX_CHANGES_PATH``; the edge's ``upstream_kind`` setting picks one.

The query's args: ``{"gateway": str, "key": str, "table": str, "cursor": float,
"limit"?: float}``. ``gateway`` and ``key`` are the edge's credential, as in a push
batch (``batch.py``); a wrong pair fails the query with a ``ConvexError`` whose data is
``{"code": "ReplicationUnauthorized"}``, so the log never leaks to a stranger.

The answer: ``{"changes": [change, ...], "cursor": float, "done": bool}``:

- a change is ``{"id": str, "cursor": float, "deleted": bool, "doc": object | null}``:
  the document as it is now (Convex JSON, system fields included), or null for a
  tombstone (a deleted document);
- changes are those of ``table`` with a cursor above the one asked for, in commit order
  (ascending cursor), at most ``limit`` (default and ceiling ``MAX_CHANGES_PAGE``);
- ``cursor`` is where the next call resumes (the last change's, or the one asked for
  when there is none); ``done`` is false when the page was full (more may follow).

Cursors are one upstream-wide counter in commit order (the "commit-time watermark");
each document appears once, at the cursor of its latest change, so a caught-up edge
gets every document exactly as it is now, and an edge that resumes from cursor N
misses nothing committed after N. Being a query, the answer is live: a subscribed
client gets a new result when a change lands in its range.

The edge (``downlink.py``) applies one answer in one local transaction together with
its new cursor (the store's ``meta`` row ``downlink_cursor:<table>``), then moves its
subscription to that cursor. Applying is idempotent (an insert of a document already
there replaces it; a tombstone of a missing one is a no-op), so a re-delivered page
after a crash converges.

Ids: an Outpost hub with the same schema numbers its tables as the edge does, so a
document keeps the hub's ``_id``. A Convex deployment numbers tables its own way: when
the upstream id's table number is not the edge's, the edge re-encodes the id's 16
bytes under its own table number (the same upstream document always maps to the same
edge id, so updates and tombstones find it). ``v.id`` fields inside documents are
copied as they are.
"""

from __future__ import annotations

from typing import Final

HUB_CHANGES_PATH: Final = "_system/replication:changes"  # on an Outpost hub
CONVEX_CHANGES_PATH: Final = "outpost:changes"  # the query deploy/convex/ defines
MAX_CHANGES_PAGE: Final = 1000
CURSOR_META_PREFIX: Final = "downlink_cursor:"
