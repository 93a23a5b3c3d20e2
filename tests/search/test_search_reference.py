"""Search results against a brute-force reference on seeded random corpora.

The reference is the rule itself, written plainly: a document matches when its search
field is a string, any query term equals one of its terms, or its terms include one
starting with the last query term; and every ``.eq`` filter holds. Documents are
inserted, patched and deleted at random so the index is checked after churn too.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from gateway import Gateway

REF_SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "items": define_table(v.any())
            .search_index("by_text", search_field="text", filter_fields=["site", "kind"]),
    })
"""
REF_ITEMS = """
    from gateway import mutation, query

    @mutation
    async def apply(ctx, args):
        ids = []
        for op in args["ops"]:
            if op["op"] == "insert":
                ids.append(await ctx.db.insert("items", op["doc"]))
            elif op["op"] == "patch":
                await ctx.db.patch("items", op["id"], op["doc"])
            else:
                await ctx.db.delete("items", op["id"])
        return ids

    @query
    async def search(ctx, args):
        def build(q):
            q = q.search("text", args["text"])
            for field, value in args["eq"].items():
                q = q.eq(field, value)
            return q
        rows = await ctx.db.query("items").with_search_index("by_text", build).collect()
        return [r["_id"] for r in rows]
"""

_REF_WORDS = [
    "pump",
    "pumps",
    "pumping",
    "fail",
    "failure",
    "failed",
    "valve",
    "val",
    "v",
    "leak",
    "leaking",
    "north",
    "Nord",
    "Ärger",
    "ärgerlich",
    "日本",
    "x1",
    "x12",
    "42",
]
_REF_SEPARATORS = [" ", "  ", ", ", "-", "_", "/", "!? "]


def _ref_terms(text: str) -> list[str]:
    return [t.lower() for t in re.split(r"[\W_]+", text) if t and len(t.encode()) < 32]


def _ref_text(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return rng.choice([None, 3.0, ["pump"]])  # not a string: never indexed
    words = [rng.choice(_REF_WORDS) for _ in range(rng.randint(0, 6))]
    text = ""
    for w in words:
        text += w + rng.choice(_REF_SEPARATORS)
    return text


def _ref_doc(rng: random.Random) -> dict[str, Any]:
    doc: dict[str, Any] = {"text": _ref_text(rng)}
    if rng.random() < 0.9:
        doc["site"] = rng.choice(["a", "b", "c"])
    if rng.random() < 0.7:
        doc["kind"] = rng.choice([1.0, 2.0, "1"])
    return doc


def _ref_matches(doc: dict[str, Any], text: str, eq: dict[str, Any]) -> bool:
    if not isinstance(doc.get("text"), str):
        return False
    for field, value in eq.items():
        if field not in doc or type(doc[field]) is not type(value) or doc[field] != value:
            return False
    query = _ref_terms(text)
    if not query:
        return False
    terms = set(_ref_terms(doc["text"]))
    *exact, last = query
    return any(t in terms for t in exact) or any(t.startswith(last) for t in terms)


def _ref_query(rng: random.Random) -> tuple[str, dict[str, Any]]:
    words = [rng.choice(_REF_WORDS) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.4:  # a typed-ahead last word
        last = words[-1]
        words[-1] = last[: rng.randint(1, len(last))]
    eq: dict[str, Any] = {}
    if rng.random() < 0.4:
        eq["site"] = rng.choice(["a", "b", "z"])
    if rng.random() < 0.3:
        eq["kind"] = rng.choice([1.0, 2.0, "1"])
    return rng.choice(_REF_SEPARATORS).join(words), eq


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_search_agrees_with_brute_force(make_app, tmp_path, seed: int) -> None:
    rng = random.Random(seed)
    app = make_app(schema=REF_SCHEMA, items=REF_ITEMS)
    async with Gateway.open(app, tmp_path / "d") as gw:
        docs: dict[str, dict[str, Any]] = {}
        answered = 0
        for _round in range(6):
            ops: list[dict[str, Any]] = [
                {"op": "insert", "doc": _ref_doc(rng)} for _ in range(rng.randint(20, 60))
            ]
            for doc_id in rng.sample(sorted(docs), min(len(docs), rng.randint(0, 15))):
                if rng.random() < 0.5:
                    ops.append({"op": "delete", "id": doc_id})
                    del docs[doc_id]
                else:
                    patch = _ref_doc(rng)
                    ops.append({"op": "patch", "id": doc_id, "doc": patch})
                    docs[doc_id] = {k: v for k, v in docs[doc_id].items() if k not in patch}
                    docs[doc_id].update(patch)
            ids = await gw.run_mutation("items:apply", {"ops": ops})
            inserted = [op["doc"] for op in ops if op["op"] == "insert"]
            docs.update(zip(ids, inserted, strict=True))
            for _q in range(25):
                text, eq = _ref_query(rng)
                got = await gw.run_query("items:search", {"text": text, "eq": eq})
                want = {i for i, d in docs.items() if _ref_matches(d, text, eq)}
                assert len(got) == len(set(got)), (text, eq)
                assert set(got) == want, (text, eq)
                answered += bool(want)
        assert answered > 40  # the corpus really exercised matching, not only misses


async def _ref_commit_keys(gw: Gateway, ops: list[dict[str, Any]]) -> tuple[list, list[str]]:
    seen: list = []
    unsubscribe = gw.store.write_log.subscribe(seen.extend)
    try:
        ids = await gw.run_mutation("items:apply", {"ops": ops})
    finally:
        unsubscribe()
    return [key for commit in seen for key in commit.changed_keys], ids


@pytest.mark.parametrize("seed", [4, 5, 6, 7])
async def test_a_changed_result_always_intersects_the_read_set(
    make_app, tmp_path, seed: int
) -> None:
    """Reactivity is sound: whenever a write changes a search's result, the keys it
    committed fall inside that search's read set (so a live query reruns)."""
    rng = random.Random(seed)
    app = make_app(schema=REF_SCHEMA, items=REF_ITEMS)
    async with Gateway.open(app, tmp_path / "d") as gw:
        ids: list[str] = await gw.run_mutation(
            "items:apply", {"ops": [{"op": "insert", "doc": _ref_doc(rng)} for _ in range(40)]}
        )
        queries = [_ref_query(rng) for _ in range(12)]
        changed_and_seen = 0
        for _step in range(40):
            before = []
            for text, eq in queries:
                result = await gw.call("query", "items:search", {"text": text, "eq": eq})
                before.append((result.value, result.read_set))
            r = rng.random()
            if r < 0.4 or not ids:
                op: dict[str, Any] = {"op": "insert", "doc": _ref_doc(rng)}
            elif r < 0.8:
                op = {"op": "patch", "id": rng.choice(ids), "doc": _ref_doc(rng)}
            else:
                op = {"op": "delete", "id": ids.pop(rng.randrange(len(ids)))}
            keys, new_ids = await _ref_commit_keys(gw, [op])
            ids += new_ids
            for (text, eq), (value, read_set) in zip(queries, before, strict=True):
                after = await gw.run_query("items:search", {"text": text, "eq": eq})
                if after != value:
                    assert read_set.intersects(keys), (text, eq, op)
                    changed_and_seen += 1
        assert changed_and_seen > 5  # the property was exercised
