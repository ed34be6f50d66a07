"""The trie walk of ``trie.TokenTrie.walk``, compiled with numba when it is installed.

Same inputs and result as the array version (``walk(trie, learn, roots, start)`` returns a
``WalkResult`` with the same ranges, in another order), but one trie level costs a loop over
its live nodes instead of a dozen array operations, which is what a first visit of a narrow
state (a literal key, a number, a whitespace run) mostly paid for.

The walk goes level by level. Before a level is walked, the DFA states of its inner nodes
must have their loop sets known; the unknown ones are handed to ``learn(states)`` (Python: it
expands their rows and learns their loop sets, which may grow the transition table) in one call
per level, through numba's object mode, and the walk continues with the arrays it returns.

``AVAILABLE`` is False without numba, or with ``STRUCTGEN_JIT=0`` in the environment; callers
then use the array version. The first call of a process compiles the kernel (about a second)
unless numba's on-disk cache already holds it; ``warm_up()`` does that ahead of time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import numpy as np

try:  # numba is optional: without it the array version of the walk runs
    if os.environ.get("STRUCTGEN_JIT", "1") == "0":
        raise ImportError("disabled by STRUCTGEN_JIT=0")
    from numba import njit, objmode
    from numba.core.errors import NumbaError

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised where numba is missing
    AVAILABLE = False

    class NumbaError(Exception):
        pass

UNKNOWN = -2
log = logging.getLogger(__name__)


class JitUnavailable(RuntimeError):
    """The kernel could not be compiled here; the array walk takes over for the process."""


def _disable(err: Exception) -> None:
    global AVAILABLE
    AVAILABLE = False
    log.warning("compiled trie walk unavailable (%s: %s); using the array walk", type(err).__name__, err)
_LOCAL = threading.local()  # the ``learn`` callback of the walk running on this thread


def _learn_from_kernel(states: np.ndarray, phase: int):
    table, loops, known, utf8 = _LOCAL.learn(states, phase == 1)
    return table, loops, known, utf8


if AVAILABLE:

    @njit(cache=True)
    def _learn_row(table, loops, known, utf8, s):  # pragma: no cover - compiled
        """Record the loop set of expanded state ``s`` from its row; False (nothing recorded)
        when it loops on 64+ printable ASCII bytes and no other: a string body, whose
        non-ASCII characters must be checked whole (``TokenFSM._learn_loops``)."""
        bits = np.zeros(4, np.uint64)
        printable = 0
        high = False
        for b in range(256):
            if table[s, b] == s:
                bits[b >> 6] |= np.uint64(1) << np.uint64(b & 63)
                if 0x20 <= b < 0x7F:
                    printable += 1
                elif b >= 0x80:
                    high = True
        if printable >= 64 and not high:
            return False
        for w in range(4):
            loops[s, w] = bits[w]
        utf8[s] = False
        known[s] = True
        return True

    @njit(cache=True)
    def _kernel(table, loops, known, utf8, kid_count, child_lo, sub_lo, sub_hi, end_hi, below, utf8_free, byte,
                owner, node, state):  # pragma: no cover - compiled; its semantics are tested against the array walk
        cap = max(256, 4 * len(owner))
        o_own = np.empty(cap, np.int64)
        o_lo = np.empty(cap, np.int64)
        o_hi = np.empty(cap, np.int64)
        o_st = np.empty(cap, np.int32)
        k = 0
        cur_o, cur_n, cur_s = owner.copy(), node.copy(), state.copy()
        while len(cur_o):
            # the states at inner nodes need expanded rows and loop sets: rows are expanded by
            # Python in one call per level; loop sets are read off the rows here, except for
            # string-like loops, whose non-ASCII characters Python checks (a second call)
            for phase in range(2):
                todo = np.empty(len(cur_o), np.int32)
                m = 0
                for i in range(len(cur_o)):
                    s = cur_s[i]
                    if kid_count[cur_n[i]] == 0 or (s < len(known) and known[s]):
                        continue
                    if phase == 0:
                        if table[s, 0] == UNKNOWN:
                            todo[m] = s
                            m += 1
                    elif not _learn_row(table, loops, known, utf8, s):
                        todo[m] = s
                        m += 1
                if m:
                    ask = todo[:m].copy()
                    with objmode(table="int32[:, ::1]", loops="uint64[:, ::1]", known="bool_[::1]",
                                 utf8="bool_[::1]"):
                        table, loops, known, utf8 = _learn_from_kernel(ask, phase)
            count = 0  # children alive on the next level, at most
            for i in range(len(cur_o)):
                n = cur_n[i]
                if kid_count[n] > 0:
                    count += kid_count[n]
            nxt_o = np.empty(count, np.int64)
            nxt_n = np.empty(count, np.int64)
            nxt_s = np.empty(count, np.int32)
            c = 0
            for i in range(len(cur_o)):
                n, s, own = cur_n[i], cur_s[i], cur_o[i]
                hi = sub_hi[n]
                walk_on = False
                if kid_count[n] > 0:
                    blocked = False
                    for w in range(4):
                        if below[n, w] & ~loops[s, w]:
                            blocked = True
                    if not blocked and utf8[s] and not utf8_free[n]:
                        blocked = True
                    if blocked:
                        walk_on = True
                        hi = end_hi[n]
                lo = sub_lo[n]
                if hi > lo:
                    if k == len(o_own):
                        o_own = np.concatenate((o_own, np.empty(k, np.int64)))
                        o_lo = np.concatenate((o_lo, np.empty(k, np.int64)))
                        o_hi = np.concatenate((o_hi, np.empty(k, np.int64)))
                        o_st = np.concatenate((o_st, np.empty(k, np.int32)))
                    o_own[k], o_lo[k], o_hi[k], o_st[k] = own, lo, hi, s
                    k += 1
                if walk_on:
                    row = table[s]
                    for ch in range(child_lo[n], child_lo[n] + kid_count[n]):
                        t = row[byte[ch]]
                        if t >= 0:
                            nxt_o[c], nxt_n[c], nxt_s[c] = own, ch, t
                            c += 1
            cur_o, cur_n, cur_s = nxt_o[:c], nxt_n[:c], nxt_s[:c]
        return o_own[:k], o_lo[:k], o_hi[:k], o_st[:k]


def walk(trie, learn: Callable, roots, start: np.ndarray | None = None):
    """``trie.walk`` through the compiled kernel. ``learn(states, loops)`` expands those DFA
    states (and with ``loops`` True learns their loop sets, as ``TokenFSM._loop_sets`` does) and
    returns ``(table, loops, known, utf8)``: the transition table ([cap, 256] int32), the loop
    sets ([>= cap, 4] uint64, bit b of word b >> 6), which states have them ([>= cap] bool) and
    the "every non-ASCII character loops" flags ([>= cap] bool). The arrays may be replaced by
    larger ones when the table grows; the kernel writes loop sets into them. Called with no
    states first, to read the current arrays."""
    from .trie import WalkResult

    roots = np.asarray(roots, dtype=np.int32)
    nodes = np.zeros(len(roots), dtype=np.int64) if start is None else np.asarray(start, dtype=np.int64)
    table, loops, known, utf8 = learn(np.zeros(0, np.int32), False)
    prev = getattr(_LOCAL, "learn", None)
    _LOCAL.learn = learn
    try:
        own, lo, hi, st = _kernel(table, loops, known, utf8, trie.kid_count, trie.child_lo, trie.sub_lo, trie.sub_hi,
                                  trie.end_hi, trie.below, trie.utf8_free, trie.byte,
                                  np.arange(len(roots), dtype=np.int64), nodes, roots)
    except NumbaError as e:  # compiling failed: not the walk's fault, nor the caller's
        _disable(e)
        raise JitUnavailable(str(e)) from e
    finally:
        _LOCAL.learn = prev
    return WalkResult(own, lo, hi, st)


if AVAILABLE:

    @njit(cache=True)
    def _suffix_walk(table, grid, length, su, x, col):  # pragma: no cover - compiled; tested against numpy
        """Feed walk ``i`` the bytes ``grid[su[i], col[i]:]`` (up to its suffix's length) from
        state ``x[i]`` while rows are known; stops at a dead state (-1) or before a state whose row
        is unknown. Updates ``x`` and ``col`` in place; returns how many walks wait on a row."""
        width = grid.shape[1]
        waiting = 0
        for i in range(len(su)):
            s, j = x[i], col[i]
            n = min(length[su[i]], width)
            while j < n and s >= 0:
                if table[s, 0] == UNKNOWN:
                    waiting += 1
                    break
                s = table[s, grid[su[i], j]]
                j += 1
            x[i], col[i] = s, j
        return waiting


def suffix_walk(table_of, ensure, grid: np.ndarray, length: np.ndarray, su: np.ndarray,
                start: np.ndarray) -> np.ndarray:
    """[w] int32 states after feeding each suffix's grid bytes (``grid[su[i], :length]``, at most
    the grid's width) from ``start[i]`` (< 0 once dead); rows met unknown are expanded with
    ``ensure`` between passes."""
    x = np.array(start, dtype=np.int32)
    col = np.zeros(len(x), dtype=np.int64)
    su = np.asarray(su, dtype=np.int64)
    ends = np.minimum(length[su], grid.shape[1])  # [w] bytes each walk feeds
    try:
        while _suffix_walk(table_of(), grid, length, su, x, col):
            ensure(np.unique(x[(x >= 0) & (col < ends)]))  # the walks waiting on a row (not the finished ones)
    except NumbaError as e:
        _disable(e)
        raise JitUnavailable(str(e)) from e
    return x


def warm_up() -> bool:
    """Compile (or load from numba's cache) the kernel now; False when unavailable."""
    if not AVAILABLE:
        return False
    z64, zi = np.zeros(1, np.int64), np.zeros(0, np.int64)
    try:
        _suffix_walk(np.zeros((1, 256), np.int32), np.zeros((0, 1), np.uint8), zi, zi, np.zeros(0, np.int32), zi)
        _kernel(np.zeros((1, 256), np.int32), np.zeros((1, 4), np.uint64), np.ones(1, bool), np.zeros(1, bool),
                z64, z64, z64, z64, z64, np.zeros((1, 4), np.uint64), np.zeros(1, bool), np.zeros(1, np.uint8),
                zi, zi, np.zeros(0, np.int32))
    except NumbaError as e:
        _disable(e)
        return False
    return True
