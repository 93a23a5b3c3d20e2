"""Hypothesis strategies for Convex values, shared by the property tests.

Built for volume (the order test draws 100,000 values): cheap leaves from small
pools of edge cases mixed with wide ranges, and nesting written out three levels
deep instead of ``st.recursive``, which costs several times more per value.
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from gateway.values import INT64_MAX, INT64_MIN, UNSET, Int64, Value


def float_from_bits(bits: int) -> float:
    value: float = struct.unpack(">d", struct.pack(">Q", bits))[0]
    return value


def _nan(sign: int, payload: int) -> float:
    return float_from_bits(sign << 63 | 0x7FF << 52 | payload)


#: NaNs of both signs, quiet and signalling, with small and large payloads.
nans = st.builds(
    _nan,
    st.integers(0, 1),
    st.one_of(
        st.integers(1, 8),
        st.integers(1, (1 << 52) - 1),
        st.sampled_from([1 << 51, (1 << 51) | 1, (1 << 52) - 1]),
    ),
)

floats = st.one_of(
    st.sampled_from(
        [0.0, -0.0, float("inf"), float("-inf"), 5e-324, -5e-324, 1.0, -1.0, 2.0, 2.0**53, 1e300]
    ),
    nans,
    st.floats(allow_nan=False),
)

int64s = st.one_of(
    st.sampled_from(
        [INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1, 0, -1, 1, 127, 128, -128, -129]
        + [255, 256, 32767, 32768, -32768, -32769, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1]
    ),
    st.integers(-300, 300),
    st.integers(INT64_MIN, INT64_MAX),
).map(Int64)

_chars = st.one_of(
    st.sampled_from(
        ["\x00", "a", "b", "\x7f", "\x80", "\xff", "\uffff", "\U0001f600", "\U0010ffff"]
    ),
    st.characters(exclude_categories=["Cs"]),  # every code point but lone surrogates
)
strings = st.one_of(
    st.sampled_from(["", "a", "a\x00", "\x00", "ab", "a\x00b", "b", "\U0001f600", "\uffff"]),
    st.text(_chars, max_size=4),
)

byte_strings = st.one_of(
    st.sampled_from(
        [b"", b"\x00", b"\xff", b"\x00\xff", b"\xff\x00", b"a\x00", b"a\x00\x00", b"a", b"a\xff"]
    ),
    st.binary(max_size=5),
)

leaves: st.SearchStrategy[Value] = st.one_of(
    st.none(), st.booleans(), int64s, floats, strings, byte_strings
)

#: Printable ASCII names, not starting with "$"; few of them, so objects share names
#: and one name is often a prefix of another.
field_names = st.sampled_from(["a", "b", "ab", "a b", "_", "Z", "~", "a$", "ba", "aa"])


#: A small pool of near-equal values: containers built from it often share a prefix
#: and differ just after it, where an ordering bug would show.
pool = st.sampled_from(
    [None, Int64(0), 0.0, -0.0, False, "", "a", "a\x00", "\x00", b"", b"\x00", b"\x00\xff"]
)


def _containers(children: st.SearchStrategy[Value]) -> st.SearchStrategy[Value]:
    element = st.one_of(pool, children)
    return st.one_of(
        st.lists(element, max_size=3),
        st.dictionaries(field_names, element, max_size=3),
    )


#: Convex values nested up to three levels.
values: st.SearchStrategy[Value] = st.one_of(
    leaves, _containers(st.one_of(leaves, _containers(st.one_of(leaves, _containers(leaves)))))
)

#: A value, or UNSET (which only ever appears at the top level or as an index key part).
top_values: st.SearchStrategy[Value] = st.one_of(st.just(UNSET), values)
