"""``TokenFSM``: a byte DFA lifted to a tokenizer's vocabulary.

A token-level state *is* a byte-DFA state id. The row of a state — which tokens are allowed
and which state each leads to — is computed on first visit, then memoised: a revisited state
costs a dict lookup, and ``mask(state)`` returns the same read-only array every time. First
visits take one of two routes, with the same result:

- a state that loops on a wide byte class (a JSON string body, ``[a-z ]*``), or whose first
  character enters such a loop (a string's opening, an object key that must differ from the
  declared names), takes the class's per-vocabulary token split (``loopclass``): the tokens
  spelled with the class are allowed as a block, only the distinct tails of the others are fed
  through the DFA, and the tokens starting with a byte routed elsewhere walk the trie;
- a state whose wide class of characters counts (a string with ``maxLength``: every character
  leads to the next state of a chain, none loops) takes the same split along the chain
  (``loopclass.chain_row``);
- any other state walks the whole vocabulary trie through the DFA (``trie.TokenTrie.walk``).

EOS tokens are allowed exactly in accepting states and lead back to the same state. Ids past
the tokenizer (model padding) and special tokens are never allowed.

    fsm = compile_token_fsm(Regex(r"\\d+"), tokenizer)
    s = fsm.initial_state
    fsm.mask(s)               # [ceil(V/32)] int32, bit t & 31 of word t >> 5 set iff t allowed
    s = fsm.next_state(s, t)  # -1 when t is not allowed in s
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np

from ..errors import CompileLimitError
from . import trie_jit
from .dfa import UNKNOWN, ByteDFA
from .loopclass import LoopSplit, chain_row, loop_row, loops_on_non_ascii
from .trie import trie_of
from .vocabulary import Vocabulary, vocabulary_of

FORCED_LIMIT = 4096
_WALK_BATCH = 32
MIN_LOOP_BYTES = 16  # a state looping on fewer bytes (digits, whitespace) is walked through the trie
BIG_WALK = 4096  # a walked row this large asks for the split its counting class was refused (``_chain_plan``)
MAX_SKIP = 32  # most first bytes an entry into a loop may route elsewhere (see ``_loop_plan``)
USE_JIT = True  # walk the trie with the compiled kernel when numba is installed (``trie_jit``)


class Row:
    """One computed state: allowed token ids (sorted, EOS included when accepting), their next
    states, and the packed mask (all read-only).

    A row built from a loop-class split is kept compact: the mask, where the tokens spelled in
    the class end, and the sorted exceptions (every other allowed token with its own next
    state). Tokens spelled in the class end in one ``default`` state (the loop), or, for a
    counting chain (a string with ``maxLength``), in ``chain[char_count[t]]``: the state after
    as many characters as the token has. ``ids``/``nexts`` are then spelled out on first use;
    ``next_of`` never needs them.
    """

    __slots__ = ("mask", "_ids", "_nexts", "default", "exc_ids", "exc_nexts", "chain", "char_count", "_succ")

    def __init__(self, ids: np.ndarray | None, nexts: np.ndarray | None, mask: np.ndarray, default: int = -1,
                 exc_ids: np.ndarray | None = None, exc_nexts: np.ndarray | None = None,
                 chain: np.ndarray | None = None, char_count: np.ndarray | None = None,
                 succ: np.ndarray | None = None):
        self._ids, self._nexts, self.mask = ids, nexts, mask  # [k] int32, [k] int32, [ceil(V/32)] int32
        self.default, self.exc_ids, self.exc_nexts = default, exc_ids, exc_nexts  # compact form: [e] int32 each
        self.chain, self.char_count = chain, char_count  # compact chain form: [n] int32, [V'] int16 (shared)
        self._succ = succ  # chain form: its distinct next states, sorted

    @property
    def ids(self) -> np.ndarray:
        if self._ids is None:
            self._spell_out()
        return self._ids

    @property
    def nexts(self) -> np.ndarray:
        if self._nexts is None:
            self._spell_out()
        return self._nexts

    def _spell_out(self) -> None:
        bits = np.unpackbits(self.mask.view(np.uint8), bitorder="little")
        ids = np.flatnonzero(bits).astype(np.int32)
        if self.chain is None:
            nexts = np.full(len(ids), self.default, dtype=np.int32)
        else:  # exceptions have no character count (-1): overwritten just below
            nexts = self.chain[np.maximum(self.char_count[ids], 0)].astype(np.int32)
        nexts[np.searchsorted(ids, self.exc_ids)] = self.exc_nexts
        self._nexts = _readonly(nexts)  # (nexts first: ``ids`` set means both are)
        self._ids = _readonly(ids)

    def next_of(self, token_id: int) -> int:
        """Next state after ``token_id`` (an id within the vocabulary), -1 when not allowed."""
        if self._ids is not None:
            ids = self._ids
            i = int(ids.searchsorted(np.int32(token_id)))  # same dtype: no conversion of the whole row
            return int(self._nexts[i]) if i < len(ids) and ids[i] == token_id else -1
        if not (int(self.mask[token_id >> 5]) >> (token_id & 31)) & 1:
            return -1
        exc = self.exc_ids
        i = int(exc.searchsorted(np.int32(token_id)))
        if i < len(exc) and exc[i] == token_id:
            return int(self.exc_nexts[i])
        return self.default if self.chain is None else int(self.chain[self.char_count[token_id]])

    def successors(self) -> np.ndarray:
        """Distinct next states (sorted int32)."""
        if self._succ is not None:
            return self._succ
        if self._ids is not None:
            return np.unique(self._nexts)
        return np.unique(np.append(self.exc_nexts, np.int32(self.default)) if self.default >= 0 else self.exc_nexts)

    def __reduce__(self):
        return Row, (self._ids, self._nexts, self.mask, self.default, self.exc_ids, self.exc_nexts, self.chain,
                     self.char_count, self._succ)


class FSMTables(NamedTuple):
    """CSR export of the expanded states, for keeping on a device.

    Row ``r`` describes DFA state ``states[r]``: its allowed tokens are
    ``token_ids[indptr[r]:indptr[r+1]]`` leading to ``next_states[...]`` (DFA state ids), and
    ``bitmask[r]`` is its packed mask. ``row_of_state[s]`` is the row of state ``s`` or -1.
    """

    states: np.ndarray  # [n] int32
    indptr: np.ndarray  # [n + 1] int64
    token_ids: np.ndarray  # [nnz] int32
    next_states: np.ndarray  # [nnz] int32
    bitmask: np.ndarray  # [n, ceil(V/32)] int32
    row_of_state: np.ndarray  # [num_dfa_states] int32
    accepting: np.ndarray  # [n] bool


class TokenFSM:
    """Token-level automaton over ``vocab`` for the language of ``byte_dfa``.

    Immutable as seen from outside (rows are computed once, under a lock, and never change),
    shareable across threads and requests, and picklable.
    """

    def __init__(self, byte_dfa: ByteDFA, vocab: Vocabulary, *, max_states: int = 100_000):
        self.byte_dfa = byte_dfa
        self.vocab = vocab
        self.max_states = max_states
        self._init_runtime()
        self._rows: dict[int, Row] = {}

    def _init_runtime(self) -> None:
        self._lock = threading.RLock()
        self._trie = trie_of(self.vocab)
        self._eos = np.asarray(self.vocab.eos_token_ids, dtype=np.int32)
        self._loops = np.zeros((0, 4), dtype=np.uint64)  # [cap, 4] uint64 self-loop byte sets
        self._loops_known = np.zeros(0, dtype=bool)
        self._utf8 = np.zeros(0, dtype=bool)  # [cap] bool every non-ASCII character loops
        self._loop_bytes: dict[int, bytes] = {}  # state -> the bytes leading it to itself
        self._class_next: dict[tuple[int, bytes], int | None] = {}  # (state, class) -> uniform successor
        self._utf8_to: dict[tuple[int, int], bool] = {}  # (state, target): every non-ASCII character leads there
        self._refused: dict[int, tuple[np.ndarray, bool]] = {}  # state -> its counting class, whose split was refused

    # ------------------------------------------------------------------ public API
    @property
    def initial_state(self) -> int:
        return self.byte_dfa.initial

    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return self.vocab.eos_token_ids

    @property
    def num_states_expanded(self) -> int:
        return len(self._rows)

    def is_expanded(self, state: int) -> bool:
        """Whether the row of ``state`` is already computed (``mask``/``next_state`` cost a lookup)."""
        return state in self._rows

    def row(self, state: int) -> Row:
        """The memoised row of ``state`` (computed on first visit)."""
        r = self._rows.get(state)
        if r is None:
            r = self._compute([state])[0]
        return r

    def allowed_tokens(self, state: int) -> np.ndarray:
        """Sorted int32 ids of the tokens allowed in ``state`` (EOS only when accepting). Read-only."""
        return self.row(state).ids

    def next_state(self, state: int, token_id: int) -> int:
        """State after ``token_id`` in ``state``, or -1 when not allowed (EOS keeps the state)."""
        if state < 0:
            return -1
        r = self.row(state)
        if not 0 <= token_id < self.vocab_size:
            return -1
        return r.next_of(int(token_id))

    def mask(self, state: int) -> np.ndarray:
        """Packed allowed-token bitmask of ``state``: [ceil(V/32)] int32, bit ``t & 31`` of word ``t >> 5``."""
        return self.row(state).mask

    def is_accepting(self, state: int) -> bool:
        return self.byte_dfa.is_accepting(state)

    def matches(self, text: str | bytes) -> bool:
        """Whole-string match of the byte automaton (independent of tokenisation)."""
        return self.byte_dfa.matches(text)

    def forced_bytes(self, state: int) -> bytes:
        """The unique continuation from ``state``: follow bytes while exactly one is live and the state is not accepting."""
        dfa, out = self.byte_dfa, bytearray()
        while state >= 0 and not dfa.is_accepting(state) and len(out) < FORCED_LIMIT:
            live = np.flatnonzero(dfa.expand(state) >= 0)
            if len(live) != 1:
                break
            out.append(int(live[0]))
            state = int(dfa.table[state, live[0]])
        return bytes(out)

    def successors(self, state: int) -> np.ndarray:
        """Distinct states one token away from ``state`` (sorted int32; ``state`` itself when EOS is allowed)."""
        return self.row(state).successors()

    def prefetch(self, states) -> None:
        """Compute the rows of ``states`` now, in one walk (e.g. a state's successors, on a worker
        thread while the model runs its forward pass). Rows already known are skipped."""
        todo = [int(s) for s in states if int(s) >= 0 and int(s) not in self._rows]
        for i in range(0, len(todo), _WALK_BATCH):
            self._compute(todo[i : i + _WALK_BATCH])

    def expand_all(self) -> TokenFSM:
        """Compute every state reachable from the initial one; CompileLimitError past ``max_states``."""
        frontier, seen = [self.initial_state], {self.initial_state}
        while frontier:
            todo = [s for s in frontier if s not in self._rows]
            for i in range(0, len(todo), _WALK_BATCH):
                self._compute(todo[i : i + _WALK_BATCH])
            nxt = set()
            for s in frontier:
                nxt.update(self._rows[s].successors().tolist())
            frontier = [s for s in nxt if s not in seen]
            seen.update(frontier)
            if len(seen) > self.max_states:
                raise CompileLimitError(
                    f"token automaton has more than {self.max_states} states; use the lazy mode "
                    "(eager=False) or raise max_states"
                )
        return self

    def tables(self) -> FSMTables:
        """CSR + bitmask arrays of every state expanded so far (see ``FSMTables``)."""
        with self._lock:
            states = np.asarray(sorted(self._rows), dtype=np.int32)
            rows = [self._rows[int(s)] for s in states]
        counts = np.asarray([len(r.ids) for r in rows], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)
        words = (self.vocab_size + 31) // 32
        bitmask = np.stack([r.mask for r in rows]) if rows else np.zeros((0, words), np.int32)
        row_of = np.full(self.byte_dfa.num_states, -1, dtype=np.int32)
        row_of[states] = np.arange(len(states), dtype=np.int32)
        acc = np.asarray([self.is_accepting(int(s)) for s in states], dtype=bool)
        return FSMTables(states, indptr, cat([r.ids for r in rows], np.int32), cat([r.nexts for r in rows], np.int32),
                         bitmask, row_of, acc)

    # ------------------------------------------------------------------ computing rows
    def _compute(self, states: list[int]) -> list[Row]:
        """Rows of ``states`` (one trie walk for all of them), memoised."""
        with self._lock:
            todo = [s for s in dict.fromkeys(states) if s not in self._rows]
            if todo:
                if len(self._rows) + len(todo) > self.max_states:
                    raise CompileLimitError(f"token automaton grew past {self.max_states} states; raise max_states")
                dfa = self.byte_dfa
                dfa.ensure(todo)
                walked = []
                for s in todo:
                    plan = self._loop_plan(s)
                    if plan is None:
                        chain = self._chain_plan(s)
                        if chain is None:
                            walked.append(s)
                        else:
                            d, ids, nexts = chain_row(*chain, lambda: dfa.table, dfa.ensure, self._walk_bytes)
                            self._rows[s] = self._make_chain_row(s, chain, d, ids, nexts)
                        continue
                    split, loop, skip = plan
                    ids, nexts = loop_row(split, s, loop, lambda: dfa.table, dfa.ensure, self._walk_bytes,
                                          self._trie.first_byte, skip)  # the tokens outside the class
                    if skip is not None:
                        ids, nexts = self._with_subtrees(s, np.flatnonzero(skip), ids, nexts)
                    self._rows[s] = self._make_loop_row(s, split, loop, skip, ids, nexts)
                if walked:
                    res = self._walk(walked)
                    for k, s in enumerate(walked):
                        sel = res.root == k
                        ids, nexts = self._trie.expand_ranges(res.lo[sel], res.hi[sel], res.state[sel])
                        self._rows[s] = self._make_row(s, ids, nexts)
                        refused = self._refused.pop(s, None)
                        if refused is not None and len(ids) > BIG_WALK:  # split that class after all
                            self._trie.want_split(*refused)
            return [self._rows[s] for s in states]

    def _loop_plan(self, state: int) -> tuple[LoopSplit, int, np.ndarray | None] | None:
        """``(split, loop, skip)`` when the row of expanded ``state`` can come from a loop-class
        split (``loopclass.loop_row``): ``state`` loops on a wide class itself (``loop == state``,
        ``skip`` None), or every character of the class of its most frequent successor ``loop``
        leads it to ``loop`` (the first character of a string body), except at most ``MAX_SKIP``
        ASCII first bytes ``skip`` ([256] bool; the first bytes of the names an object key must
        differ from) whose tokens are walked through the trie. None: walk the whole trie."""
        dfa = self.byte_dfa
        row = dfa.table[state]
        nexts = row[row >= 0]
        if len(nexts) < MIN_LOOP_BYTES:  # neither a wide loop nor a wide entry into one
            return None
        bits, utf8 = self._loop_sets(np.asarray([state]))
        split = self._split_of(bits[0], bool(utf8[0]))
        if split is not None:
            return split, state, None
        loop = _wide_successor(nexts)
        if loop is None:
            return None
        dfa.expand(loop)
        lbits, lutf8 = self._loop_sets(np.asarray([loop]))
        split = self._split_of(lbits[0], bool(lutf8[0]))
        if split is None:
            return None
        member = np.unpackbits(lbits[0].view(np.uint8), bitorder="little").astype(bool)  # [256]
        if lutf8[0]:
            member[0x80:] = False  # non-ASCII: checked character by character below
        skip = member & (row != loop)  # [256] bool
        n_skip = int(skip.sum())
        if n_skip > MAX_SKIP or (lutf8[0] and not self._utf8_leads(state, loop)):
            return None
        return split, loop, (skip if n_skip else None)

    def _chain_plan(self, state: int) -> tuple[LoopSplit, np.ndarray] | None:
        """``(split, chain)`` when expanded ``state`` starts a counting chain on a wide class
        (``loopclass.chain_row``): the class is the bytes leading ``state`` to its most frequent
        successor (with every non-ASCII character, when they all go there too), and each chain
        state moves every in-class character to one next state (or to none: the chain ends).
        None when some chain state splits the class, or the class is narrow."""
        dfa = self.byte_dfa
        row = dfa.table[state]
        first = _wide_successor(row[row >= 0])
        if first is None:
            return None
        member = row == first  # [256] bool
        utf8 = not member[0x80:].any() and self._utf8_leads(state, first)
        if utf8:
            member[0x80:] = True
        bits = np.packbits(member, bitorder="little").view(np.uint64)
        split = self._split_of(bits, utf8, narrow=True)
        if split is None:
            self._refused[state] = (bits, utf8)
            return None
        key = bits.tobytes() + bytes([utf8])
        idx = np.flatnonzero(member[:0x80] if utf8 else member)  # bytes checked for one common successor
        need = int(max(split.inside_chars.max(initial=0), split.rest_chars.max(initial=0)))
        chain = np.full(need + 1, -1, dtype=np.int32)
        x = chain[0] = state
        for j in range(need):
            nxt = self._class_next.get((x, key), UNKNOWN)
            if nxt == UNKNOWN:
                move = dfa.expand(x)[idx]
                nxt = self._class_next[(x, key)] = int(move[0]) if (move == move[0]).all() else None
            if nxt is None:
                return None
            if utf8 and j < split.utf8_depth:  # deeper, no token has a non-ASCII character in the class
                if not (self._utf8_leads(x, nxt) if nxt >= 0 else (dfa.table[x, 0x80:] < 0).all()):
                    return None
            chain[j + 1] = nxt
            if nxt < 0:
                break
            if nxt == x:  # the chain ends in a loop
                chain[j + 1 :] = x
                break
            x = nxt
        return split, chain

    def _utf8_leads(self, state: int, target: int) -> bool:
        """Every non-ASCII character leads ``state`` to ``target`` (memoised)."""
        key = (state, target)
        ok = self._utf8_to.get(key)
        if ok is None:
            ok = self._utf8_to[key] = loops_on_non_ascii(self.byte_dfa, state, target)
        return ok

    def _with_subtrees(self, state: int, first: np.ndarray, ids: np.ndarray, nexts: np.ndarray):
        """``ids``/``nexts`` plus the tokens starting with a byte of ``first``, walked from ``state``."""
        trie, dfa = self._trie, self.byte_dfa
        after = dfa.table[state, first]  # [f] int32
        node = trie.root_child[first]  # [f] int64
        go = (after >= 0) & (node >= 0)
        if not go.any():
            return ids, nexts
        res = self._walk(after[go], start=node[go])
        more_ids, more_nexts = trie.expand_ranges(res.lo, res.hi, res.state)
        return np.concatenate([ids, more_ids]), np.concatenate([nexts, more_nexts])

    def _split_of(self, bits: np.ndarray, utf8: bool, narrow: bool = False) -> LoopSplit | None:
        """The vocabulary's split by a loop class, when the class is wide enough to be worth one
        (``narrow``: also one held by a minority of the tokens, split after a big walk; only a
        counting chain gains from those: a looping state's trie walk resolves such subtrees whole)."""
        if not utf8 and int(np.unpackbits(bits.view(np.uint8)).sum()) < MIN_LOOP_BYTES:
            return None
        return self._trie.loop_split(bits, utf8, narrow)

    def _walk_bytes(self, state: int, data: bytes) -> int:
        """DFA state after ``data`` from ``state`` (< 0 once dead); runs of looping bytes are skipped
        with ``bytes.lstrip``."""
        dfa, pos, n = self.byte_dfa, 0, len(data)
        while pos < n and state >= 0:
            row = dfa.expand(state)
            loop = self._loop_bytes.get(state)
            if loop is None:
                loop = self._loop_bytes[state] = bytes(np.flatnonzero(row == state).tolist())
            if loop:
                pos = n - len(data[pos:].lstrip(loop))
                if pos == n:
                    break
            state = int(row[data[pos]])
            pos += 1
        return state

    def _with_eos(self, state: int, ids: np.ndarray, nexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``ids``/``nexts`` plus the EOS tokens (staying in ``state``) when ``state`` accepts."""
        if self.byte_dfa.is_accepting(state) and len(self._eos):
            ids = np.concatenate([ids, self._eos])
            nexts = np.concatenate([nexts, np.full(len(self._eos), state, dtype=np.int32)])
        return ids, nexts

    def _make_row(self, state: int, ids: np.ndarray, nexts: np.ndarray) -> Row:
        ids, nexts = self._with_eos(state, ids, nexts)
        words = (self.vocab_size + 31) // 32
        if len(ids) > 4096:  # a dense scatter sorts a large row faster than argsort
            dense = np.full(words * 32, -1, dtype=np.int32)  # [V'] next state by token, -1 not allowed
            dense[ids] = nexts
            bits = dense >= 0
            ids = np.flatnonzero(bits).astype(np.int32)
            nexts = dense[ids]
        else:
            order = np.argsort(ids, kind="stable")
            ids, nexts = ids[order].astype(np.int32), nexts[order].astype(np.int32)
            bits = np.zeros(words * 32, dtype=bool)
            bits[ids] = True
        mask = np.packbits(bits, bitorder="little").view(np.int32)  # [words] int32
        for a in (ids, nexts, mask):
            a.flags.writeable = False
        return Row(ids, nexts, mask)

    def _make_loop_row(self, state: int, split: LoopSplit, loop: int, skip: np.ndarray | None, ids: np.ndarray,
                       nexts: np.ndarray) -> Row:
        """Compact row: the split's inside tokens (less those starting with a ``skip`` byte) end
        in ``loop``; ``ids``/``nexts`` are the other allowed tokens (EOS added when accepting)."""
        trie = self._trie
        mask = split.inside_mask.copy()  # [words] int32
        if skip is not None:
            mask &= ~trie.first_byte_mask(np.flatnonzero(skip))
        default = int(loop) if mask.any() else -1  # -1: every allowed token is an exception
        ids, nexts = self._with_eos(state, ids, nexts)
        bits = mask.view(np.uint32)
        np.bitwise_or.at(bits, ids >> 5, np.left_shift(np.uint32(1), (ids & 31).astype(np.uint32)))
        other = nexts != default  # tokens ending in the loop need no exception (a key's subtrees: most)
        ids, nexts = ids[other], nexts[other]
        ids, nexts = _sorted_by_id(ids, nexts)
        return Row(None, None, _readonly(mask), default, _readonly(ids), _readonly(nexts))

    def _make_chain_row(self, state: int, plan: tuple[LoopSplit, np.ndarray], d: int, ids: np.ndarray,
                        nexts: np.ndarray) -> Row:
        """Compact row of a counting chain (``loopclass.chain_row``): the inside tokens with fewer
        than ``d`` characters end in ``chain[count]``; ``ids``/``nexts`` are the exceptions."""
        split, chain = plan
        mask = self._trie.shorter_mask(split, d).copy()  # [words] int32
        ids, nexts = self._with_eos(state, ids, nexts)
        bits = mask.view(np.uint32)
        np.bitwise_or.at(bits, ids >> 5, np.left_shift(np.uint32(1), (ids & 31).astype(np.uint32)))
        ids, nexts = _sorted_by_id(ids, nexts)
        counts = self._trie.inside_counts(split)
        succ = np.unique(np.concatenate([chain[counts[counts < d]], nexts])).astype(np.int32)
        return Row(None, None, _readonly(mask), -1, _readonly(ids), _readonly(nexts), _readonly(chain.copy()),
                   split.char_count, _readonly(succ))

    def _loop_sets(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For expanded ``states``: [m, 4] uint64 sets of the bytes leading back to the same state,
        and [m] bool "every non-ASCII character leads back" (its bytes >= 0x80 are then set too)."""
        self._fit_loop_arrays()
        unknown = states[~self._loops_known[states]]
        if len(unknown):
            self._learn_loops(np.unique(unknown))
        return self._loops[states], self._utf8[states]

    def _fit_loop_arrays(self) -> None:
        """Grow the loop-set arrays to the transition table's capacity."""
        n = len(self.byte_dfa.table)
        if len(self._loops) < n:
            self._loops = np.concatenate([self._loops, np.zeros((n - len(self._loops), 4), np.uint64)])
            self._utf8 = np.concatenate([self._utf8, np.zeros(n - len(self._utf8), bool)])
            self._loops_known = np.concatenate([self._loops_known, np.zeros(n - len(self._loops_known), bool)])

    def _walk(self, roots, start: np.ndarray | None = None):
        """``TokenTrie.walk`` of ``roots`` (from trie nodes ``start``), compiled when numba is there."""
        dfa = self.byte_dfa
        if USE_JIT and trie_jit.AVAILABLE:
            try:
                return trie_jit.walk(self._trie, self._learn, roots, start)
            except trie_jit.JitUnavailable:
                pass
        return self._trie.walk(lambda: dfa.table, dfa.ensure, self._loop_sets, roots, start=start)

    def _learn(self, states: np.ndarray, loops: bool):
        """For the compiled walk: expand ``states`` (and learn their loop sets); the current arrays."""
        dfa = self.byte_dfa
        if len(states):
            dfa.ensure(states)
            if loops:
                self._loop_sets(np.asarray(states, dtype=np.int64))
        self._fit_loop_arrays()  # expanding and learning add states
        return dfa.table, self._loops, self._loops_known, self._utf8

    def _learn_loops(self, new: np.ndarray) -> None:
        rows = self.byte_dfa.table[new]
        assert (rows[:, 0] != UNKNOWN).all(), "loop sets need expanded rows"
        eq = rows == new[:, None]  # [u, 256] bool
        self._loops[new] = np.packbits(eq, axis=1, bitorder="little").view(np.uint64)
        for k in np.flatnonzero(eq[:, 0x20:0x7F].sum(axis=1) >= 64):  # string-like: try whole characters
            s = int(new[k])
            if not eq[k, 0x80:].any() and self._utf8_leads(s, s):
                self._utf8[s] = True
                self._loops[s, 2:] = np.uint64(0xFFFFFFFFFFFFFFFF)
        self._loops_known[new] = True

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            dfa = {k: v for k, v in self.byte_dfa.__dict__.items() if k != "_lock"}
            return {"dfa": dfa, "vocab": self.vocab, "max_states": self.max_states, "rows": dict(self._rows)}

    def __setstate__(self, st: dict[str, Any]) -> None:
        dfa = ByteDFA.__new__(ByteDFA)
        dfa.__dict__.update(st["dfa"])
        dfa._lock = threading.RLock()
        self.byte_dfa, self.vocab, self.max_states = dfa, st["vocab"], st["max_states"]
        self._init_runtime()
        self._rows = st["rows"]
        for r in self._rows.values():
            for a in (r._ids, r._nexts, r.mask, r.exc_ids, r.exc_nexts):
                if a is not None:
                    a.flags.writeable = False


def _wide_successor(nexts: np.ndarray) -> int | None:
    """The successor that at least ``MIN_LOOP_BYTES`` of a row's live bytes (``nexts``) lead to, if any."""
    if len(nexts) < MIN_LOOP_BYTES:
        return None
    targets, counts = np.unique(nexts, return_counts=True)
    return int(targets[np.argmax(counts)]) if counts.max() >= MIN_LOOP_BYTES else None


def _sorted_by_id(ids: np.ndarray, nexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ids``/``nexts`` ordered by id, as int32 (no sort when already in order: a split's tokens are)."""
    if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
        order = np.argsort(ids, kind="stable")
        ids, nexts = ids[order], nexts[order]
    return ids.astype(np.int32), nexts.astype(np.int32)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def compile_token_fsm(
    constraint: Any, tokenizer: Any, *, eager: bool = False, cache: Any = True, max_states: int = 100_000,
    max_dfa_states: int = 200_000, max_nodes: int = 2_000_000,
) -> TokenFSM:
    """Compile ``constraint`` for ``tokenizer`` (an HF tokenizer or a ``Vocabulary``) into a ``TokenFSM``.

    eager: compute every reachable state now (bounded by ``max_states``); else states are
        computed on first visit, and the initial state's row is computed here.
    cache: True for the default cache (memory + disk), False for none, or an ``FSMCache``.
    """
    from . import compile_bytes
    from .cache import resolve_cache

    vocab = vocabulary_of(tokenizer)
    store = resolve_cache(cache)
    opts = {"max_states": max_states, "max_dfa_states": max_dfa_states, "max_nodes": max_nodes}

    def build() -> TokenFSM:
        dfa = compile_bytes(constraint, max_states=max_dfa_states, max_nodes=max_nodes)
        fsm = TokenFSM(dfa, vocab, max_states=max_states)
        fsm.row(fsm.initial_state)
        return fsm

    fsm = store.get_or_build(constraint, vocab, opts, build) if store is not None else build()
    if eager:
        fsm.expand_all()
    return fsm
