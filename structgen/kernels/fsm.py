"""Advance FSM states on the device: one binary search per sequence in its state's CSR row.

Transitions of all states are one CSR: row ``s`` is ``tokens[indptr[s]:indptr[s+1]]`` (sorted
ascending, distinct) with successors ``next_states`` at the same positions. Exact semantics::

    for b in range(B):
        s, t = states[b], sampled[b]
        row = tokens[indptr[s]:indptr[s + 1]]          # only when 0 <= s < S
        new_states[b] = next_states[indptr[s] + row.index(t)] if 0 <= s < S and t in row else -1

So an unconstrained row (state -1) stays -1, a token outside the row (or a negative token, the
sampler's "no token" result) gives -1, and -1 rows never come back to a valid state. No host
synchronisation: the search runs ``ceil(log2(nnz + 1))`` steps, a bound known from shapes alone.
"""

from __future__ import annotations

import torch

from structgen.errors import KernelInputError
from structgen.kernels import _backend as B

ADVANCE_BLOCK = 128  # sequences per Triton program


def search_steps(nnz: int) -> int:
    """Binary-search steps that suffice for any row of a CSR with ``nnz`` entries."""
    return max(1, int(nnz).bit_length())


def advance_states(
    indptr: torch.Tensor,
    tokens: torch.Tensor,
    next_states: torch.Tensor,
    states: torch.Tensor,
    sampled: torch.Tensor,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """Return ``new_states [B]`` (dtype of ``states``): the successor of each state on its sampled token.

    Args:
        indptr: ``[S + 1]`` int32/int64 row pointers. tokens: ``[nnz]`` int32/int64, sorted within
            each row. next_states: ``[nnz]`` int32/int64. states: ``[B]`` int32/int64 (-1 =
            unconstrained). sampled: ``[B]`` int32/int64 token ids.
    """
    B.check_tensor("states", states, ndim=1, dtypes=B.INT_DTYPES)
    dev = states.device
    B.check_tensor("indptr", indptr, ndim=1, dtypes=B.INT_DTYPES, device=dev)
    B.check_tensor("tokens", tokens, ndim=1, dtypes=B.INT_DTYPES, device=dev)
    B.check_tensor("next_states", next_states, ndim=1, dtypes=B.INT_DTYPES, device=dev)
    B.check_tensor("sampled", sampled, ndim=1, dtypes=B.INT_DTYPES, device=dev)
    B.check_rows("sampled", sampled, states.shape[0], "states")
    B.check_rows("next_states", next_states, tokens.shape[0], "tokens")
    if indptr.shape[0] < 1:
        raise KernelInputError("indptr must have S + 1 >= 1 entries (indptr[0] == 0)")
    if B.resolve_backend(backend, dev) == "triton":
        return advance_states_triton(indptr, tokens, next_states, states, sampled)
    return advance_states_torch(indptr, tokens, next_states, states, sampled)


def advance_states_torch(indptr, tokens, next_states, states, sampled) -> torch.Tensor:
    """Reference implementation of :func:`advance_states`: a vectorised lower-bound search."""
    n_states, nnz = indptr.shape[0] - 1, tokens.shape[0]
    valid = (states >= 0) & (states < n_states) & (sampled >= 0)  # [B] bool
    s = torch.where(valid, states, 0).long()  # [B]
    lo, hi = indptr[s].long(), indptr[s + 1].long()  # [B], [B]
    end, t = hi.clone(), sampled.long()
    for _ in range(search_steps(nnz)):
        active = lo < hi
        mid = (lo + hi) // 2
        below = tokens[mid.clamp(max=max(nnz - 1, 0))].long() < t if nnz else active
        lo = torch.where(active & below, mid + 1, lo)
        hi = torch.where(active & ~below, mid, hi)
    pos = lo.clamp(max=max(nnz - 1, 0))  # [B]
    found = valid & (lo < end) & (tokens[pos].long() == t) if nnz else torch.zeros_like(valid)
    nxt = next_states[pos].to(states.dtype) if nnz else torch.full_like(states, -1)
    return torch.where(found, nxt, torch.full_like(states, -1))  # [B]


def advance_states_triton(indptr, tokens, next_states, states, sampled) -> torch.Tensor:
    """Triton implementation of :func:`advance_states` (arguments not validated)."""
    n = states.shape[0]
    out = torch.empty_like(states)  # [B]
    if n == 0:
        return out
    if tokens.shape[0] == 0:
        return out.fill_(-1)
    k = B.kernel_module("structgen.kernels._triton_fsm")
    grid = ((n + ADVANCE_BLOCK - 1) // ADVANCE_BLOCK,)
    k.advance[grid](
        indptr, tokens, next_states, states, sampled, out, n, indptr.shape[0] - 1,
        STEPS=search_steps(tokens.shape[0]), BLOCK=ADVANCE_BLOCK,
    )
    return out
