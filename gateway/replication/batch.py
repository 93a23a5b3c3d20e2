"""The replication batch: what an edge sends upstream, and what the upstream answers.

One contract for both upstream targets (an Outpost hub, or a Convex deployment with
``deploy/convex/``): the edge calls a mutation through the Convex HTTP API
(``POST {upstream_url}/api/mutation``, ``{"path": PUSH_PATH, "args": <batch>,
"format": "json"}``), so one client path serves both.

A batch (the mutation's args; JSON-compatible Convex values):

``{"gateway": str, "key": str, "epoch": float, "first": float, "last": float,
"clockTrusted": bool, "schema": str, "changes": [change, ...], "newest"?: float}``

- ``gateway``: the edge's gateway id (``Store.gateway_id``, made at first start).
- ``key``: the edge's credential for that gateway on the upstream (``outpost gateway add``
  on a hub); checked by the upstream, never logged by either side.
- ``epoch``: bumps when the edge's store is restored, imported or cloned; the upstream
  keeps one high-water mark per (gateway, epoch), so a restored store's seqs are never
  taken for ones "already seen".
- ``first`` .. ``last``: the edge's outbox sequence numbers this batch carries, in order,
  with no gap. ``changes`` holds exactly the entries ``first`` .. ``last`` (an entry of a
  table that no longer replicates is sent as a ``skip``, so the numbering stays whole).
- ``clockTrusted``: whether the edge's wall clock was trustworthy (NTP-synchronised) when
  these rows were stamped.
- ``schema``: a digest of the edge's schema of the replicated tables.
- ``newest`` (optional, float): the highest seq the edge had written when it cut this
  batch, so the upstream can show how far behind the gateway is (``newest`` - ``last``
  entries still to come). Edges before it omit it; an upstream must accept it and may
  ignore it. An upstream that refuses it (an older push with strict args) is sent
  batches without it from then on, so adding it never stalls a stream.

A change: ``{"seq": float, "op": "insert" | "update" | "delete" | "skip", "table": str,
"id": str, "ts": str (the HLC commit ts as a decimal string), "doc": object | null}``
(``doc``: the whole document after the change, system fields included; null for a delete
or a skip).

The answer (the mutation's value): ``{"applied": float}``, the highest seq of this
(gateway, epoch) the upstream has durably applied. Rules on the upstream, in one
transaction per batch:

- ``last`` <= applied: a batch seen before; answered, nothing applied again.
- no mark yet for this (gateway, epoch): ``first`` starts it (whatever its value).
- ``first`` == applied + 1: applied; the mark becomes ``last``.
- ``first`` > applied + 1: a gap; refused with a ``ConvexError`` whose data is
  ``{"code": "ReplicationGap", "applied": applied}``, so the edge re-sends from there.
- ``first`` <= applied < ``last``: the part above ``applied`` is applied (a batch re-cut
  after a partial acknowledgement).
- A wrong ``gateway``/``key``: ``ConvexError`` ``{"code": "ReplicationUnauthorized"}``.

The edge advances its durable cursor to ``applied`` only after the answer.
"""

from __future__ import annotations

from typing import Final, Literal

PUSH_PATH: Final = "_system/replication:push"  # on an Outpost hub
CONVEX_PUSH_PATH: Final = "outpost:push"  # the mutation deploy/convex/ defines
GAP_CODE: Final = "ReplicationGap"
UNAUTHORIZED_CODE: Final = "ReplicationUnauthorized"

# Caps under Convex's per-mutation limits (convex-semantics 4.3: 16,000 documents and
# 16 MiB written, 16 MiB of arguments; 1 s of user time, which a batch's upserts on a
# Convex deployment must fit): the edge cuts batches below both.
MAX_BATCH_CHANGES: Final = 1000
MAX_BATCH_BYTES: Final = 4 * 1024 * 1024

Op = Literal["insert", "update", "delete", "skip"]
