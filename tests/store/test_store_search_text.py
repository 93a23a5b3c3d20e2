"""Search tokenisation: Python's tokenizer against a plain reference, and FTS5 storing
exactly the terms it makes (the ``ascii`` tokenizer must not re-split any of them)."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.search_text import TERM_BYTES_LIMIT, indexed_text, match_expression, tokenize

# Letters, digits, marks, separators, punctuation, symbols: every kind of character.
_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), max_codepoint=0x2FFFF)
    | st.sampled_from(list('aAzZ09_ -.,/"*()ÄéßİΣ日本語')),
    max_size=60,
)


def _tokens_reference(text: str) -> list[str]:
    """Convex's rule, one character at a time."""
    out, word = [], ""
    for ch in text + " ":
        if ch.isalnum():
            word += ch
            continue
        if word and len(word.encode()) < TERM_BYTES_LIMIT:
            out.append("".join(c.lower() for c in word))
        word = ""
    return out


@settings(max_examples=500, deadline=None)
@given(_TEXT)
def test_tokenize_matches_the_reference(text: str) -> None:
    assert tokenize(text) == _tokens_reference(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=4))
def test_fts5_keeps_exactly_the_terms_and_finds_each(texts: list[str]) -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(terms, tokenize='ascii')")
        conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'row')")
        conn.executemany("INSERT INTO t (terms) VALUES (?)", [(indexed_text(x),) for x in texts])
        stored = {row[0] for row in conn.execute("SELECT term FROM v")}
        assert stored == {t for x in texts for t in tokenize(x)}
        for i, text in enumerate(texts):
            for term in set(tokenize(text)):
                hits = {
                    r[0]
                    for r in conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (f'"{term}"',))
                }
                assert i + 1 in hits
                # The same term as a prefix query finds it too.
                expr = match_expression([term])
                assert expr is not None
                prefixed = {
                    r[0] for r in conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (expr,))
                }
                assert i + 1 in prefixed
