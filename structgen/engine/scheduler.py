"""``Scheduler``: continuous batching over a KV pool, with chunked prefill, prefix reuse and
preemption.

Contract
--------
* ``add(seq)`` queues a sequence (``RequestError`` when it could never fit the pool).
* ``schedule()`` -> ``list[Chunk]``: mutates. Picks this step's work: first every running
  sequence (oldest first) gets its next chunk of uncomputed tokens — one token when decoding, up
  to the remaining ``chunked_prefill_size`` budget when prefilling; then waiting sequences are
  admitted, longest cached prefix first, while the batch size, the prefill budget and the slots
  last. Slots for each chunk are allocated here (``chunk.out_slots``). When the pool runs dry,
  least-recently-used cache entries are evicted first, then the newest running sequence is
  *preempted*: its computed K/V goes to the radix cache (or back to the pool), it returns to the
  front of the queue and is later resumed by recomputing — its tokens, FSM state and generator
  are kept, so its output is unchanged.
* ``commit(chunks)`` after the forward pass: the chunk's tokens now have K/V; prompt chunks are
  inserted into the radix cache at once so that requests sharing the prefix reuse it.
* ``finish(seq)`` releases a sequence's slots (its tokens are cached when the radix cache is on).
* Not thread-safe: the engine's thread only.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import OutOfSlots, RequestError
from .radix import RadixCache, common_prefix_len
from .request import Sequence, Status

log = logging.getLogger(__name__)

# Two requests whose uncached prompts share this many tokens are not prefilled in the same
# step: the second waits one step and reuses the first one's K/V from the cache.
SHARED_PREFIX_DEFER = 32
# Admission looks at this many sequences from the head of the queue (bounds per-step work).
ADMISSION_WINDOW = 256


@dataclass
class Chunk:
    """Tokens ``seq.tokens[start:start + len(out_slots)]`` computed this step into ``out_slots``."""

    seq: Sequence
    start: int
    out_slots: torch.Tensor  # [n] long
    context: torch.Tensor | None = None  # [end] long: seq.kv_slots + out_slots, when a caller built it

    @property
    def size(self) -> int:
        return int(self.out_slots.numel())

    @property
    def end(self) -> int:
        return self.start + self.size


class Scheduler:
    """Decides, each step, which tokens of which sequences are computed (see module contract)."""

    def __init__(self, pool: Any, *, max_batch_size: int = 64, chunked_prefill_size: int = 2048,
                 radix_cache: bool = True, max_context: int | None = None):
        self.pool = pool
        self.max_batch_size = max_batch_size
        self.chunked_prefill_size = max(1, chunked_prefill_size)
        self.radix = RadixCache(pool) if radix_cache else None
        self.max_context = max_context
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.preemptions = 0

    # ---- queue ---------------------------------------------------------------------------
    def check_fits(self, prompt_len: int, max_tokens: int) -> None:
        """Raise ``RequestError`` when a request of this size could never run to completion."""
        need = prompt_len + max_tokens
        if prompt_len == 0:
            raise RequestError("the prompt is empty: pass at least one token")
        if need > self.pool.num_slots:
            raise RequestError(
                f"prompt ({prompt_len} tokens) + max_tokens ({max_tokens}) = {need} exceeds the KV cache "
                f"({self.pool.num_slots} tokens): shorten the prompt, lower max_tokens or raise kv_cache_tokens"
            )
        if self.max_context is not None and need > self.max_context:
            raise RequestError(
                f"prompt ({prompt_len} tokens) + max_tokens ({max_tokens}) = {need} exceeds the model's "
                f"context length ({self.max_context}): shorten the prompt or lower max_tokens"
            )

    def add(self, seq: Sequence) -> None:
        self.check_fits(seq.prompt_len, seq.params.max_tokens)
        seq.status = Status.WAITING
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    # ---- one step ------------------------------------------------------------------------
    def schedule(self) -> list[Chunk]:
        """This step's chunks (see module contract)."""
        chunks: list[Chunk] = []
        budget = self.chunked_prefill_size
        preempted = False
        decode_slots = self._decode_block()
        i = 0
        while i < len(self.running):
            seq = self.running[i]
            remaining = len(seq.tokens) - seq.num_computed
            n = 1 if remaining == 1 else min(remaining, budget)
            if n <= 0:
                i += 1
                continue
            slots = decode_slots.pop() if remaining == 1 and decode_slots else self._alloc(n)
            while slots is None and self.running[-1] is not seq:
                self.preempt(self.running[-1])
                preempted = True
                slots = self._alloc(n)
            if slots is None:
                self.preempt(seq)
                preempted = True
                break
            if remaining > 1:
                budget -= n
            chunks.append(Chunk(seq, seq.num_computed, slots))
            i += 1
        if decode_slots:  # sequences preempted (or a break) before taking theirs
            self.pool.free(torch.cat(decode_slots))
        if not preempted:
            chunks += self._admit(budget, chunks)
        return chunks

    def _decode_block(self) -> list[torch.Tensor]:
        """One slot per running sequence that decodes a single token, allocated in one call when
        they all fit without eviction (a stack: ``pop()`` serves them in running order); else []
        and each is allocated on its own (the path that may evict or preempt)."""
        n = sum(1 for s in self.running if len(s.tokens) - s.num_computed == 1)
        if n < 2 or n > self.pool.num_free:
            return []
        block = self.pool.alloc(n)  # [n]
        return [block[k : k + 1] for k in range(n - 1, -1, -1)]

    def _admit(self, budget: int, chunks: list[Chunk]) -> list[Chunk]:
        """Move waiting sequences to running while batch size, budget and slots allow."""
        out: list[Chunk] = []
        if not self.waiting:
            return out
        prefilling = [s for s in self.running if s.num_computed < s.prompt_len]
        reserve = sum(1 for c in chunks if c.size == 1)
        for seq in self._admission_order():
            if len(self.running) >= self.max_batch_size or budget <= 0:
                break
            if self._defer(seq, prefilling):
                continue
            chunk = self._start(seq, budget, reserve)
            if chunk is None:
                break
            self.waiting.remove(seq)
            seq.status = Status.RUNNING
            self.running.append(seq)
            prefilling.append(seq)
            budget -= chunk.size
            out.append(chunk)
        return out

    def _admission_order(self) -> list[Sequence]:
        """The first ``ADMISSION_WINDOW`` waiting sequences, longest cached prefix first (queue order among equals)."""
        head = list(itertools.islice(self.waiting, ADMISSION_WINDOW))
        if self.radix is None:
            return head
        scored = [(-self.radix.match_prefix(self._match_key(s)).length, k, s) for k, s in enumerate(head)]
        scored.sort(key=lambda t: (t[0], t[1]))
        return [s for _, _, s in scored]

    def _defer(self, seq: Sequence, prefilling: list[Sequence]) -> bool:
        """True when ``seq`` shares a long uncached prefix with a sequence being prefilled."""
        if self.radix is None:
            return False
        cached = self.radix.match_prefix(self._match_key(seq)).length
        for other in prefilling:
            shared = common_prefix_len(seq.tokens, other.tokens)
            if shared - cached >= SHARED_PREFIX_DEFER:
                return True
        return False

    @staticmethod
    def _match_key(seq: Sequence) -> list[int]:
        """Tokens that may come from the cache: all but the last (whose logits are needed)."""
        limit = len(seq.tokens) - 1
        if seq.score_from is not None:
            limit = min(limit, seq.score_from - 1)
        return seq.tokens[: max(limit, 0)]

    def _start(self, seq: Sequence, budget: int, reserve: int) -> Chunk | None:
        """Attach the cached prefix and allocate the first chunk; None (nothing held) on failure."""
        first_time = seq.kv_slots is None and seq.num_output == 0 and seq.cached_tokens == 0
        if self.radix is not None:
            match = self.radix.match_prefix(self._match_key(seq))
            self.radix.lock(match.node)
            seq.prefix_node, seq.prefix_len, seq.kv_slots = match.node, match.length, match.slots
        else:
            seq.prefix_node, seq.prefix_len, seq.kv_slots = None, 0, torch.empty(0, dtype=torch.long)
        seq.num_computed = seq.prefix_len
        n = min(len(seq.tokens) - seq.num_computed, budget)
        slots = self._alloc(n) if self._available() - n >= reserve else None
        if slots is None:
            self._release(seq, cache=False)
            return None
        if first_time:
            seq.cached_tokens = seq.prefix_len
        return Chunk(seq, seq.num_computed, slots)

    # ---- after the forward -----------------------------------------------------------------
    def commit(self, chunks: list[Chunk]) -> None:
        """Record that each chunk's tokens now have K/V in its ``out_slots``."""
        for c in chunks:
            seq = c.seq
            seq.kv_slots = c.context if c.context is not None else torch.cat([seq.kv_slots, c.out_slots])  # [end]
            seq.num_computed = c.end
            if self.radix is not None and c.start < seq.prompt_len and c.size > 1:
                self._cache_prefix(seq)

    def rollback(self, chunks: list[Chunk]) -> None:
        """Free the slots of chunks whose forward pass failed (their tokens stay uncomputed)."""
        for c in chunks:
            self.pool.free(c.out_slots)

    def truncate(self, seq: Sequence, keep: int) -> None:
        """Forget K/V past the first ``keep`` tokens (they will be recomputed); frees private slots."""
        if seq.kv_slots is None or keep >= seq.num_computed:
            return
        if keep < seq.prefix_len:
            raise ValueError("cannot truncate into the cached prefix")
        self.pool.free(seq.kv_slots[keep:])
        seq.kv_slots = seq.kv_slots[:keep]
        seq.num_computed = keep

    def finish(self, seq: Sequence) -> None:
        """Release a finished (or aborted) sequence; its computed tokens are cached."""
        if seq in self.running:
            self.running.remove(seq)
            self._release(seq, cache=True)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        seq.status = Status.FINISHED

    def preempt(self, seq: Sequence) -> None:
        """Stop ``seq`` and requeue it at the front; it resumes by recomputing its K/V."""
        self.running.remove(seq)
        self._release(seq, cache=True)
        seq.status = Status.WAITING
        self.waiting.appendleft(seq)
        self.preemptions += 1
        log.debug("preempted sequence %d (%d tokens)", seq.seq_id, len(seq.tokens))

    # ---- slots -------------------------------------------------------------------------------
    def _available(self) -> int:
        return self.pool.num_free + (self.radix.evictable_size if self.radix is not None else 0)

    def _alloc(self, n: int) -> torch.Tensor | None:
        """``n`` slots, evicting cached prefixes if needed; None when even that is not enough."""
        if n > self.pool.num_free and self.radix is not None:
            self.radix.evict(n - self.pool.num_free)
        try:
            return self.pool.alloc(n)
        except OutOfSlots:
            return None

    def _cache_prefix(self, seq: Sequence) -> None:
        """Insert the computed tokens into the radix cache and hold them through a lock."""
        tokens = seq.tokens[: seq.num_computed]
        already = self.radix.insert(tokens, seq.kv_slots)
        if already > seq.prefix_len:
            self.pool.free(seq.kv_slots[seq.prefix_len : already])
        match = self.radix.match_prefix(tokens)
        self.radix.lock(match.node)
        if seq.prefix_node is not None:
            self.radix.unlock(seq.prefix_node)
        seq.prefix_node, seq.prefix_len, seq.kv_slots = match.node, match.length, match.slots

    def _release(self, seq: Sequence, *, cache: bool) -> None:
        """Give up every slot of ``seq``: cache its computed tokens or free them; unlock its prefix."""
        slots = seq.kv_slots
        if slots is not None and slots.numel():
            if self.radix is not None and cache:
                already = self.radix.insert(seq.tokens[: seq.num_computed], slots)
                if already > seq.prefix_len:
                    self.pool.free(slots[seq.prefix_len : already])
            elif slots.numel() > seq.prefix_len:
                self.pool.free(slots[seq.prefix_len :])
        if seq.prefix_node is not None:
            self.radix.unlock(seq.prefix_node)
        seq.prefix_node, seq.prefix_len, seq.kv_slots, seq.num_computed = None, 0, None, 0
