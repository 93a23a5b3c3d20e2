from __future__ import annotations

import base64
import binascii
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidIdError
from gateway.values import IdGenerator, base32, decode_id, encode_id, is_id
from gateway.values import ids as ids_module
from gateway.values.ids import UrandomPool, fletcher16

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _stability_internal() -> bytes:
    out = [251]
    for _ in range(15):
        out.append(out[-1] * 251 % 256)
    return bytes(out)


def test_known_id_from_convex() -> None:
    # The stability vector of Convex's own id_v6 tests (table 1017).
    internal = _stability_internal()
    assert encode_id(1017, internal) == "z43zp6c3e75gkmz1kfwj6mbbx5sw281h"
    assert decode_id("z43zp6c3e75gkmz1kfwj6mbbx5sw281h") == (1017, internal)


def test_lengths_by_table_number() -> None:
    internal = bytes(range(16))
    assert len(encode_id(1, internal)) == 31
    assert len(encode_id(127, internal)) == 31
    assert len(encode_id(128, internal)) == 32
    assert len(encode_id(16383, internal)) == 32
    assert len(encode_id(16384, internal)) == 34
    assert len(encode_id(2**32 - 1, internal)) == 37


def test_alphabet_and_layout() -> None:
    s = encode_id(5, bytes(16))
    assert re.fullmatch(f"[{ALPHABET}]+", s)
    raw = base32.decode(s)
    assert raw[0] == 5 and raw[1:17] == bytes(16)
    assert int.from_bytes(raw[17:], "little") == fletcher16(raw[:17])


def test_fletcher16_modulus_256() -> None:
    assert fletcher16(b"") == 0
    assert fletcher16(b"\x01\x02") == (1 + 3) << 8 | 3
    assert fletcher16(b"\xff\xff") == ((0xFF + 0xFE) & 0xFF) << 8 | 0xFE


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.integers(1, 2**32 - 1), st.binary(min_size=16, max_size=16))
def test_round_trip(table: int, internal: bytes) -> None:
    s = encode_id(table, internal)
    assert decode_id(s) == (table, internal)
    assert is_id(s)


def test_footer_detects_any_single_character_change() -> None:
    s = encode_id(42, bytes(range(16)))
    for i in range(len(s)):
        for c in ALPHABET:
            if c == s[i]:
                continue
            t = s[:i] + c + s[i + 1 :]
            assert not is_id(t), t
            with pytest.raises(InvalidIdError):
                decode_id(t)


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("", "0 characters"),
        ("z43zp6c3e75gkmz1kfwj6mbbx5sw28", "30 characters"),
        ("z43zp6c3e75gkmz1kfwj6mbbx5sw281hz" + "0" * 5, "38 characters"),
        ("Z43zp6c3e75gkmz1kfwj6mbbx5sw281h", "'Z' is not in the base32 alphabet"),
        ("z43zp6c3e75gkmz1kfwj6mbbx5sw281i", "'i' is not in the base32 alphabet"),
        ("z43zp6c3e75gkmz1kfwj6mbbx5sw281j", "checksum"),
        ("z43zp6c3e75gkmz1kfwj6mbbx5sw281h0", "33 characters is not the length"),
    ],
)
def test_decode_errors(bad: str, fragment: str) -> None:
    with pytest.raises(InvalidIdError, match="is not a document id") as info:
        decode_id(bad)
    assert fragment in str(info.value)
    assert not is_id(bad)


def test_non_canonical_spellings_are_rejected() -> None:
    internal = bytes(range(16))
    # Non-zero padding bits in the last character.
    s = encode_id(1, internal)
    last = ALPHABET.index(s[-1])
    assert last & 0b111 == 0
    assert not is_id(s[:-1] + ALPHABET[last | 1])
    # An overlong VInt (0x81 0x00 for table 1) with a correct checksum.
    body = b"\x81\x00" + internal
    raw = body + fletcher16(body).to_bytes(2, "little")
    with pytest.raises(InvalidIdError, match="shortest form"):
        decode_id(base32.encode(raw))


