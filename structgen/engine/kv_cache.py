"""``KVPool``: preallocated K/V storage for every layer, addressed by slot, and its allocator.

A *slot* holds the key and value vectors of one token in every layer. Sequences do not own
contiguous memory: a sequence's context is a list of slot ids (``ForwardBatch.kv_slots``), so
sequences that share a prefix can share the slots holding it.

Contract
--------
* Storage: ``pool.k[layer]`` and ``pool.v[layer]`` are tensors ``[num_slots + 1, num_kv_heads,
  head_dim]``. Row 0 is the *padding slot*: never handed out by ``alloc``, always finite, used
  to pad gather indices. Usable slot ids are ``1 .. num_slots``.
* Only the model runner writes storage (``ModelRunner.forward`` writes the K/V of each new token
  into its ``out_slots`` row, in every layer). The pool never writes or clears storage itself.
* Ownership: ``alloc`` hands slot ids to the caller, who owns them until it passes them back to
  ``free``. The pool never frees, evicts or reuses an allocated slot on its own — the radix
  cache and the scheduler decide when slots die.
* Not thread-safe: one thread (the scheduler's) allocates, frees and runs forwards.
"""

from __future__ import annotations

import torch

from ..errors import OutOfSlots

PAD_SLOT = 0


class KVPool:
    """K/V storage ``[num_layers] x [num_slots + 1, num_kv_heads, head_dim]`` and a slot allocator.

    ``num_slots`` is the number of allocatable slots (the padding slot 0 comes on top).
    """

    def __init__(
        self,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        num_slots: int,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ):
        if num_slots < 1:
            raise ValueError(f"num_slots must be >= 1, got {num_slots}")
        self.num_layers = num_layers
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.dtype = dtype
        self.device = torch.device(device)
        shape = (num_layers, num_slots + 1, num_kv_heads, head_dim)
        self._k = torch.zeros(shape, dtype=dtype, device=self.device)  # [L, S+1, KV, D]
        self._v = torch.zeros(shape, dtype=dtype, device=self.device)  # [L, S+1, KV, D]
        self.k = list(self._k.unbind(0))  # per layer view [S+1, KV, D]
        self.v = list(self._v.unbind(0))  # per layer view [S+1, KV, D]
        self._num_slots = num_slots
        # Free stack: _stack[:_top] are free ids; alloc pops from the top (LIFO keeps memory warm).
        self._stack = torch.arange(num_slots, 0, -1, dtype=torch.long)  # [S]
        self._top = num_slots
        self._in_use = torch.zeros(num_slots + 1, dtype=torch.bool)  # [S+1]
        self._in_use[PAD_SLOT] = True  # the padding slot is never free

    @property
    def num_slots(self) -> int:
        """Number of allocatable slots (excluding the padding slot)."""
        return self._num_slots

    @property
    def num_free(self) -> int:
        """Number of slots ``alloc`` can hand out right now."""
        return self._top

    @property
    def num_used(self) -> int:
        """Number of slots currently allocated."""
        return self._num_slots - self._top

    def nbytes(self) -> int:
        """Bytes of K/V storage held by the pool."""
        return self._k.nbytes + self._v.nbytes

    def alloc(self, n: int) -> torch.Tensor:
        """Allocate ``n`` distinct slots; returns their ids, a CPU ``LongTensor [n]``.

        Mutates only the allocator. Raises ``OutOfSlots`` (allocating nothing) when fewer than
        ``n`` slots are free. The contents of the returned slots are unspecified until written.
        """
        if n < 0:
            raise ValueError(f"cannot allocate a negative number of slots ({n})")
        if n > self._top:
            raise OutOfSlots(n, self._top)
        out = self._stack[self._top - n : self._top].clone()  # [n]
        self._top -= n
        self._in_use[out] = True
        return out

    def free(self, slots: torch.Tensor) -> None:
        """Return allocated ``slots`` (any shape, any device) to the allocator.

        Mutates only the allocator; storage is left as is. Raises ``ValueError`` (freeing
        nothing) for ids that are out of range, duplicated, or not currently allocated.
        """
        flat = torch.as_tensor(slots, dtype=torch.long).reshape(-1).cpu()  # [k]
        k = flat.numel()
        if k == 0:
            return
        if int(flat.min()) < 1 or int(flat.max()) > self._num_slots:
            raise ValueError(f"slot ids must lie in 1..{self._num_slots}")
        if not bool(self._in_use[flat].all()) or torch.unique(flat).numel() != k:
            raise ValueError("freeing slots that are not allocated (double free or duplicate ids)")
        self._in_use[flat] = False
        self._stack[self._top : self._top + k] = flat
        self._top += k

    def is_allocated(self, slots: torch.Tensor) -> torch.Tensor:
        """Bool tensor, True where the slot id is currently allocated (the padding slot counts as such)."""
        return self._in_use[torch.as_tensor(slots, dtype=torch.long).cpu()]

    def __repr__(self) -> str:
        return (
            f"KVPool(layers={self.num_layers}, kv_heads={self.num_kv_heads}, head_dim={self.head_dim}, "
            f"slots={self._num_slots}, free={self._top}, dtype={self.dtype}, device={self.device})"
        )
