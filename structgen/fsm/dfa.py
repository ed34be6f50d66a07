"""A byte-level DFA explored lazily from an expression (``rx.ExprPool``).

States are numbered in discovery order; state ``s`` stands for expression ``expr_of(s)``. The
transition table is a numpy array ``[capacity, 256] int32`` where a row is filled when its state
is expanded (first visit): ``DEAD`` (-1) marks a byte that leads nowhere, ``UNKNOWN`` (-2) a row
not expanded yet. Vectorised walks (``index.py``) gather from ``table`` and call ``ensure`` for
the unknown rows they hit.

The DFA is minimal up to expression equality (derivatives of hash-consed, normalised
expressions), which in practice is close to minimal; it is never materialised in full.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import CompileLimitError
from .rx import ExprPool

DEAD = -1
UNKNOWN = -2


class ByteDFA:
    """Lazily expanded DFA over bytes. Expansion is serialised by a lock; reads are lock-free."""

    def __init__(self, pool: ExprPool, root: int, *, max_states: int = 200_000):
        self.pool = pool
        self.root = root
        self.max_states = max_states
        self._lock = threading.RLock()
        self._state_of: dict[int, int] = {}
        self._expr: list[int] = []
        self._capacity = 64
        self.table = np.full((self._capacity, 256), UNKNOWN, dtype=np.int32)  # [cap, 256] int32
        self.accepting = np.zeros(self._capacity, dtype=bool)  # [cap] bool
        self.num_expanded = 0
        self.initial = self._add(root)

    # ------------------------------------------------------------------ state bookkeeping
    @property
    def num_states(self) -> int:
        return len(self._expr)

    def expr_of(self, state: int) -> int:
        return self._expr[state]

    def _add(self, expr: int) -> int:
        s = self._state_of.get(expr)
        if s is not None:
            return s
        s = len(self._expr)
        if s >= self.max_states:
            raise CompileLimitError(
                f"byte automaton grew past {self.max_states} states; simplify the constraint or raise max_states"
            )
        if s >= self._capacity:
            self._grow()
        self._expr.append(expr)
        self._state_of[expr] = s
        self.accepting[s] = self.pool.nullable(expr)
        return s

    def _grow(self) -> None:
        cap = self._capacity * 2
        table = np.full((cap, 256), UNKNOWN, dtype=np.int32)
        table[: self._capacity] = self.table
        acc = np.zeros(cap, dtype=bool)
        acc[: self._capacity] = self.accepting
        # publish the new arrays before the capacity, so readers never index past them
        self.table, self.accepting = table, acc
        self._capacity = cap

    # ------------------------------------------------------------------ expansion
    def expand(self, state: int) -> np.ndarray:
        """Fill and return the transition row of ``state`` ([256] int32, DEAD where no move)."""
        row = self.table[state]
        if row[0] != UNKNOWN:
            return row
        with self._lock:
            if self.table[state, 0] != UNKNOWN:
                return self.table[state]
            new_row = _DEAD_ROW.copy()
            pool, state_of, initial = self.pool, self._state_of, self.initial
            has_bool, nullable = pool._has_bool, pool._nullable
            for mask, target in pool.row(self._expr[state]):
                t = state_of.get(target)  # a state reached by a move was live when added
                if t is None or t == initial:  # (the initial state was added unchecked)
                    # rows leave NOTHING out: without AND/NOT, or nullable, a target is live
                    if has_bool[target] and not nullable[target] and not pool.is_live(target):
                        continue
                    t = self._add(target)
                if mask & (mask - 1):
                    new_row[_mask_to_index(mask)] = t
                else:  # a single byte
                    new_row[mask.bit_length() - 1] = t
            self.table[state] = new_row
            self.num_expanded += 1
            return self.table[state]

    def ensure(self, states) -> None:
        """Expand every state in ``states`` (an iterable or int array) that is not expanded yet."""
        table = self.table
        for s in set(np.asarray(states, dtype=np.int64).ravel().tolist()):
            if s >= 0 and table[s, 0] == UNKNOWN:
                self.expand(s)
                table = self.table

    def step(self, state: int, byte: int) -> int:
        """Next state after ``byte``, or DEAD."""
        if state < 0:
            return DEAD
        return int(self.expand(state)[byte])

    def walk(self, state: int, data: bytes) -> int:
        """State after ``data`` from ``state`` (DEAD once any byte is rejected)."""
        for b in data:
            state = self.step(state, b)
            if state < 0:
                return DEAD
        return state

    def is_accepting(self, state: int) -> bool:
        return state >= 0 and bool(self.accepting[state])

    def is_live(self, state: int) -> bool:
        return state >= 0 and self.pool.is_live(self._expr[state])

    def matches(self, data: bytes | str) -> bool:
        """Whole-string match of ``data`` (a ``str`` is UTF-8 encoded)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        return self.is_accepting(self.walk(self.initial, data))


_DEAD_ROW = np.full(256, DEAD, dtype=np.int32)  # [256] int32, copied for every new row
_MASK_INDEX_CACHE: dict[int, np.ndarray] = {}


def _mask_to_index(mask: int) -> np.ndarray:
    """Byte values whose bit is set in ``mask``, as an index array (memoised: masks repeat a lot)."""
    idx = _MASK_INDEX_CACHE.get(mask)
    if idx is None:
        bits = np.frombuffer(mask.to_bytes(32, "little"), dtype=np.uint8)
        idx = np.flatnonzero(np.unpackbits(bits, bitorder="little")).astype(np.int64)
        if len(_MASK_INDEX_CACHE) < 65536:
            _MASK_INDEX_CACHE[mask] = idx
    return idx
