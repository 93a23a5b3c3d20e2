"""``ctx.db.query(table)``: lazy, single-use query builders and their execution.

A query runs synchronously on its transaction's thread; every terminal is an ``async
def`` that never suspends, so it composes with the coroutine driver. Each scan is
recorded in the execution's read set up to where its iteration stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from gateway.errors import InvalidCursorError, QueryError
from gateway.runtime.cursors import query_fingerprint
from gateway.runtime.filters import Expression, compile_filter, filter_repr, matches
from gateway.runtime.index_range import KeyRange, compile_index_range, resolve_range
from gateway.runtime.search_run import SearchSource
from gateway.store import BY_CREATION_TIME, BY_ID, IndexInfo, TableInfo
from gateway.store.transaction import table_existence_key

if TYPE_CHECKING:
    from gateway.runtime.database import Execution

MAX_PAGE_ITEMS = 32_000
Document = dict[str, Any]


class IndexNotFoundError(QueryError):
    """``with_index`` names an index the table does not have."""


class Query:
    """A query over one table: source index, order, filters, then one terminal."""

    def __init__(self, ex: Execution, table: str) -> None:
        self._ex = ex
        self._table = table
        self._index = BY_CREATION_TIME
        self._range_fn: Callable[[Any], Any] | None = None
        self._order: str | None = None
        self._filters: list[Expression] = []
        self._source_set = False
        self._consumed = False
        self._resolved: tuple[TableInfo, IndexInfo, KeyRange] | None | bool = False
        self._search_fn: Callable[[Any], Any] | None = None
        self._searched: SearchSource | None | bool = False

    # --- building -------------------------------------------------------------------

    def with_index(self, name: str, range_fn: Callable[[Any], Any] | None = None) -> Query:
        """Read ``name`` (optionally only a range of it: ``lambda q: q.eq(...).gt(...)``)."""
        self._check_building("with_index")
        if self._source_set or self._order is not None or self._filters:
            raise QueryError("with_index() must come first, right after db.query(table)")
        self._source_set = True
        self._index = name
        self._range_fn = range_fn
        return self

    def full_table_scan(self) -> Query:
        self._check_building("full_table_scan")
        self._source_set = True
        return self

    def with_search_index(self, name: str, search_fn: Callable[[Any], Any]) -> Query:
        """Full-text search ``name``: ``lambda q: q.search(field, text).eq(f, v)...``;
        results in relevance order (no ``order()``), at most 1,024 of them."""
        self._check_building("with_search_index")
        if self._source_set or self._order is not None or self._filters:
            raise QueryError("with_search_index() must come first, right after db.query(table)")
        self._source_set = True
        self._index = name
        self._search_fn = search_fn
        return self

    def order(self, order: str) -> Query:
        """``"asc"`` (default) or ``"desc"`` over the whole index key; at most once."""
        self._check_building("order")
        if self._order is not None:
            raise QueryError("order() may be called at most once per query")
        if self._search_fn is not None:
            raise QueryError(
                "order() cannot be used with with_search_index(): search results come in "
                "relevance order"
            )
        if order not in ("asc", "desc"):
            raise QueryError(f'order() takes "asc" or "desc", got {order!r}')
        self._order = order
        return self

    def filter(self, predicate: Callable[[Any], Any]) -> Query:
        """Keep documents for which ``predicate(q)`` evaluates to true (scans still count)."""
        self._check_building("filter")
        # Convex counts one operator per .filter() call on a query (256 at most).
        self._filters.append(compile_filter(predicate, existing_operators=len(self._filters)))
        return self

    # --- terminals --------------------------------------------------------------------

    async def collect(self) -> list[Document]:
        self._consume()
        return list(self._rows())

    async def take(self, n: int) -> list[Document]:
        self._consume()
        if isinstance(n, bool) or not isinstance(n, int | float) or n < 0 or n != int(n):
            raise QueryError(f"take() takes a non-negative integer, got {n!r}")
        out: list[Document] = []
        if n == 0:
            return out
        for doc in self._rows(want=int(n)):
            out.append(doc)
            if len(out) >= n:
                break
        return out

    async def first(self) -> Document | None:
        rows = await self.take(1)
        return rows[0] if rows else None

    async def unique(self) -> Document | None:
        rows = await self.take(2)
        if len(rows) > 1:
            ids = ", ".join(str(r["_id"]) for r in rows)
            raise QueryError(
                f"unique() query returned more than one result from table {self._table}: [{ids}]"
            )
        return rows[0] if rows else None

    def __aiter__(self) -> AsyncIterator[Document]:
        self._consume()
        return _aiter(self._rows())

    async def paginate(self, opts: dict[str, Any]) -> dict[str, Any]:
        """One page: ``{"page", "isDone", "continueCursor", ...}`` (convex-semantics 3.4)."""
        self._consume()
        if self._ex.paginated:
            raise QueryError(
                "MultiplePaginatedDatabaseQueries: this function already called paginate(); "
                "only one paginated query is allowed per query or mutation"
            )
        self._ex.paginated = True
        if self._search_fn is not None:
            search = self._search_source()
            result: dict[str, Any]
            if search is None:
                result = {"page": [], "isDone": True, "continueCursor": ""}
            else:
                pin = self._ex.pinned_end
                result = search.paginate(self._filters, _pagination_opts(opts), pin)
            self._ex.page_end = result["continueCursor"]
            return result
        result = _Paginator(self, _pagination_opts(opts), self._ex.pinned_end).run()
        self._ex.page_end = result["continueCursor"]
        return result

    # --- execution --------------------------------------------------------------------

    def _check_building(self, what: str) -> None:
        if self._consumed:
            raise QueryError(f"{what}(): this query has already been run; build a new one")

    def _consume(self) -> None:
        if self._consumed:
            raise QueryError("this query has already been run; build a new one with db.query()")
        self._consumed = True

    def _source(self) -> tuple[TableInfo, IndexInfo, KeyRange] | None:
        """Table, index and key range (resolved once: the range function runs once)."""
        if self._resolved is False:
            self._resolved = self._resolve()
        assert self._resolved is not True
        return self._resolved

    def _resolve(self) -> tuple[TableInfo, IndexInfo, KeyRange] | None:
        ex = self._ex
        info = ex.tx.catalog.table(self._table)
        builder = compile_index_range(self._range_fn)
        if info is None:
            ex.read_set.point(*table_existence_key(self._table))
            if self._index not in (BY_CREATION_TIME, "by_id") and not ex.declares_index(
                self._table, self._index
            ):
                raise IndexNotFoundError(
                    f"IndexNotFoundError: Index {self._table}.{self._index} not found."
                )
            return None
        index = info.indexes.get(self._index)
        if index is None:
            raise IndexNotFoundError(
                f"IndexNotFoundError: Index {self._table}.{self._index} not found."
            )
        rng = resolve_range(
            builder, table=self._table, index_name=self._index, index_fields=index.fields
        )
        return info, index, rng

    def _search_source(self) -> SearchSource | None:
        """The search index and plan (None: the table does not exist yet)."""
        if self._searched is False:
            self._searched = self._resolve_search()
        assert self._searched is not True
        return self._searched

    def _resolve_search(self) -> SearchSource | None:
        ex = self._ex
        assert self._search_fn is not None
        info = ex.tx.catalog.table(self._table)
        if info is None:
            ex.read_set.point(*table_existence_key(self._table))
            definition = (getattr(ex.schema, "tables", None) or {}).get(self._table)
            if self._index not in getattr(definition, "search_indexes", {}):
                raise _index_not_found(self._table, self._index)
            return None
        ix = info.search.get(self._index)
        if ix is None:
            raise _index_not_found(self._table, self._index)
        by_id = info.indexes[BY_ID].index_id
        return SearchSource(ex, self._table, ix, by_id, self._search_fn)

    def _rows(
        self, narrow: Callable[[KeyRange], KeyRange] | None = None, *, want: int | None = None
    ) -> Iterator[Document]:
        """Documents in order; ``want``: the caller stops after that many (a search then
        ranks no more candidates than it needs)."""
        if self._search_fn is not None:
            search = self._search_source()
            if search is not None:
                yield from search.rows(self._filters, want)
            return
        for _key, doc in self._scan(narrow):
            if doc is not None:
                yield doc

    def _scan(
        self, narrow: Callable[[KeyRange], KeyRange] | None = None
    ) -> Iterator[tuple[bytes, Document | None]]:
        """(key, doc or None if filtered out) for every row scanned, in order."""
        source = self._source()
        if source is None:
            return
        _info, index, rng = source
        if narrow is not None:
            rng = narrow(rng)
        ex = self._ex
        descending = self._order == "desc"
        ex.limits.read_range()
        scan = ex.read_set.record(index.index_id, rng, descending=descending)
        if rng.is_empty:
            scan.exhausted = True
            return
        for key, size, doc in ex.tx.scan(index, rng.start, rng.end, descending=descending):
            scan.last_key = key
            ex.limits.read_document(size)
            if all(matches(f, doc) for f in self._filters):
                yield key, doc
            else:
                yield key, None
        scan.exhausted = True

    def fingerprint(self) -> str:
        """Identifies this query for its cursors (another query's cursor is refused)."""
        source = self._source()
        rng = source[2] if source else KeyRange(b"", None)
        fields = source[1].fields if source else ()
        return query_fingerprint(
            self._table,
            self._index,
            rng,
            self._order or "asc",
            filter_repr(self._filters),
            index_fields=fields,
        )


def _index_not_found(table: str, index: str) -> IndexNotFoundError:
    return IndexNotFoundError(f"IndexNotFoundError: Index {table}.{index} not found.")


async def _aiter(rows: Iterator[Document]) -> AsyncIterator[Document]:
    for doc in rows:
        yield doc


def _pagination_opts(opts: Any) -> dict[str, Any]:
    if not isinstance(opts, dict):
        raise QueryError("paginate() takes pagination options: {'numItems': n, 'cursor': None}")
    num = opts.get("numItems")
    if isinstance(num, bool) or not isinstance(num, int | float) or num != num:
        raise QueryError(f"paginate(): numItems must be a number, got {num!r}")
    if num < 1:
        raise QueryError("NoDocumentsForPagination: paginate() needs numItems of at least 1")
    if num > MAX_PAGE_ITEMS:
        raise QueryError(f"PageSizeTooLarge: numItems may be at most {MAX_PAGE_ITEMS}")
    cursor = opts.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise QueryError("paginate(): cursor must be a string or None")
    for cap in ("maximumRowsRead", "maximumBytesRead"):
        value = opts.get(cap)
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            raise QueryError(f"paginate(): {cap} must be a positive number")
    return opts


class _Paginator:
    """Reads one page of a query between a start cursor and an optional end cursor."""

    def __init__(self, query: Query, opts: dict[str, Any], pinned_end: str | None = None) -> None:
        self.q = query
        self.opts = opts
        self.codec = query._ex.cursors  # noqa: SLF001
        self.fp = query.fingerprint()
        self.desc = query._order == "desc"  # noqa: SLF001
        if pinned_end is not None and opts.get("endCursor") is None:
            # A live rerun: end exactly where the first run ended, so the page grows or
            # shrinks with inserts/deletes and never leaves a gap before the next page.
            # A pinned cursor of another query (a stale or foreign journal) is ignored.
            try:
                self.codec.decode(pinned_end, self.fp)
            except InvalidCursorError:
                pass
            else:
                self.opts = {**opts, "endCursor": pinned_end}

    def run(self) -> dict[str, Any]:
        opts, codec = self.opts, self.codec
        start = None
        if opts.get("cursor") is not None:
            start = codec.decode(opts["cursor"], self.fp)
            if start is None:  # the end cursor: nothing after it
                return self._result([], True, opts["cursor"])
        end_cursor = opts.get("endCursor")
        end = codec.decode(end_cursor, self.fp) if end_cursor is not None else None
        page: list[Document] = []
        keys: list[bytes] = []
        last: bytes | None = None
        rows_cap = opts.get("maximumRowsRead")
        rows = 0
        split_required = False
        for key, doc in self.q._scan(lambda r: self._narrow(r, start, end)):  # noqa: SLF001
            last, rows = key, rows + 1
            if doc is not None:
                page.append(doc)
                keys.append(key)
            if end_cursor is None and len(page) >= int(opts["numItems"]):
                return self._result(page, False, codec.encode(self.fp, key))
            if rows_cap is not None and rows >= rows_cap:
                split_required = True
                break
        if split_required and last is not None:
            result = self._result(page, False, codec.encode(self.fp, last))
            result["pageStatus"] = "SplitRequired"
            if len(keys) > 1:
                result["splitCursor"] = codec.encode(self.fp, keys[len(keys) // 2 - 1])
            return result
        if end_cursor is not None:
            return self._result(page, end is None, end_cursor)
        return self._result(page, True, codec.encode(self.fp, None))

    def _narrow(self, rng: KeyRange, start: bytes | None, end: bytes | None) -> KeyRange:
        lo, hi = rng.start, rng.end
        if start is not None:
            if self.desc:
                hi = start if hi is None else min(hi, start)
            else:
                lo = max(lo, start + b"\x00")
        if end is not None:
            if self.desc:
                lo = max(lo, end)
            else:
                hi = end + b"\x00" if hi is None else min(hi, end + b"\x00")
        return KeyRange(lo, hi)

    def _result(self, page: list[Document], done: bool, cursor: str) -> dict[str, Any]:
        return {"page": page, "isDone": done, "continueCursor": cursor}
