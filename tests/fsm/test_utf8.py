"""Code-point classes → UTF-8 byte expressions: every encoding right, nothing partial accepted."""

from __future__ import annotations

import random

import pytest

from structgen.fsm import utf8
from structgen.fsm.dfa import ByteDFA
from structgen.fsm.rx import ExprPool

EDGES = [0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFF, 0x1000, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x3FFFF, 0x40000, 0x10FFFF]


def _dfa(ranges) -> ByteDFA:
    pool = ExprPool()
    return ByteDFA(pool, utf8.char_class(pool, ranges))


def _samples(lo: int, hi: int, rnd: random.Random) -> list[int]:
    near = [lo, lo + 1, hi - 1, hi] + [e + d for e in EDGES for d in (-1, 0, 1)]
    return [c for c in near + [rnd.randint(0, 0x10FFFF) for _ in range(200)] if 0 <= c <= 0x10FFFF]


@pytest.mark.parametrize(
    "lo,hi",
    [(0, 0x10FFFF), (0x41, 0x5A), (0x7F, 0x80), (0x7FF, 0x800), (0xE0, 0xFF), (0x3B1, 0x3C9), (0x800, 0xFFFF),
     (0xD000, 0xE100), (0x1F600, 0x1F64F), (0xFFFF, 0x10000), (0x10000, 0x10FFFF), (0x123, 0x45678)],
)
def test_class_matches_exactly_the_encodings_of_its_code_points(lo, hi):
    dfa = _dfa([(lo, hi)])
    rnd = random.Random(lo * 31 + hi)
    for c in _samples(lo, hi, rnd):
        if 0xD800 <= c <= 0xDFFF:
            continue  # surrogates have no UTF-8 encoding
        data = chr(c).encode("utf-8")
        assert dfa.matches(data) == (lo <= c <= hi), hex(c)
        for cut in range(1, len(data)):
            assert not dfa.matches(data[:cut]), f"partial encoding of {c:#x} accepted"


def test_surrogates_and_invalid_bytes_never_match():
    dfa = _dfa([(0, 0x10FFFF)])
    assert not dfa.matches("\ud800".encode("utf-8", "surrogatepass"))
    for bad in [b"\x80", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xf4\x90\x80\x80", b"\xff"]:
        assert not dfa.matches(bad), bad
    assert not dfa.matches(b"")


def test_sequences_cover_range_without_overlap():
    for lo, hi in [(0, 0x10FFFF), (0x7FF, 0x10001), (0x5A5, 0x1234)]:
        seqs = utf8.utf8_sequences(lo, hi)
        count = 0
        for seq in seqs:
            n = 1
            for a, b in seq:
                assert a <= b
                n *= b - a + 1
            count += n
        surrogates = max(0, min(hi, 0xDFFF) - max(lo, 0xD800) + 1)
        assert count == hi - lo + 1 - surrogates


def test_normalize_and_negate_ranges():
    assert utf8.normalize_ranges([(5, 9), (0, 3), (4, 4), (20, 10)]) == [(0, 9)]
    assert utf8.normalize_ranges([(0xD000, 0xE000)]) == [(0xD000, 0xD7FF), (0xE000, 0xE000)]
    assert utf8.negate_ranges([(0, 0x40), (0x5B, 0x10FFFF)]) == [(0x41, 0x5A)]
    assert utf8.negate_ranges([]) == [(0, 0xD7FF), (0xE000, 0x10FFFF)]


def test_any_char_excludes():
    pool = ExprPool()
    dfa = ByteDFA(pool, utf8.any_char(pool, exclude=[(ord('"'), ord('"')), (0, 0x1F)]))
    assert dfa.matches("a") and dfa.matches("é") and dfa.matches("😀")
    assert not dfa.matches('"') and not dfa.matches("\n")
