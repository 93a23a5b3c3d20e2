"""The ``q`` of ``.with_search_index("name", lambda q: q.search(f, text).eq(g, v))``.

Checked against the index as Convex's server does (convex-semantics 3.6): exactly one
``search`` on the index's search field, then ``eq`` on its filter fields (each once, at
most 8), at most 16 query terms. The plan it compiles to says what to ask FTS5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.errors import QueryError
from gateway.runtime.filters import display_value
from gateway.store import SearchIndexInfo
from gateway.store.search_text import MAX_QUERY_TERMS, match_expression, tokenize
from gateway.values import UNSET, encode_index_key, to_convex

MAX_FILTER_EXPRESSIONS = 8
MAX_SEARCH_RESULTS = 1024


class SearchQueryError(QueryError):
    """A ``with_search_index`` search function that the index cannot answer."""


class SearchFilterBuilder:
    """The ``q`` handed to ``with_search_index``. Immutable: calls return a new one."""

    __slots__ = ("_eqs", "_search")

    def __init__(
        self, search: tuple[str, str] | None = None, eqs: tuple[tuple[str, Any], ...] = ()
    ) -> None:
        self._search = search
        self._eqs = eqs

    def search(self, field: str, query: str) -> SearchFilterBuilder:
        """Match documents whose ``field`` holds any term of ``query`` (last: a prefix)."""
        if self._search is not None:
            raise SearchQueryError("with_search_index: q.search() may be called only once")
        if not isinstance(field, str) or not isinstance(query, str):
            raise SearchQueryError(
                "with_search_index: q.search(field, query) takes two strings, got "
                f"{field!r}, {query!r}"
            )
        return SearchFilterBuilder((field, query), self._eqs)

    def eq(self, field: str, value: Any) -> SearchFilterBuilder:
        """Keep documents whose filter field ``field`` equals ``value`` (UNSET: missing)."""
        if self._search is None:
            raise SearchQueryError("with_search_index: call q.search() before q.eq()")
        if not isinstance(field, str):
            raise SearchQueryError(f"with_search_index: q.eq() takes a field name, got {field!r}")
        normalised = UNSET if value is UNSET else to_convex(value, what=f"value for {field!r}")
        return SearchFilterBuilder(self._search, (*self._eqs, (field, normalised)))

    def __repr__(self) -> str:
        text = "" if self._search is None else f".search({self._search[0]!r}, {self._search[1]!r})"
        return "q" + text + "".join(f".eq({f!r}, {display_value(v)})" for f, v in self._eqs)


@dataclass(frozen=True)
class SearchPlan:
    """What one search query asks FTS5."""

    match: str | None  # None: no terms, nothing matches
    filters: dict[str, bytes]
    description: str


def compile_search(
    fn: Callable[[SearchFilterBuilder], Any], table: str, ix: SearchIndexInfo
) -> SearchPlan:
    """Run the user's search function and check it against the index."""
    if not callable(fn):
        raise SearchQueryError(
            f"with_search_index() takes a function of q, got {type(fn).__name__}"
        )
    built = fn(SearchFilterBuilder())
    if not isinstance(built, SearchFilterBuilder) or built._search is None:  # noqa: SLF001
        raise SearchQueryError(
            "The with_search_index() function must return q.search(field, query), optionally "
            "followed by .eq(filterField, value) calls"
        )
    field, text = built._search  # noqa: SLF001
    eqs = built._eqs  # noqa: SLF001
    name = f"{table}.{ix.name}"
    if field != ix.search_field:
        raise SearchQueryError(
            f"Search query against {name} uses the field {field!r}, but the index searches "
            f"{ix.search_field!r}"
        )
    return SearchPlan(_match(text, name), _filters(eqs, name, ix), repr(built))


def _match(text: str, name: str) -> str | None:
    terms = tokenize(text)
    if len(terms) > MAX_QUERY_TERMS:
        raise SearchQueryError(
            f"Search query against {name} has too many terms: {len(terms)} > maximum "
            f"{MAX_QUERY_TERMS}. Shorten the search text."
        )
    return match_expression(terms)


def _filters(eqs: tuple[tuple[str, Any], ...], name: str, ix: SearchIndexInfo) -> dict[str, bytes]:
    if len(eqs) > MAX_FILTER_EXPRESSIONS:
        raise SearchQueryError(
            f"Search query against {name} has too many filter expressions: {len(eqs)} > "
            f"maximum {MAX_FILTER_EXPRESSIONS}"
        )
    filters: dict[str, bytes] = {}
    for field, value in eqs:
        if field not in ix.filter_fields:
            raise SearchQueryError(
                f"Search query against {name} filters on {field!r}, which is not one of its "
                f"filter fields {list(ix.filter_fields)}; add it to filter_fields in the schema"
            )
        if field in filters:
            raise SearchQueryError(
                f"Search query against {name} filters on {field!r} twice; use one .eq() per field"
            )
        filters[field] = encode_index_key([value])
    return filters
