"""Rows of self-looping DFA states from per-vocabulary token splits, without a trie walk.

A DFA state ``s`` loops on a byte class ``L`` when every byte of ``L`` leads ``s`` back to
``s`` (with ``utf8``: also every complete non-ASCII character, whatever its bytes). A token
spelled only with ``L`` (its non-ASCII bytes, under ``utf8``, forming complete valid UTF-8
characters) then ends in ``s``; any other token, after its longest such prefix, is back in
``s`` and continues with a byte outside ``L``. So the row of ``s`` needs only the distinct
*suffixes* after those prefixes walked from ``s`` (for a JSON string body: the few hundred
tails starting at a quote, a backslash, a control byte or a split character), and every token
sharing a suffix shares its end state. A state ``e`` whose in-class characters all lead to
such a looping state ``s`` (a string's opening quote done) uses the same split: inside tokens
end in ``s``, a suffix after a non-empty prefix starts from ``s``, a whole token from ``e``.

A *counting chain* generalises both: ``c[0] = e`` and every in-class character leads ``c[j]``
to one state ``c[j + 1]`` (a string with ``maxLength``: ``c[j]`` has read ``j`` characters,
and past the bound the chain is dead). An inside token of ``m`` characters ends in ``c[m]``;
another token's suffix starts from ``c[p]`` after a prefix of ``p`` characters (``chain_row``).

``LoopSplit`` holds that split for one class and one vocabulary; ``TokenTrie.loop_split``
builds it once and keeps it (a state of a string body or of ``[a-z ]*`` then costs a few
vector operations plus the walk of the live suffixes). ``valid_char_bytes`` and
``loops_on_non_ascii`` are the UTF-8 side: which token bytes form whole characters, and
whether every character leads a state to a given one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from . import trie_jit
from .dfa import UNKNOWN, ByteDFA
from .rx_derive import _BYTES, _CONCAT

MIN_INSIDE_FRACTION = 0.5  # below this share of tokens resolved as inside, the trie walk is cheaper
# ... unless the class already cost a big trie walk (``TokenTrie.want_split``): then down to this share
LOW_INSIDE_FRACTION = 0.3
GRID_WIDTH = 16  # suffix bytes walked with array operations; the rest of a longer suffix, one by one
MAX_GATHER = 8192  # more other tokens than this: walk only the suffixes whose first byte is alive (``_live_walks``)
USE_JIT = True  # walk the suffix grid with the compiled loop when numba is installed (``trie_jit``)


class LoopSplit(NamedTuple):
    """The tokens of a vocabulary split by one loop class ``(L, utf8)``.

    inside: token ids spelled only with the class (they end in the looping state), sorted.
    The other tokens are described by their *suffixes*, the distinct tails after their longest
    in-class prefix (suffix ``i`` is row ``i`` of ``grid``/``length``/``first``/``in_loop``).
    tails: the bytes past the grid's width of each suffix longer than it, by suffix.
    first: the first byte of each suffix (never in the class, so each suffix leaves the loop).
    in_loop: the suffix follows a non-empty in-class prefix (it starts in the looping state;
        else it is the whole token and starts in the state the row is computed for).
    rest_ids: the other tokens, sorted; ``rest_suffix[i]`` indexes the suffix of ``rest_ids[i]``.
    grid, length: the suffixes' first ``GRID_WIDTH`` bytes, zero-padded, and their lengths (a
        vectorised walk feeds them column by column).
    inside_chars, rest_chars: the characters of each inside token and of each other token's
        in-class prefix (bytes, for a class without ``utf8``), for counting chains.
    pair_suffix, pair_chars, rest_pair: the distinct (suffix, prefix characters) pairs of the
        other tokens and each token's pair: a counting chain walks each pair once.
    utf8_depth: 1 + the last character position where an inside token or a prefix holds a
        non-ASCII character (0 when none does): a chain checks non-ASCII moves only that deep.
    inside_mask: ``inside`` as a packed mask over the model's vocabulary size.
    char_count: [V] int16, the characters of each inside token by id, -1 for every other id (a
        compact chain row reads a token's end state as ``chain[char_count[t]]``).
    memo: arrays derived on first use: ``TokenTrie.shorter_mask`` (packed masks of the inside
        tokens with fewer than ``d`` characters, key ``d``), ``TokenTrie.inside_counts`` (key
        ``"counts"``) and the walk groups of ``_walk_groups`` (keys ``"loop"``, ``"chain"``).
    """

    inside: np.ndarray  # [k] int32
    tails: dict[int, bytes]
    first: np.ndarray  # [u] int64
    in_loop: np.ndarray  # [u] bool
    rest_ids: np.ndarray  # [r] int32
    rest_suffix: np.ndarray  # [r] int64
    grid: np.ndarray  # [u, min(GRID_WIDTH, longest suffix)] uint8
    length: np.ndarray  # [u] int64
    inside_chars: np.ndarray  # [k] int64, aligned with ``inside``
    rest_chars: np.ndarray  # [r] int64, aligned with ``rest_ids``
    pair_suffix: np.ndarray  # [q] int64
    pair_chars: np.ndarray  # [q] int64
    rest_pair: np.ndarray  # [r] int64, aligned with ``rest_ids``
    utf8_depth: int
    inside_mask: np.ndarray | None = None  # [ceil(V/32)] int32 packed mask of ``inside`` (set by the trie)
    char_count: np.ndarray | None = None  # [V] int16 (set by the trie)
    memo: dict | None = None  # (set by the trie)


def split_tokens(flat: np.ndarray, starts: np.ndarray, order: np.ndarray, token_of: np.ndarray,
                 char_ok: Callable[[], np.ndarray], char_pos: Callable[[bool], np.ndarray], bits: np.ndarray,
                 utf8: bool, min_fraction: float | None = None) -> LoopSplit | None:
    """Split the tokens (ids ``order``, bytes concatenated in ``flat`` from ``starts``) by the
    class ``bits`` ([256] bool; with ``utf8`` only its ASCII half is read). ``token_of``:
    [len(flat)] the token (position in ``starts``) of each byte (``token_of_byte``). ``char_ok()``:
    [len(flat)] bool, the byte belongs to a complete valid UTF-8 character of its token.
    ``char_pos(utf8)``: [len(flat) + 1] the characters before each byte (``char_positions``). None
    when fewer than ``min_fraction`` (default ``MIN_INSIDE_FRACTION``) of the tokens are inside (the
    split would not pay for itself)."""
    bad = ~bits[flat]  # [B] bool byte leaves the loop
    if utf8:
        bad = np.where(flat >= 0x80, ~char_ok(), bad)
    pos = np.flatnonzero(bad)
    tok = token_of[pos]  # [nb] token (order position) of each bad byte, ascending
    starts_token = np.ones(len(tok), dtype=bool)
    np.not_equal(tok[1:], tok[:-1], out=starts_token[1:])
    first_at = np.flatnonzero(starts_token)  # each rest token's first bad byte
    rest = tok[first_at].astype(np.int64)
    n_tok = len(starts)
    if n_tok - len(rest) < (MIN_INSIDE_FRACTION if min_fraction is None else min_fraction) * n_tok:
        return None
    inside = np.ones(n_tok, dtype=bool)
    inside[rest] = False
    cut = pos[first_at] - starts[rest]  # [r] length of each rest token's in-class prefix
    ends = np.append(starts[1:], len(flat))
    at = starts[rest] + cut  # [r] where each rest token's suffix starts in ``flat``
    size = ends[rest] - at  # [r] >= 1
    width = min(GRID_WIDTH, int(size.max(initial=1)))
    col = np.arange(width)
    padded = np.concatenate([flat, np.zeros(width, dtype=np.uint8)])
    cells = np.lib.stride_tricks.sliding_window_view(padded, width)[at]  # [r, width] copied rows
    cells *= (col < size[:, None]).view(np.uint8)  # zero past each suffix's end
    # equal suffixes: same bytes (all in the grid when no longer than its width), length and start
    # (after a prefix or not); a longer suffix keeps a key of its own (its row number)
    own = np.where(size > width, np.arange(len(rest)) + 1, 0).astype(np.uint64)
    words = -(-width // 8)
    keys = np.zeros((len(rest), words + 1), dtype=np.uint64)  # [r, words + 1] the grid bytes, then the rest
    keys.view(np.uint8)[:, :width] = cells
    keys[:, words] = size.astype(np.uint64) | (cut > 0).astype(np.uint64) << np.uint64(16) | own << np.uint64(17)
    rep, suffix_of = _unique_rows(keys)
    first = cells[rep, 0].astype(np.int64)
    in_loop = cut[rep] > 0
    length = size[rep].astype(np.int64)
    grid = np.ascontiguousarray(cells[rep])
    tails = {int(i): bytes(flat[at[r] + width : at[r] + size[r]])
             for i, r in zip(np.flatnonzero(length > width).tolist(), rep[length > width].tolist())}
    # character counts: a byte starts a character unless it continues a non-ASCII one (utf8 only)
    cum = char_pos(utf8)  # [B + 1] characters before each byte
    in_pos = np.flatnonzero(inside)
    in_order = _id_order(order, in_pos)
    inside_chars = (cum[ends[in_pos]] - cum[starts[in_pos]])[in_order]
    rest_chars = cum[at] - cum[starts[rest]]
    utf8_depth = 0
    if utf8:  # the deepest non-ASCII lead byte inside a token's in-class part
        lead = np.flatnonzero(flat >= 0xC0)
        ltok = token_of[lead]
        limit = ends.copy()
        limit[rest] = at
        lead, ltok = lead[lead < limit[ltok]], ltok[lead < limit[ltok]]
        if len(lead):
            utf8_depth = int((cum[lead] - cum[starts[ltok]]).max()) + 1
    by_id = _id_order(order, rest)  # the other tokens in id order: rows built from them need no sort
    suffix_of, rest_chars = suffix_of[by_id], rest_chars[by_id].astype(np.int64)
    span = int(rest_chars.max(initial=0)) + 1
    pairs, rest_pair = np.unique(suffix_of * span + rest_chars, return_inverse=True)
    return LoopSplit(order[in_pos][in_order].astype(np.int32), tails, first, in_loop,
                     order[rest][by_id].astype(np.int32), suffix_of, grid, length,
                     inside_chars.astype(np.int64), rest_chars, pairs // span, pairs % span,
                     rest_pair.reshape(-1).astype(np.int64), utf8_depth)


_HASH_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                       0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
                      dtype=np.uint64)


def _unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``keys`` ([n, k] uint64): ``(rep, inverse)``, ``rep[j]`` a row of distinct
    row ``j`` and ``inverse[i]`` the distinct row of row ``i`` (int64). Rows are hashed to one
    uint64 each (a sort of n integers instead of n byte strings); the result is checked row by row
    and falls back to comparing whole rows if two different rows ever share a hash."""
    n, k = keys.shape
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            h = (h ^ keys[:, j]) * _HASH_MULT[j % len(_HASH_MULT)]
            h ^= h >> np.uint64(29)
    perm = np.argsort(h)  # introsort: several times faster than the stable sort np.unique would use
    hs = h[perm]
    new = np.empty(n, dtype=bool)
    new[:1] = True
    np.not_equal(hs[1:], hs[:-1], out=new[1:])
    inverse = np.empty(n, dtype=np.int64)
    inverse[perm] = np.cumsum(new) - 1
    rep = perm[new]
    if not (keys[rep[inverse]] == keys).all():  # a hash collision: compare the rows themselves
        _, rep, inverse = np.unique(np.ascontiguousarray(keys).view(np.dtype((np.void, 8 * k))).ravel(),
                                    return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1).astype(np.int64)
    return rep, inverse


def _id_order(order: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The permutation of ``pos`` (ascending positions in ``order``, a list of distinct token ids)
    that sorts ``order[pos]`` by id, found with a scatter over the ids instead of a sort."""
    ids = order[pos]
    size = int(order.max(initial=-1)) + 1
    where = np.full(size, -1, dtype=np.int64)
    where[ids] = np.arange(len(ids))
    return where[where >= 0]


def token_of_byte(flat: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """[len(flat)] int32: the token (position in ``starts``) each byte of ``flat`` belongs to."""
    return np.repeat(np.arange(len(starts), dtype=np.int32), np.diff(np.append(starts, len(flat))))


def char_positions(flat: np.ndarray, utf8: bool) -> np.ndarray:
    """[len(flat) + 1] int32: the characters before each byte of ``flat`` (with ``utf8``, a byte
    starts a character unless it continues a non-ASCII one; else every byte does)."""
    starts_char = ~((flat >= 0x80) & (flat < 0xC0)) if utf8 else np.ones(len(flat), dtype=bool)
    cum = np.zeros(len(flat) + 1, dtype=np.int32)
    np.cumsum(starts_char, out=cum[1:])
    return cum


def valid_char_bytes(flat: np.ndarray, starts: np.ndarray, token_of: np.ndarray | None = None) -> np.ndarray:
    """[len(flat)] bool: the non-ASCII byte is part of a complete, valid UTF-8 character lying
    inside one token (tokens start at ``starts`` in ``flat``). Valid: no overlong form, no
    surrogate, nothing past U+10FFFF (the forms ``_UTF8_FORMS`` lists). ``token_of``: the
    ``token_of_byte`` array, when the caller has it."""
    n = len(flat)
    tok = token_of_byte(flat, starts) if token_of is None else token_of  # [n] token of each byte
    b = np.concatenate([flat, np.zeros(3, np.uint8)]).astype(np.int16)  # [n + 3]
    lead, c1, c2, c3 = b[:n], b[1 : n + 1], b[2 : n + 2], b[3 : n + 3]

    def cont(x, lo=0x80, hi=0xBF):
        return (x >= lo) & (x <= hi)

    two = cont(lead, 0xC2, 0xDF) & cont(c1)
    three = (cont(lead, 0xE0, 0xEF) & cont(c1, np.where(lead == 0xE0, 0xA0, 0x80), np.where(lead == 0xED, 0x9F, 0xBF))
             & cont(c2))
    four = (cont(lead, 0xF0, 0xF4) & cont(c1, np.where(lead == 0xF0, 0x90, 0x80), np.where(lead == 0xF4, 0x8F, 0xBF))
            & cont(c2) & cont(c3))
    width = np.where(two, 2, np.where(three, 3, np.where(four, 4, 0)))  # [n] char starting here, 0 none
    start = np.flatnonzero(width)
    start = start[tok[start + width[start] - 1] == tok[start]]  # the whole character inside one token
    ok = np.zeros(n, dtype=bool)
    for k in range(4):
        at = start[width[start] > k]
        ok[at + k] = True
    return ok


def loop_row(split: LoopSplit, state: int, loop: int, table_of: Callable[[], np.ndarray], ensure: Callable,
             walk: Callable[[int, bytes], int], first_byte: np.ndarray,
             skip: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The allowed tokens *outside* the class of ``split`` and their end states from ``state``,
    where ``loop`` loops on that class and every in-class character, except the first bytes in
    ``skip``, leads ``state`` to ``loop`` (``state == loop`` for a looping state); every inside
    token (``split.inside``) not starting with a ``skip`` byte is allowed and ends in ``loop``.
    The tokens starting with a byte of ``skip`` ([256] bool, None for none) are left out: the
    caller walks them.

    table_of(), ensure(states): the DFA's transition table and row expansion, as for
        ``TokenTrie.walk`` (``state`` and ``loop`` are expanded already).
    walk(x, data): the DFA state after feeding ``data`` from ``x`` (< 0 once dead).
    first_byte: [V] int16 first byte of each token id.
    """
    if len(split.rest_ids) > MAX_GATHER:
        ids, nexts = _live_walks(split, "loop", np.asarray([state, loop], dtype=np.int32), table_of, ensure, walk)
    else:
        start = np.where(split.in_loop, loop, state)  # [u] state each suffix starts from
        x = _walk_suffixes(split, np.arange(len(split.first)), start, table_of, ensure, walk)
        rest_end = x[split.rest_suffix]  # [r] end state of each other token, < 0 dead
        keep = rest_end >= 0
        ids, nexts = split.rest_ids[keep], rest_end[keep]
    if skip is not None:
        keep = ~skip[first_byte[ids]]
        ids, nexts = ids[keep], nexts[keep]
    return ids, nexts


def chain_row(split: LoopSplit, chain: np.ndarray, table_of: Callable[[], np.ndarray], ensure: Callable,
              walk: Callable[[int, bytes], int]) -> tuple[int, np.ndarray, np.ndarray]:
    """The row from ``chain[0]``, where every in-class character (of ``split``'s class) leads
    ``chain[j]`` to ``chain[j + 1]`` (< 0: dead, and dead from there on), in compact form:
    ``(d, ids, nexts)``. Every inside token with fewer than ``d`` characters is allowed and ends
    in ``chain[split.char_count[t]]`` (the longer ones are dead); ``ids``/``nexts`` are the other
    allowed tokens and their end states. ``chain`` has an entry for every count in
    ``split.inside_chars`` and ``split.rest_chars``; other arguments as for ``loop_row``."""
    dead = np.flatnonzero(chain < 0)
    d = int(dead[0]) if len(dead) else len(chain)
    if len(split.rest_ids) > MAX_GATHER:
        return d, *_live_walks(split, "chain", chain, table_of, ensure, walk)
    start = chain[split.pair_chars]  # [q] state each distinct (suffix, prefix length) walk starts from
    alive = np.flatnonzero(start >= 0)
    x = np.full(len(start), -1, dtype=np.int32)
    x[alive] = _walk_suffixes(split, split.pair_suffix[alive], start[alive], table_of, ensure, walk)
    rest_end = x[split.rest_pair]  # [r] end state of each other token, < 0 dead
    keep = rest_end >= 0
    return d, split.rest_ids[keep], rest_end[keep]


def _live_walks(split: LoopSplit, kind: str, start_of: np.ndarray, table_of: Callable[[], np.ndarray],
                ensure: Callable, walk: Callable[[int, bytes], int]) -> tuple[np.ndarray, np.ndarray]:
    """The other tokens of ``split`` that stay alive, and their end states (unsorted). A walk unit
    (``kind`` "loop": a suffix, starting from ``start_of[in_loop]``; "chain": a (suffix, prefix
    length ``p``) pair, starting from ``start_of[p]``) is walked only when its first byte is alive
    from its start: units are grouped by (start, first byte), so a row costs the live groups'
    units instead of every other token of the vocabulary (an alphanumeric class leaves ~70%)."""
    gp, gb, gs, ge, order, su, tord, tstart = _walk_groups(split, kind)
    st = start_of[gp]  # [g] start state of each group, < 0 dead
    ok = st >= 0
    if ok.any():
        table = table_of()
        if (table[st[ok], 0] == UNKNOWN).any():
            ensure(np.unique(st[ok]))
            table = table_of()
        ok[ok] = table[st[ok], gb[ok]] >= 0
    sel = np.flatnonzero(ok)
    units = order[concat_ranges(gs[sel], ge[sel])]  # [w] units whose first byte is alive
    x = _walk_suffixes(split, su[units], np.repeat(st[sel], ge[sel] - gs[sel]), table_of, ensure, walk)
    alive = x >= 0
    units, x = units[alive], x[alive]
    count = tstart[units + 1] - tstart[units]
    toks = tord[concat_ranges(tstart[units], tstart[units + 1])]
    return split.rest_ids[toks], np.repeat(x, count).astype(np.int32)


def _walk_groups(split: LoopSplit, kind: str):
    """The walk units of ``split`` (see ``_live_walks``) grouped by (start, first byte), built once:
    group start and first byte ([g] each), each group's range ``gs:ge`` in ``order`` (units sorted
    by group), each unit's suffix, and the other tokens grouped by unit (``tord[tstart[u]:tstart[u + 1]]``)."""
    found = split.memo.get(kind)
    if found is None:
        if kind == "chain":
            start, su, token_unit = split.pair_chars, split.pair_suffix, split.rest_pair
        else:
            start, su, token_unit = split.in_loop.astype(np.int64), np.arange(len(split.first)), split.rest_suffix
        key = start * 256 + split.first[su]
        order = np.argsort(key, kind="stable")
        groups, gs = np.unique(key[order], return_index=True)
        ge = np.append(gs[1:], len(order))
        tord = np.argsort(token_unit, kind="stable")
        tstart = np.searchsorted(token_unit[tord], np.arange(len(su) + 1))
        found = split.memo[kind] = (groups // 256, groups % 256, gs, ge, order, su, tord, tstart)
    return found


def concat_ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(lo[i], hi[i])`` for every ``i`` (int64; also ``TokenTrie.expand_ranges``)."""
    size = hi - lo
    return np.arange(int(size.sum()), dtype=np.int64) + np.repeat(lo - (np.cumsum(size) - size), size)


def _walk_suffixes(split: LoopSplit, su: np.ndarray, start: np.ndarray, table_of: Callable[[], np.ndarray],
                   ensure: Callable, walk: Callable[[int, bytes], int]) -> np.ndarray:
    """[w] int32 end states of the suffixes ``su[i]`` of ``split`` fed from ``start[i]`` (< 0 dead):
    the first ``GRID_WIDTH`` bytes column by column (compiled, walk by walk, when numba is
    there), the rest of a longer suffix with ``walk``."""
    if USE_JIT and trie_jit.AVAILABLE:
        try:
            x = trie_jit.suffix_walk(table_of, ensure, split.grid, split.length, su, start)
        except trie_jit.JitUnavailable:
            pass
        else:
            return _finish_long_suffixes(split, su, x, walk)
    table = table_of()
    if len(start) and (table[start, 0] == UNKNOWN).any():
        ensure(start)
        table = table_of()
    x = table[start, split.first[su]]  # [w] int32 state after each first byte
    length, grid = split.length[su], split.grid
    step = np.flatnonzero((x >= 0) & (length > 1))  # walks alive with bytes left
    for j in range(1, grid.shape[1]):
        if not len(step):
            break
        at = x[step]
        table = table_of()
        if (table[at, 0] == UNKNOWN).any():
            ensure(at)
            table = table_of()
        x[step] = nxt = table[at, grid[su[step], j]]
        step = step[(nxt >= 0) & (length[step] > j + 1)]
    return _finish_long_suffixes(split, su, x, walk)


def _finish_long_suffixes(split: LoopSplit, su: np.ndarray, x: np.ndarray, walk: Callable[[int, bytes], int]):
    """Feed the bytes of each suffix past the grid's width with ``walk``."""
    width = split.grid.shape[1]
    for i in np.flatnonzero((x >= 0) & (split.length[su] > width)).tolist():
        x[i] = walk(int(x[i]), split.tails[int(su[i])])
    return x


# UTF-8 encodings of every non-ASCII code point: (lead bytes, then one continuation range per byte)
_UTF8_FORMS = (
    ((0xC2, 0xDF), ((0x80, 0xBF),)),
    ((0xE0, 0xE0), ((0xA0, 0xBF), (0x80, 0xBF))),
    ((0xE1, 0xEC), ((0x80, 0xBF), (0x80, 0xBF))),
    ((0xED, 0xED), ((0x80, 0x9F), (0x80, 0xBF))),
    ((0xEE, 0xEF), ((0x80, 0xBF), (0x80, 0xBF))),
    ((0xF0, 0xF0), ((0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF))),
    ((0xF1, 0xF3), ((0x80, 0xBF), (0x80, 0xBF), (0x80, 0xBF))),
    ((0xF4, 0xF4), ((0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF))),
)


def loops_on_non_ascii(dfa: ByteDFA, state: int, target: int | None = None) -> bool:
    """True when every non-ASCII character (all of its UTF-8 bytes) leads ``state`` to ``target``
    (default: back to ``state`` itself)."""
    target = state if target is None else target
    if _non_ascii_by_shape(dfa, state, target):
        return True
    for (lo, hi), tail in _UTF8_FORMS:
        cur = np.unique(dfa.expand(state)[lo : hi + 1])
        for a, b in tail:
            if (cur < 0).any():
                return False
            dfa.ensure(cur)
            cur = np.unique(dfa.table[cur][:, a : b + 1])
        if not (cur == target).all():
            return False
    return True


def _range_mask(lo: int, hi: int) -> int:
    return ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1)


_FORM_MASKS = tuple((_range_mask(*lead), tuple(_range_mask(*c) for c in tail)) for lead, tail in _UTF8_FORMS)


def _non_ascii_by_shape(dfa: ByteDFA, state: int, target: int) -> bool:
    """A sufficient condition for ``loops_on_non_ascii`` read off the expressions, without
    expanding the states inside characters: the derivative of ``state`` by every lead byte of
    every form is ``[c1] ([c2] ([c3] target))`` with each byte class covering the form's
    continuation range (how a character class's UTF-8 branches derive). False: unknown."""
    pool = dfa.pool
    nodes, goal = pool._nodes, dfa.expr_of(target)
    row = pool.row(dfa.expr_of(state))
    for lead, tail in _FORM_MASKS:
        covered = 0
        for m, t in row:
            if not m & lead:
                continue
            covered |= m & lead
            for need in tail:
                node = nodes[t]
                if node[0] != _CONCAT:
                    return False
                head = nodes[node[1]]
                if head[0] != _BYTES or head[1] & need != need:
                    return False
                t = node[2]
            if t != goal:
                return False
        if covered != lead:
            return False
    return True
