"""A vocabulary's tokens as a byte trie in level order, and the vectorised walk of a byte DFA over it.

Layout (built once per vocabulary, ``trie_of(vocab)`` memoises it by fingerprint):

- ``order``: the ids of the walkable tokens (bytes not ``None``) sorted by their bytes; a
  trie node's subtree is the contiguous slice ``order[sub_lo[n]:sub_hi[n]]``, and the tokens
  spelling exactly node ``n``'s path come first: ``order[sub_lo[n]:sub_lo[n] + n_end[n]]``.
- nodes are numbered by depth (node 0 is the root, the empty prefix), so the children of a
  node are the contiguous range ``child_lo[n]:child_hi[n]``; ``byte[n]`` labels the edge into n.
- ``below[n]``: the set of bytes on edges strictly below ``n`` ([n, 4] uint64, bit b of word
  b >> 6), so a subtree whose bytes all loop on the current DFA state is resolved without
  walking it (JSON string bodies, digit runs, whitespace runs).
- ``utf8_tail[n]``: every token of the subtree continues below ``n`` with complete, valid UTF-8
  characters (or not at all), so a state that returns to itself on every non-ASCII character
  (a JSON string body) resolves the subtree when its ASCII bytes loop too.

``TokenTrie.walk(table_of, ensure, loops, roots)`` returns, for every root DFA state, the
tokens that stay alive when their bytes are fed from that state, and the state each one ends
in. It advances one trie level per step with array operations; once the unfinished tokens under
the frontier are few (``SCALAR_TAIL``), it finishes them one token at a time in byte order,
resuming each from the state after the prefix it shares with the previous token and skipping
runs of looping bytes with ``bytes.lstrip`` (long tokens such as 64 dashes would cost a level
per byte).

``TokenTrie.loop_split(bits, utf8)`` keeps, per loop byte class, the split of the vocabulary
that ``loopclass`` describes (built on first use, ``MAX_SPLITS`` classes at most).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from . import trie_jit
from .dfa import UNKNOWN
from .loopclass import (LOW_INSIDE_FRACTION, LoopSplit, char_positions, concat_ranges, split_tokens,
                        token_of_byte, valid_char_bytes)
from .vocabulary import Vocabulary

SCALAR_TAIL = 512  # a frontier whose subtrees hold at most this many unfinished tokens is walked per token
MAX_SPLITS = 64  # loop-class splits kept per vocabulary (each up to a few hundred KB)
_MISSING = object()


def _row(table_of: Callable[[], np.ndarray], ensure: Callable, state: int) -> np.ndarray:
    """The transition row of ``state``, expanded first if needed."""
    row = table_of()[state]
    if row[0] == UNKNOWN:
        ensure([state])
        row = table_of()[state]
    return row


class WalkResult(NamedTuple):
    """Alive tokens of one walk: ``order`` positions ``lo[i]:hi[i]`` end in ``state[i]``, for root ``root[i]``."""

    root: np.ndarray  # [r] int64 index into the roots passed to walk
    lo: np.ndarray  # [r] int64
    hi: np.ndarray  # [r] int64
    state: np.ndarray  # [r] int32 DFA state the tokens of the range end in


class TokenTrie:
    """Level-ordered byte trie over a vocabulary's walkable tokens (immutable once built)."""

    def __init__(self, vocab: Vocabulary):
        self.fingerprint = vocab.fingerprint
        ids = [i for i, t in enumerate(vocab.tokens) if t]
        ids.sort(key=lambda i: vocab.tokens[i])
        self.order = np.asarray(ids, dtype=np.int32)  # [T] token ids in byte order
        self.sorted_bytes = [vocab.tokens[i] for i in ids]  # token bytes in ``order``
        self._build(self.sorted_bytes)
        self.first_byte = np.full(vocab.size, -1, dtype=np.int16)  # [V] first byte of each token id, -1 none
        self.first_byte[self.order] = self.flat[self.starts]
        self._splits: dict[tuple, LoopSplit | None] = {}  # (class, utf8[, lower share]) -> split
        self._wanted: set[tuple[bytes, bool]] = set()  # classes to split with the lower share (``want_split``)
        self._words = (vocab.size + 31) // 32
        self._first_masks: dict[int, np.ndarray] = {}  # first byte -> packed mask of the tokens starting with it
        self._char_ok: np.ndarray | None = None
        self._byte_token: np.ndarray | None = None  # see ``_token_of``
        self._char_cum: dict[bool, np.ndarray] = {}  # see ``_char_pos``
        self._split_lock = threading.Lock()

    # ------------------------------------------------------------------ construction
    def _build(self, toks: list[bytes]) -> None:
        T = len(toks)
        lens = np.fromiter((len(t) for t in toks), dtype=np.int64, count=T)  # [T]
        depth_max = int(lens.max()) if T else 0
        self.flat = flat = np.frombuffer(b"".join(toks), dtype=np.uint8)  # [B] every token's bytes, in order
        self.starts = starts = np.concatenate([[0], np.cumsum(lens)[:-1]]) if T else np.zeros(0, np.int64)  # [T]
        lcp = self._lcp(toks)  # [T] common prefix length with the previous token (0 for the first)
        self.lcp_list = lcp.tolist()
        self.max_len = depth_max
        levels_pos, level_start = [np.zeros(1, np.int64)], [0, 1]
        for d in range(1, depth_max + 1):  # a token creates nodes at depths lcp+1 .. len
            levels_pos.append(np.flatnonzero((lcp < d) & (lens >= d)))
            level_start.append(level_start[-1] + len(levels_pos[-1]))
        n = level_start[-1]
        self.num_nodes = n
        self.level_start = np.asarray(level_start, dtype=np.int64)
        self.byte = np.zeros(n, dtype=np.uint8)
        self.sub_lo = np.zeros(n, dtype=np.int64)
        self.sub_hi = np.full(n, T, dtype=np.int64)
        self.n_end = np.zeros(n, dtype=np.int64)
        self.child_lo = np.zeros(n, dtype=np.int64)
        self.child_hi = np.zeros(n, dtype=np.int64)
        for d in range(1, depth_max + 1):
            pos, a = levels_pos[d], level_start[d]
            sl = slice(a, a + len(pos))
            breaks = np.flatnonzero(lcp < d)  # a token not sharing the depth-d prefix of its predecessor
            nxt = np.searchsorted(breaks, pos, side="right")
            self.sub_lo[sl] = pos
            self.sub_hi[sl] = np.append(breaks, T)[nxt]
            exact = np.concatenate([[0], np.cumsum(lens == d)])
            self.n_end[sl] = exact[self.sub_hi[sl]] - exact[pos]
            self.byte[sl] = flat[starts[pos] + d - 1]
            parents = slice(level_start[d - 1], level_start[d])
            self.child_lo[parents] = a + np.searchsorted(pos, self.sub_lo[parents])
            self.child_hi[parents] = a + np.searchsorted(pos, self.sub_hi[parents])
        self.below, kid_cont = self._below_sets()
        self.kid_count = self.child_hi - self.child_lo
        self.end_hi = self.sub_lo + self.n_end
        kmin = np.fromiter((_utf8_valid_from(t) for t in toks), dtype=np.int64, count=T)  # [T]
        self.utf8_tail = ~kid_cont
        for d in range(1, depth_max + 1):
            a, b = level_start[d], level_start[d + 1]
            masked = np.where(lens >= d, kmin, 0)
            self.utf8_tail[a:b] &= np.maximum.reduceat(masked, self.sub_lo[a:b]) <= d
        self.utf8_tail[0] = False
        self.utf8_free = self.utf8_tail | ~np.any(self.below[:, 2:], axis=1)  # nothing non-ASCII to check
        self.root_child = np.full(256, -1, dtype=np.int64)  # [256] depth-1 node of each first byte, -1 none
        self.root_child[self.byte[self.child_lo[0] : self.child_hi[0]]] = np.arange(self.child_lo[0], self.child_hi[0])

    @staticmethod
    def _lcp(toks: list[bytes]) -> np.ndarray:
        out = np.zeros(len(toks), dtype=np.int64)
        for i in range(1, len(toks)):
            a, b = toks[i - 1], toks[i]
            m = min(len(a), len(b))
            k = 0
            while k < m and a[k] == b[k]:
                k += 1
            out[i] = k
        return out

    def _below_sets(self) -> tuple[np.ndarray, np.ndarray]:
        """``below[n]`` = bytes of every edge strictly under n, filled from the deepest level up;
        and whether some child edge of n is a UTF-8 continuation byte."""
        below = np.zeros((self.num_nodes, 4), dtype=np.uint64)  # [n, 4] uint64 byte sets
        bit = np.zeros((self.num_nodes, 4), dtype=np.uint64)
        rows = np.arange(self.num_nodes)
        bit[rows, self.byte >> 6] = np.left_shift(np.uint64(1), (self.byte & 63).astype(np.uint64))
        bit[0] = 0
        mine = below | bit  # edge into n plus everything under n
        cont = ((self.byte >= 0x80) & (self.byte < 0xC0)).astype(np.int8)
        kid_cont = np.zeros(self.num_nodes, dtype=bool)
        for d in range(len(self.level_start) - 2, -1, -1):
            lo, hi = self.level_start[d], self.level_start[d + 1]
            par = np.arange(lo, hi)
            par = par[self.child_hi[par] > self.child_lo[par]]
            if not len(par):
                continue
            a, b = self.level_start[d + 1], self.level_start[d + 2]
            # the children of consecutive parents tile level d + 1 in order
            below[par] = np.bitwise_or.reduceat(mine[a:b], self.child_lo[par] - a, axis=0)
            mine[par] = below[par] | bit[par]
            kid_cont[par] = np.maximum.reduceat(cont[a:b], self.child_lo[par] - a) > 0
        return below, kid_cont

    # ------------------------------------------------------------------ loop classes
    def loop_split(self, bits: np.ndarray, utf8: bool, narrow: bool = False) -> LoopSplit | None:
        """The split of the vocabulary by the loop class ``bits`` ([4] uint64 byte set, as
        ``walk``'s ``loops`` gives it) and ``utf8`` (see ``loopclass``), built once per class;
        None when the class resolves too few tokens to beat the trie walk: fewer than
        ``MIN_INSIDE_FRACTION`` of them, or, with ``narrow``, than ``LOW_INSIDE_FRACTION`` for a
        class that ``want_split`` marked (its trie walks were big)."""
        key = (np.ascontiguousarray(bits, dtype=np.uint64).tobytes(), bool(utf8))
        split = self._split(key)
        if split is None and narrow and key in self._wanted:
            split = self._split(key + (True,))
        return split

    def _split(self, key: tuple) -> LoopSplit | None:
        """``loop_split`` for ``(class bytes, utf8[, True: with the lower share])``, memoised."""
        found = self._splits.get(key, _MISSING)
        if found is not _MISSING:
            return found
        with self._split_lock:
            if key not in self._splits:
                if len(self._splits) >= MAX_SPLITS:
                    self._splits.pop(next(iter(self._splits)))
                member = np.unpackbits(np.frombuffer(key[0], dtype=np.uint8), bitorder="little").astype(bool)  # [256]
                split = split_tokens(self.flat, self.starts, self.order, self._token_of(), self._valid_chars,
                                     self._char_pos, member, key[1], LOW_INSIDE_FRACTION if len(key) > 2 else None)
                if split is not None:
                    count = np.full(self._words * 32, -1, dtype=np.int16)  # [V'] characters of each inside token
                    count[split.inside] = split.inside_chars
                    count.flags.writeable = False
                    split = split._replace(inside_mask=self._pack(split.inside), char_count=count,
                                           memo={})
                self._splits[key] = split
            return self._splits[key]

    def want_split(self, bits: np.ndarray, utf8: bool) -> None:
        """Mark a class whose split was refused (too few inside tokens) but whose states cost big
        trie walks: ``loop_split`` builds it with the lower share from now on."""
        self._wanted.add((np.ascontiguousarray(bits, dtype=np.uint64).tobytes(), bool(utf8)))

    def inside_counts(self, split: LoopSplit) -> np.ndarray:
        """The distinct character counts of the inside tokens of ``split`` (sorted int64, memoised)."""
        found = split.memo.get("counts")
        if found is None:
            found = split.memo["counts"] = np.unique(split.inside_chars)
        return found

    def shorter_mask(self, split: LoopSplit, d: int) -> np.ndarray:
        """Packed mask ([ceil(V/32)] int32, read-only) of the inside tokens of ``split`` with fewer
        than ``d`` characters (memoised on the split: a chain near its bound asks for each ``d``)."""
        if d > int(split.inside_chars.max(initial=0)):
            return split.inside_mask
        found = split.memo.get(d)
        if found is None:
            found = split.memo[d] = self._pack(split.inside[split.inside_chars < d])
        return found

    def first_byte_mask(self, first: np.ndarray) -> np.ndarray:
        """Packed mask ([ceil(V/32)] int32) of the tokens whose first byte is in ``first``."""
        out = np.zeros(self._words, dtype=np.int32)
        for b in first.tolist():
            m = self._first_masks.get(b)
            if m is None:
                m = self._first_masks[b] = self._pack(np.flatnonzero(self.first_byte == b))
            out |= m
        return out

    def _pack(self, ids: np.ndarray) -> np.ndarray:
        bits = np.zeros(self._words * 32, dtype=bool)
        bits[ids] = True
        mask = np.packbits(bits, bitorder="little").view(np.int32)
        mask.flags.writeable = False
        return mask

    def _valid_chars(self) -> np.ndarray:
        if self._char_ok is None:
            self._char_ok = valid_char_bytes(self.flat, self.starts, self._token_of())
        return self._char_ok

    def _token_of(self) -> np.ndarray:
        """[len(flat)] int32 token (sorted position) of each byte, built on first use."""
        if self._byte_token is None:
            self._byte_token = token_of_byte(self.flat, self.starts)
        return self._byte_token

    def _char_pos(self, utf8: bool) -> np.ndarray:
        """[len(flat) + 1] int32 characters before each byte (``loopclass.char_positions``), built on first use."""
        found = self._char_cum.get(utf8)
        if found is None:
            found = self._char_cum[utf8] = char_positions(self.flat, utf8)
        return found

    # ------------------------------------------------------------------ the walk
    def walk(self, table_of: Callable[[], np.ndarray], ensure: Callable, loops: Callable, roots,
             start: np.ndarray | None = None) -> WalkResult:
        """Feed every token's bytes from each state of ``roots`` through a lazily expanded DFA.

        start: the trie node each root starts from (default: node 0, i.e. whole tokens); from a
            node ``n``, only the tokens under ``n`` are walked, and only their bytes below ``n``.

        table_of(): the DFA's current transition table (re-read after ``ensure``, which may grow it).
        ensure(states): expand the rows of those DFA states.
        loops(states) -> (bits [m, 4] uint64, utf8 [m] bool): per expanded state, the bytes that
            lead it to itself, and whether every non-ASCII character does too (then ``bits`` has
            all bytes >= 0x80 set).
        Only children of live nodes are visited; a node whose whole subtree returns to its state
        is resolved as one range.
        """
        roots = np.asarray(roots, dtype=np.int32)
        nodes = np.zeros(len(roots), dtype=np.int64) if start is None else np.asarray(start, dtype=np.int64)
        states = roots.copy()
        owner = np.arange(len(roots), dtype=np.int64)
        out: list[tuple[np.ndarray, ...]] = []
        while len(nodes):
            inner = np.flatnonzero(self.kid_count[nodes])  # frontier positions with children
            hi = self.sub_hi[nodes]  # leaves and resolved subtrees: whole range
            walk_on = inner
            if len(inner):
                st_in, n_in = states[inner], nodes[inner]
                table = table_of()
                if (table[st_in, 0] == UNKNOWN).any():
                    ensure(st_in)
                    table = table_of()
                bits, utf8 = loops(st_in)
                blocked = np.any(self.below[n_in] & ~bits, axis=1)
                if utf8.any():
                    blocked |= utf8 & ~self.utf8_free[n_in]
                walk_on = inner[blocked]
                hi[walk_on] = self.end_hi[nodes[walk_on]]
            lo = self.sub_lo[nodes]
            keep = np.flatnonzero(hi > lo)
            out.append((owner[keep], lo[keep], hi[keep], states[keep]))
            if not len(walk_on):
                break
            nodes, states, owner = nodes[walk_on], states[walk_on], owner[walk_on]
            if int((self.sub_hi[nodes] - self.end_hi[nodes]).sum()) <= SCALAR_TAIL:
                out.append(self._walk_tail(table_of, ensure, nodes, states, owner))
                break
            first = self.child_lo[nodes]
            count = self.kid_count[nodes]
            ends = np.cumsum(count)
            parent = np.repeat(np.arange(len(nodes)), count)
            child = np.arange(int(ends[-1]), dtype=np.int64) + np.repeat(first - (ends - count), count)
            nxt = table[states[parent], self.byte[child]]  # [m] int32 DFA state after the child's byte
            live = np.flatnonzero(nxt >= 0)
            nodes, states, owner = child[live], nxt[live], owner[parent[live]]
        if not out:
            e = np.zeros(0, np.int64)
            return WalkResult(e, e, e, np.zeros(0, np.int32))
        return WalkResult(*(np.concatenate(c) for c in zip(*out)))

    def _walk_tail(self, table_of, ensure, nodes, states, owner) -> tuple[np.ndarray, ...]:
        """Finish a small frontier token by token (long single tokens would cost one level per byte).

        Tokens are visited in byte order, so each resumes from the state after the prefix it
        shares with the previous one (``lcp``), and is skipped at once when that prefix is dead.
        Runs of bytes that loop on the current state are skipped with ``bytes.lstrip``.
        """
        res: list[tuple[int, int, int, int]] = []
        rows: dict[int, tuple[memoryview, bytes]] = {}  # state -> (transition row, its looping bytes)
        toks, lcp = self.sorted_bytes, self.lcp_list
        path = [0] * (self.max_len + 1)  # path[d]: DFA state after the first d bytes of the current token
        for node, x0, own in zip(nodes.tolist(), states.tolist(), owner.tolist()):
            depth = self._depth(node)
            path[depth], known = x0, depth  # path[depth:known + 1] is right for the current token
            for i in range(int(self.end_hi[node]), int(self.sub_hi[node])):
                tok, pos = toks[i], min(max(lcp[i], depth), known)
                x = path[pos]
                if x < 0:
                    known = pos
                    continue
                n = len(tok)
                while pos < n:
                    rl = rows.get(x)
                    if rl is None:
                        row = _row(table_of, ensure, x)
                        rl = rows[x] = (memoryview(row), bytes(np.flatnonzero(row == x).tolist()))
                    if rl[1]:
                        end = n - len(tok[pos:].lstrip(rl[1]))
                        path[pos + 1 : end + 1] = [x] * (end - pos)
                        pos = end
                        if pos == n:
                            break
                    x = rl[0][tok[pos]]
                    pos += 1
                    path[pos] = x
                    if x < 0:
                        break
                known = pos
                if x >= 0:
                    res.append((own, i, i + 1, x))
        if not res:
            e = np.zeros(0, np.int64)
            return e, e, e, np.zeros(0, np.int32)
        arr = np.asarray(res, dtype=np.int64)
        return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3].astype(np.int32)

    def _depth(self, node: int) -> int:
        return int(np.searchsorted(self.level_start, node, side="right")) - 1

    def expand_ranges(self, lo: np.ndarray, hi: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and end states of the ``order`` ranges ``lo[i]:hi[i]`` (each ending in ``state[i]``)."""
        return self.order[concat_ranges(lo, hi)], np.repeat(state, hi - lo).astype(np.int32)


def _utf8_valid_from(t: bytes) -> int:
    """Smallest k such that ``t[k:]`` is valid UTF-8 (``len(t)`` when only the empty suffix is)."""
    for k in range(len(t) + 1):
        try:
            t[k:].decode("utf-8")
            return k
        except UnicodeDecodeError:
            continue
    return len(t)


_TRIES: dict[str, TokenTrie] = {}
_TRIES_LOCK = threading.Lock()


def trie_of(vocab: Vocabulary) -> TokenTrie:
    """The trie of ``vocab``, built once per fingerprint and kept (a few MB per vocabulary)."""
    t = _TRIES.get(vocab.fingerprint)
    if t is None:
        with _TRIES_LOCK:
            t = _TRIES.get(vocab.fingerprint)
            if t is None:
                if len(_TRIES) >= 8:
                    _TRIES.pop(next(iter(_TRIES)))
                t = _TRIES[vocab.fingerprint] = TokenTrie(vocab)
                trie_jit.warm_up()  # the compiled walk's one-time cost, with the trie's
    return t