def test_table_zero_and_huge_tables_are_rejected() -> None:
    body = b"\x00" + bytes(16)
    with pytest.raises(InvalidIdError, match="out of range"):
        decode_id(base32.encode(body + fletcher16(body).to_bytes(2, "little")))
    body = b"\xff\xff\xff\xff\x7f" + bytes(16)  # 2^35 - 1
    with pytest.raises(InvalidIdError, match="out of range"):
        decode_id(base32.encode(body + fletcher16(body).to_bytes(2, "little")))
    body = b"\xff" * 5 + b"\x01" + bytes(15)  # six-byte VInt
    with pytest.raises(InvalidIdError, match="32 bits"):
        decode_id(base32.encode(body + fletcher16(body).to_bytes(2, "little")))


def test_encode_errors() -> None:
    with pytest.raises(InvalidIdError, match="out of range"):
        encode_id(0, bytes(16))
    with pytest.raises(InvalidIdError, match="out of range"):
        encode_id(2**32, bytes(16))
    with pytest.raises(InvalidIdError, match="16 bytes, not 15"):
        encode_id(1, bytes(15))
    with pytest.raises(InvalidIdError, match="not bool"):
        encode_id(True, bytes(16))
    assert not is_id(5)
    with pytest.raises(InvalidIdError, match="ids are strings"):
        decode_id(b"x" * 31)  # type: ignore[arg-type]


def test_base32_matches_rfc4648_packing() -> None:
    for n in range(12):
        data = bytes(range(200, 200 + n))
        s = base32.encode(data)
        assert len(s) == base32.encoded_length(n)
        assert base32.decode(s) == data
    assert base32.encode(b"\xff") == "zw"
    assert base32.encode(b"\x00\x00\x00\x00\x00") == "00000000"


def test_generator_prefix_is_milliseconds() -> None:
    gen = IdGenerator(random.Random(1))
    internal = gen.new_internal_id(1_700_000_000_123)
    assert len(internal) == 16
    assert int.from_bytes(internal[:6], "big") == 1_700_000_000_123


def test_generator_is_strictly_increasing_within_a_millisecond_and_after_clock_steps() -> None:
    gen = IdGenerator(random.Random(7))
    times = [5_000] * 500 + [5_001] * 10 + [4_000] * 10 + [5_002] * 10
    ids = [gen.new_internal_id(t) for t in times]
    assert all(a < b for a, b in zip(ids, ids[1:]))
    assert len(set(ids)) == len(ids)
    assert int.from_bytes(ids[0][:6], "big") == 5_000
    assert int.from_bytes(ids[-1][:6], "big") == 5_002


def test_generator_carries_into_the_next_millisecond() -> None:
    class MaxRandom:
        def getrandbits(self, k: int) -> int:
            return (1 << k) - 1

    gen = IdGenerator(MaxRandom())
    a = gen.new_internal_id(10)
    b = gen.new_internal_id(10)
    assert a < b
    assert int.from_bytes(b[:6], "big") == 11


def test_generator_rejects_bad_times() -> None:
    gen = IdGenerator()
    with pytest.raises(ValueError, match="2\\^48"):
        gen.new_internal_id(-1)
    with pytest.raises(ValueError, match="2\\^48"):
        gen.new_internal_id(1 << 48)
    with pytest.raises(TypeError, match="int of milliseconds"):
        gen.new_internal_id(1.5)  # type: ignore[arg-type]


def test_ids_of_one_table_sort_by_time_as_strings() -> None:
    rng = random.Random(4)
    for table in (1, 127, 128, 10_000, 2**32 - 1):
        gen = IdGenerator(random.Random(table))
        times = sorted(rng.randrange(0, 1 << 48) for _ in range(300))
        times += [times[-1]] * 50  # many in one millisecond
        ids = [gen.new_id(table, t) for t in times]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
        assert [decode_id(s)[0] for s in ids] == [table] * len(ids)
        assert [int.from_bytes(decode_id(s)[1][:6], "big") for s in ids] == times


def test_ids_from_different_generators_sort_by_millisecond() -> None:
    gens = [IdGenerator(random.Random(i)) for i in range(3)]
    ids = [gens[t % 3].new_id(9, 1_000 + t) for t in range(300)]
    assert ids == sorted(ids)


def test_truncated_table_number_does_not_crash() -> None:
    # Looks like a one-byte table number but decodes to a longer VInt.
    assert not is_id("sssswsgggggggggsgcsssfafffsffks")


