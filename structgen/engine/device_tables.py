"""``DeviceTables``: the union of the ``TokenFSM`` tables in use, resident on the model's device.

Sequences constrained by different automata share one set of tensors:

* a sequence's FSM position is a global **key**: ``(fsm, dfa_state)`` pairs get keys in order of
  first sight (key 0 is the *dead* key: nothing allowed, no way out; -1 means unconstrained);
* an expanded key owns a **row**: ``bitmask[row]`` (packed int32, the ``kernels.mask`` layout) and
  the CSR ``tokens[indptr[row]:indptr[row+1]]`` (sorted token ids) with ``next_keys`` at the same
  positions (the keys of the successor states); ``row_of_key[key]`` is the row, -1 until expanded.

One decode step on the device: ``row = row_of_key[key]``, mask + sample with ``bitmask[row]``,
then ``key = next_keys[...]`` found by ``kernels.advance_states`` on the CSR. Rows are appended in
expansion order, so the CSR only ever grows at its end.

Expansion contract (correctness first): a key must be expanded before the step that starts in
it. Expanding a state assigns keys to all its successors, which become *pending*; a decoder
calls :meth:`expand_pending` after launching each step (the host expands one more level while
the GPU runs), or :meth:`expand_keys` with the keys read back from the device. Tensors keep a
fixed capacity and are reallocated (doubling) only when full; ``version`` then changes, and CUDA
graphs that captured the old tensors must be captured again.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..errors import KernelInputError

log = logging.getLogger(__name__)

DEAD_KEY = 0
DEAD_ROW = 0


class DeviceTables:
    """Bitmask rows + CSR transitions of several ``TokenFSM``s on ``device`` (see the module docstring)."""

    def __init__(
        self,
        vocab_size: int,
        device: str | torch.device,
        *,
        row_capacity: int = 256,
        nnz_capacity: int = 1 << 16,
        key_capacity: int = 1024,
    ):
        self.vocab_size = int(vocab_size)
        self.words = (self.vocab_size + 31) // 32
        self.device = torch.device(device)
        self.version = 0
        self._fsms: list = []  # fsm by index
        self._fsm_index: dict[int, int] = {}  # id(fsm) -> index
        self._keys: dict[tuple[int, int], int] = {}  # (fsm index, dfa state) -> key
        self._key_owner: list[tuple[int, int]] = [(-1, -1)]  # key -> (fsm index, dfa state); key 0 is dead
        self._expanded: set[int] = {DEAD_KEY}
        self.pending: set[int] = set()
        self.num_rows = 1  # row 0 is the dead row
        self.nnz = 0
        self._alloc(row_capacity, nnz_capacity, key_capacity)
        self.row_of_key[DEAD_KEY] = DEAD_ROW

    # ------------------------------------------------------------------ storage
    def _alloc(self, rows: int, nnz: int, keys: int) -> None:
        """(Re)allocate every tensor with the given capacities, keeping the contents."""
        dev, old = self.device, getattr(self, "bitmask", None)
        bitmask = torch.zeros((rows, self.words), dtype=torch.int32, device=dev)  # [R, W]
        indptr = torch.zeros(rows + 1, dtype=torch.int64, device=dev)  # [R + 1]
        tokens = torch.zeros(max(1, nnz), dtype=torch.int32, device=dev)  # [N]
        next_keys = torch.zeros(max(1, nnz), dtype=torch.int32, device=dev)  # [N]
        row_of_key = torch.full((keys,), -1, dtype=torch.int64, device=dev)  # [K]
        if old is not None:
            r, n, k = self.num_rows, self.nnz, len(self._key_owner)
            bitmask[:r] = self.bitmask[:r]
            indptr[: r + 1] = self.indptr[: r + 1]
            indptr[r + 1 :] = n
            tokens[:n], next_keys[:n] = self.tokens[:n], self.next_keys[:n]
            row_of_key[: min(k, self.row_of_key.shape[0])] = self.row_of_key[:k]
            self.version += 1
            log.info("device FSM tables grown to %d rows, %d transitions, %d keys", rows, nnz, keys)
        self.bitmask, self.indptr, self.tokens, self.next_keys, self.row_of_key = (
            bitmask, indptr, tokens, next_keys, row_of_key)  # fmt: skip

    def _reserve(self, rows: int, nnz: int, keys: int) -> None:
        cap_r, cap_n, cap_k = self.bitmask.shape[0], self.tokens.shape[0], self.row_of_key.shape[0]
        if rows <= cap_r and nnz <= cap_n and keys <= cap_k:
            return

        def grow(cap: int, need: int) -> int:
            while cap < need:
                cap *= 2
            return cap

        self._alloc(grow(cap_r, rows), grow(cap_n, nnz), grow(cap_k, keys))

    # ------------------------------------------------------------------ keys
    def add_fsm(self, fsm) -> int:
        """Register ``fsm`` (idempotent); returns its index. Its mask width must match ``vocab_size``."""
        idx = self._fsm_index.get(id(fsm))
        if idx is not None:
            return idx
        if (fsm.vocab_size + 31) // 32 != self.words:
            raise KernelInputError(
                f"the automaton was compiled for a vocabulary of {fsm.vocab_size} tokens but the model has "
                f"{self.vocab_size} logits; compile it with this model's tokenizer and vocab_size"
            )
        self._fsms.append(fsm)
        self._fsm_index[id(fsm)] = len(self._fsms) - 1
        return len(self._fsms) - 1

    def key_of(self, fsm, state: int) -> int:
        """The global key of ``fsm``'s DFA ``state`` (assigned now if new, then pending); -1 for state < 0 is dead."""
        if state < 0:
            return DEAD_KEY
        idx = self.add_fsm(fsm)
        return self._key(idx, int(state))

    def _key(self, idx: int, state: int) -> int:
        key = self._keys.get((idx, state))
        if key is None:
            key = len(self._key_owner)
            self._keys[(idx, state)] = key
            self._key_owner.append((idx, state))
            self.pending.add(key)
        return key

    def state_of(self, key: int) -> int:
        """The DFA state of ``key`` in its own automaton (-1 for the dead key or -1)."""
        return -1 if key <= DEAD_KEY else self._key_owner[key][1]

    def is_expanded(self, key: int) -> bool:
        """True when ``key`` has a row on the device (or is -1 / the dead key)."""
        return key < 0 or key in self._expanded

    # ------------------------------------------------------------------ expansion
    def expand_pending(self) -> int:
        """Expand every pending key (one more level of successors); returns the number of new rows."""
        return self.expand_keys(sorted(self.pending))

    def expand_closure(self, max_rows: int = 1 << 20) -> int:
        """Expand level after level until nothing is pending (every reachable state has a row).

        For automata expanded up front (``compile_token_fsm(..., eager=True)``): the decode loop
        then has no host work at all. Stops early past ``max_rows`` rows; returns the rows added.
        """
        added = 0
        while self.pending and self.num_rows < max_rows:
            added += self.expand_pending()
        return added

    def expand_keys(self, keys) -> int:
        """Expand ``keys`` that are not yet expanded (computing their rows on the host); upload them."""
        todo = sorted({int(k) for k in keys if int(k) > DEAD_KEY and int(k) not in self._expanded})
        if not todo:
            return 0
        by_fsm: dict[int, list[int]] = {}
        for k in todo:
            by_fsm.setdefault(self._key_owner[k][0], []).append(self._key_owner[k][1])
        for idx, states in by_fsm.items():
            self._fsms[idx].prefetch(states)  # one vocabulary walk for all of them
        rows = [self._row_arrays(k) for k in todo]
        self._upload(todo, rows)
        return len(todo)

    def _row_arrays(self, key: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(token ids, next keys, mask)`` of one key (assigning keys to its successors)."""
        idx, state = self._key_owner[key]
        row = self._fsms[idx].row(state)
        uniq, inverse = np.unique(row.nexts, return_inverse=True)
        keys = np.asarray([self._key(idx, int(s)) for s in uniq], dtype=np.int32)
        return np.asarray(row.ids, dtype=np.int32), keys[inverse].astype(np.int32), row.mask

    def _upload(self, keys: list[int], rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        n_new = len(rows)
        counts = np.asarray([len(r[0]) for r in rows], dtype=np.int64)
        r0, n0 = self.num_rows, self.nnz
        self._reserve(r0 + n_new, n0 + int(counts.sum()), len(self._key_owner))
        dev = self.device
        cat = lambda xs: torch.from_numpy(np.concatenate(xs)).to(dev) if xs else None
        ids, nexts = cat([r[0] for r in rows]), cat([r[1] for r in rows])
        n1 = n0 + int(counts.sum())
        if ids is not None and ids.numel():
            self.tokens[n0:n1] = ids
            self.next_keys[n0:n1] = nexts
        self.bitmask[r0 : r0 + n_new] = torch.from_numpy(np.stack([r[2] for r in rows])).to(dev)
        ends = torch.from_numpy(n0 + np.cumsum(counts)).to(dev)  # [n_new]
        self.indptr[r0 + 1 : r0 + 1 + n_new] = ends
        self.indptr[r0 + 1 + n_new :] = n1
        key_t = torch.as_tensor(keys, dtype=torch.int64, device=dev)
        self.row_of_key[key_t] = torch.arange(r0, r0 + n_new, dtype=torch.int64, device=dev)
        self.num_rows, self.nnz = r0 + n_new, n1
        self._expanded.update(keys)
        self.pending.difference_update(keys)

    def __repr__(self) -> str:
        return (f"DeviceTables(fsms={len(self._fsms)}, rows={self.num_rows}, nnz={self.nnz}, "
                f"keys={len(self._key_owner)}, pending={len(self.pending)}, device={self.device})")
