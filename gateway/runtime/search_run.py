"""Running a ``with_search_index`` query: its ranked rows, its read set, its pages.

A search ranks the matches in one FTS5 statement (at most 1,024 + 1, the one extra
telling whether there were more) and reads the documents as they are consumed. Its read
set is what can change its result, and no more:

- the search index's change key (``gateway/store/search.py``), written whenever a
  document enters or leaves the index or its terms or filter values change. Any such
  write reruns every live search on the index, whatever its terms and filters: BM25
  scores use index-wide statistics (document count, average length, how rare a term
  is), so a write outside a query's filter can reorder, or swap the last of, its
  results. (Found by the soundness property test; narrowing by filter values missed
  exactly that.)
- a point read of every document read (returned or dropped by ``.filter``), so a change
  to another field of one of them reruns it, and a change to a document it never
  reached does not.

Pages are positions in the ranked list: a cursor holds the count of results before
it. Relevance moves as documents change, so a rerun page may overlap or skip a
neighbour's row; Convex says the same of its search pagination ("relevance order is
subject to change").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from gateway.errors import InvalidCursorError
from gateway.runtime.cursors import query_fingerprint
from gateway.runtime.filters import Expression, filter_repr, matches
from gateway.runtime.index_range import FULL_RANGE
from gateway.runtime.search_query import (
    MAX_SEARCH_RESULTS,
    SearchPlan,
    SearchQueryError,
    compile_search,
)
from gateway.store import SearchIndexInfo
from gateway.store.search import CHANGE_KEY
from gateway.values import encode_index_key

if TYPE_CHECKING:
    from gateway.runtime.database import Execution

Document = dict[str, Any]


class SearchSource:
    """One search query's index and compiled plan (resolved once)."""

    def __init__(
        self,
        ex: Execution,
        table: str,
        ix: SearchIndexInfo,
        by_id: int,
        fn: Callable[[Any], Any],
    ) -> None:
        self.ex = ex
        self.table = table
        self.ix = ix
        self.by_id = by_id  # the table's by_id index: point reads of the documents read
        self.plan: SearchPlan = compile_search(fn, table, ix)

    def rows(self, filters: list[Expression], want: int | None = None) -> Iterator[Document]:
        """Matches in relevance order, ``.filter`` applied; past 1,024 candidates: error.

        ``want``: the caller stops after that many results. Without ``.filter`` every
        candidate is a result, so FTS5 ranks only that many (its top-k sort keeps ``want``
        rows, not 1,025); the 1,025th, the one that makes the error, is still asked for
        when ``want`` goes past 1,024.
        """
        ex, ix, plan = self.ex, self.ix, self.plan
        ex.limits.read_range()
        ex.read_set.point(ix.index_id, CHANGE_KEY)
        if plan.match is None:
            return
        limit = MAX_SEARCH_RESULTS + 1
        if want is not None and not filters:
            limit = min(want, limit)
        found = ex.tx.search(ix, plan.match, plan.filters, limit)
        for n, (size, doc) in enumerate(found):
            if n == MAX_SEARCH_RESULTS:
                raise SearchQueryError(
                    f"Search query against {self.table}.{ix.name} matched more than "
                    f"{MAX_SEARCH_RESULTS} documents, the most one search can read. Use "
                    f"take(n) with n <= {MAX_SEARCH_RESULTS}, paginate(), or narrow it "
                    "with .eq() on filter fields"
                )
            ex.limits.read_document(size)
            ex.read_set.point(self.by_id, encode_index_key([doc["_id"]]))
            if all(matches(f, doc) for f in filters):
                yield doc

    def fingerprint(self, filters: list[Expression]) -> str:
        return query_fingerprint(
            self.table,
            f"search:{self.ix.name}",
            FULL_RANGE,
            "relevance",
            self.plan.description + filter_repr(filters),
            index_fields=(self.ix.search_field, *self.ix.filter_fields),
        )

    def paginate(
        self, filters: list[Expression], opts: dict[str, Any], pinned_end: str | None
    ) -> dict[str, Any]:
        """One page of the ranked list between offset cursors (see the module doc)."""
        codec, fp = self.ex.cursors, self.fingerprint(filters)
        start = 0
        if opts.get("cursor") is not None:
            position = codec.decode(opts["cursor"], fp)
            if position is None:
                return {"page": [], "isDone": True, "continueCursor": opts["cursor"]}
            start = int.from_bytes(position, "big")
        end_cursor = opts.get("endCursor")
        if end_cursor is None and pinned_end is not None:
            try:  # a live rerun ends where its first run ended; a foreign pin is ignored
                codec.decode(pinned_end, fp)
                end_cursor = pinned_end
            except InvalidCursorError:
                pass
        end: int | None = None
        if end_cursor is not None:
            position = codec.decode(end_cursor, fp)
            end = None if position is None else int.from_bytes(position, "big")
        if end is not None:
            stop = end
        elif end_cursor is not None:  # an end cursor at the very end: everything after start
            stop = MAX_SEARCH_RESULTS + 1
        else:
            stop = start + int(opts["numItems"])
        page: list[Document] = []
        done = True
        for n, doc in enumerate(self.rows(filters)):
            if n >= stop:
                done = False
                break
            if n >= start:
                page.append(doc)
        if end_cursor is not None:
            return {"page": page, "isDone": end is None, "continueCursor": end_cursor}
        cursor = codec.encode(fp, None if done else stop.to_bytes(8, "big"))
        return {"page": page, "isDone": done, "continueCursor": cursor}