@pytest.mark.parametrize("k", [1, 7, 8, 24, 80, 81])
def test_the_urandom_pool_draws_k_bits_like_system_random(k: int) -> None:
    """The pooled source against the plain one it replaces: every draw fits in k bits,
    and over many draws the top bit is set about half the time for both."""
    pool, plain = UrandomPool(size=64), random.SystemRandom()  # a small pool refills often
    draws = 4000
    for source in (pool, plain):
        values = [source.getrandbits(k) for _ in range(draws)]
        assert all(0 <= v < 1 << k for v in values)
        top = sum(v >> (k - 1) & 1 for v in values) / draws
        assert 0.4 < top < 0.6, (source, k, top)
    assert len({pool.getrandbits(80) for _ in range(1000)}) == 1000


def _rfc4648_decode(text: str) -> bytes:
    """The plain path: the standard library's decoder, the alphabet translated."""
    padded = text.upper().translate(str.maketrans("0123456789ABCDEFGHJKMNPQRSTVWXYZ", _RFC))
    return base64.b32decode(padded + "=" * (-len(text) % 8))


_RFC = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@settings(max_examples=500)
@given(st.binary(max_size=40))
def test_base32_decode_agrees_with_the_standard_library(data: bytes) -> None:
    text = base32.encode(data)
    assert base32.decode(text) == _rfc4648_decode(text) == data


@settings(max_examples=300)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_base32_decode_accepts_exactly_what_the_plain_path_does(text: str) -> None:
    # The plain path cannot see non-zero padding bits or impossible lengths; encoding
    # its result back can: a spelling is valid exactly when it is canonical.
    try:
        expected: bytes | None = _rfc4648_decode(text)
    except binascii.Error:
        expected = None
    if expected is not None and base32.encode(expected) != text:
        expected = None
    try:
        got: bytes | None = base32.decode(text)
    except ValueError:
        got = None
    assert got == expected


def _fletcher16_loop(data: bytes) -> int:
    """The plain path: the running sums, one byte at a time."""
    c0 = c1 = 0
    for byte in data:
        c0 = (c0 + byte) & 0xFF
        c1 = (c1 + c0) & 0xFF
    return c1 << 8 | c0


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_fletcher16_agrees_with_the_running_sums(data: bytes) -> None:
    assert fletcher16(data) == _fletcher16_loop(data)


ID_CHARS = st.sampled_from(list(ALPHABET) + ["i", "l", "o", "u", "A", "Z", " ", "_", "-", "é"])


@st.composite
def id_like_text(draw: st.DrawFn) -> str:
    """31-character text near an id: a valid one (tables 1 to 300, so some have the
    two-byte VInt and are longer), one with a character changed, or any characters."""
    kind = draw(st.integers(0, 2))
    if kind == 2:
        return "".join(draw(st.lists(ID_CHARS, min_size=31, max_size=31)))
    text = encode_id(draw(st.integers(1, 300)), draw(st.binary(min_size=16, max_size=16)))
    if kind == 1:
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(ID_CHARS) + text[at + 1 :]
    return text


@settings(max_examples=3000)
@given(id_like_text())
def test_the_short_id_fast_path_decodes_exactly_what_the_full_path_does(text: str) -> None:
    try:
        expected: tuple[int, bytes] | None = ids_module._decode_any_id(text)
    except InvalidIdError:
        expected = None
    fast = ids_module._decode_short_id(text) if len(text) == 31 else None
    if fast is not None:
        assert fast == expected
    elif len(text) == 31:  # declined: only what the full path refuses
        assert expected is None
    if expected is None:
        with pytest.raises(InvalidIdError):
            ids_module._decode_id(text)
    else:
        assert ids_module._decode_id(text) == expected


def test_every_valid_short_id_takes_the_fast_path() -> None:
    rng = random.Random(7)
    for table in range(1, 128):
        text = encode_id(table, rng.randbytes(16))
        assert len(text) == 31
        assert ids_module._decode_short_id(text) == ids_module._decode_any_id(text)


def test_base32_names_the_first_character_outside_the_alphabet() -> None:
    for bad, shown in (("0" * 30 + "é", "'é'"), ("0" * 7 + "_", "'_'"), ("0 " * 4, "' '")):
        with pytest.raises(ValueError, match=f"character {shown} is not in the base32"):
            base32.decode(bad)
