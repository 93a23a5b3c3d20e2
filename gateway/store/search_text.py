"""Convex's text analysis for search: how a string becomes terms.

Convex indexes with Tantivy's ``SimpleTokenizer`` (split on every character that is
not alphanumeric), drops long terms (``RemoveLongFilter(32)``), then lower-cases
(convex-semantics 3.6). Outpost does the same in Python and stores the terms
space-joined in FTS5 with its ``ascii`` tokenizer: that tokenizer splits only on ASCII
non-alphanumerics and keeps every non-ASCII character inside a token, so the terms
FTS5 sees are exactly the ones made here (``unicode61`` would apply its own idea of a
separator and fold diacritics, which Convex does not).

Python's ``str.isalnum`` is Unicode letters and numbers; Rust's ``char::is_alphanumeric``
also counts a few combining vowel signs as alphabetic. Text in those scripts may split
differently at such marks: the one known difference.
"""

from __future__ import annotations

import re

# Tantivy's RemoveLongFilter keeps a token while ``len(utf8) < limit``: with Convex's
# limit of 32, a term of 32 bytes or more is dropped (convex-semantics 3.6).
TERM_BYTES_LIMIT = 32
MAX_QUERY_TERMS = 16

# Runs of characters that are not alphanumeric; ``_`` is a word character for ``\\W``
# but not alphanumeric, so it is listed.
_SEPARATORS = re.compile(r"[\W_]+")


def tokenize(text: str) -> list[str]:
    """The terms of ``text``, in order, lower-cased; over-long terms dropped."""
    terms = []
    for raw in _SEPARATORS.split(text):
        # Length is checked before lower-casing, as Tantivy's filter chain does.
        if raw and len(raw.encode("utf-8")) < TERM_BYTES_LIMIT:
            terms.append(raw.lower() if raw.isascii() else _lower_each(raw))
    return terms


def _lower_each(term: str) -> str:
    # Tantivy's LowerCaser lower-cases character by character; ``str.lower`` would
    # make a word-final capital sigma "ς" where Tantivy makes "σ".
    return "".join(ch.lower() for ch in term)


def indexed_text(text: str) -> str:
    """What the FTS5 column holds for a document's search field."""
    return " ".join(tokenize(text))


def match_expression(terms: list[str]) -> str | None:
    """An FTS5 MATCH expression: any term, the last one as a prefix (typeahead).

    None when there is no term (nothing matches). Terms hold only alphanumerics, so
    quoting them is enough to keep FTS5's query syntax out.
    """
    if not terms:
        return None
    parts = [f'"{t}"' for t in dict.fromkeys(terms[:-1]) if t != terms[-1]]
    parts.append(f'"{terms[-1]}" *')
    return " OR ".join(parts)
