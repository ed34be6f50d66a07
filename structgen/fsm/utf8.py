"""Unicode code-point classes as UTF-8 byte-sequence expressions.

``char_class(pool, ranges)`` turns inclusive code-point ranges into an expression that matches
exactly the UTF-8 encodings of those code points (one whole character, never a partial one).
Surrogates (U+D800..U+DFFF) have no UTF-8 encoding and are always excluded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .rx import ExprPool

MAX_CODEPOINT = 0x10FFFF
_LENGTH_BOUNDS = ((0x0, 0x7F), (0x80, 0x7FF), (0x800, 0xFFFF), (0x10000, MAX_CODEPOINT))
_SURROGATES = (0xD800, 0xDFFF)


def normalize_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping/adjacent ranges; drop surrogates and out-of-range values."""
    items = sorted((max(lo, 0), min(hi, MAX_CODEPOINT)) for lo, hi in ranges if lo <= hi)
    out: list[tuple[int, int]] = []
    for lo, hi in items:
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    clean: list[tuple[int, int]] = []
    for lo, hi in out:
        s_lo, s_hi = _SURROGATES
        if hi < s_lo or lo > s_hi:
            clean.append((lo, hi))
            continue
        if lo < s_lo:
            clean.append((lo, s_lo - 1))
        if hi > s_hi:
            clean.append((s_hi + 1, hi))
    return clean


def negate_ranges(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Complement of normalised ranges within 0..U+10FFFF (surrogates excluded)."""
    out = []
    nxt = 0
    for lo, hi in normalize_ranges(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CODEPOINT:
        out.append((nxt, MAX_CODEPOINT))
    return normalize_ranges(out)


def utf8_sequences(lo: int, hi: int) -> list[list[tuple[int, int]]]:
    """Split code points ``lo..hi`` into byte-range sequences: each a list of (lo_byte, hi_byte)."""
    out: list[list[tuple[int, int]]] = []
    for s, e in normalize_ranges([(lo, hi)]):
        _sequences_of_clean_range(s, e, out)
    return out


def _sequences_of_clean_range(s: int, e: int, out: list[list[tuple[int, int]]]) -> None:
    """``utf8_sequences`` for a range already free of surrogates."""
    for blo, bhi in _LENGTH_BOUNDS:
        a, b = max(s, blo), min(e, bhi)
        if a <= b:
            _split_same_length(a, b, out)


def _split_same_length(lo: int, hi: int, out: list[list[tuple[int, int]]]) -> None:
    n = len(chr(lo).encode("utf-8", "surrogatepass"))
    for i in range(1, n):
        m = (1 << (6 * i)) - 1
        if lo & ~m != hi & ~m:
            if lo & m != 0:
                _split_same_length(lo, lo | m, out)
                _split_same_length((lo | m) + 1, hi, out)
                return
            if hi & m != m:
                _split_same_length(lo, (hi & ~m) - 1, out)
                _split_same_length(hi & ~m, hi, out)
                return
    a = chr(lo).encode("utf-8", "surrogatepass")
    b = chr(hi).encode("utf-8", "surrogatepass")
    out.append(list(zip(a, b)))


def char_class(pool: ExprPool, ranges: Iterable[tuple[int, int]]) -> int:
    """Expression matching one character whose code point lies in one of ``ranges``.

    The UTF-8 byte-range sequences are factored into a trie on their leading byte ranges
    (``[E1-EC][80-BF][80-BF] | [E1-EC][80-BF][80-8F]`` shares its head), which keeps the
    expression and its derivative rows small for large classes such as ``\\w``.
    """
    seqs: list[list[tuple[int, int]]] = []
    for lo, hi in normalize_ranges(ranges):
        _sequences_of_clean_range(lo, hi, seqs)
    return _trie(pool, seqs)


def _trie(pool: ExprPool, seqs: list[list[tuple[int, int]]]) -> int:
    groups: dict[tuple[int, int], list[list[tuple[int, int]]]] = {}
    ends = False
    for seq in seqs:
        if not seq:
            ends = True
        else:
            groups.setdefault(seq[0], []).append(seq[1:])
    branches = [pool.concat(pool.byte_range(lo, hi), _trie(pool, rest)) for (lo, hi), rest in groups.items()]
    if ends:
        branches.append(pool.eps)
    return pool.alt_of(branches)


def any_char(pool: ExprPool, exclude: Iterable[tuple[int, int]] = ()) -> int:
    """Any one character except those in ``exclude``."""
    return char_class(pool, negate_ranges(list(exclude)))
