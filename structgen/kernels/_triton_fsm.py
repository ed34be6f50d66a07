"""Triton kernel of ``fsm.py`` (imported lazily through ``_backend.kernel_module``)."""

import triton
import triton.language as tl


@triton.jit
def advance(indptr_ptr, tokens_ptr, next_ptr, states_ptr, sampled_ptr, out_ptr, n, n_states,
            STEPS: tl.constexpr, BLOCK: tl.constexpr):
    """out[b] = next_states[pos] where tokens[pos] == sampled[b] in row states[b], else -1."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # [BLOCK]
    in_batch = offs < n
    state = tl.load(states_ptr + offs, mask=in_batch, other=-1).to(tl.int64)
    tok = tl.load(sampled_ptr + offs, mask=in_batch, other=-1).to(tl.int64)
    valid = in_batch & (state >= 0) & (state < n_states) & (tok >= 0)
    lo = tl.load(indptr_ptr + state, mask=valid, other=0).to(tl.int64)
    hi = tl.load(indptr_ptr + state + 1, mask=valid, other=0).to(tl.int64)
    end = hi
    for _ in tl.static_range(STEPS):
        active = lo < hi
        mid = (lo + hi) // 2
        below = tl.load(tokens_ptr + mid, mask=active, other=0).to(tl.int64) < tok
        lo = tl.where(active & below, mid + 1, lo)
        hi = tl.where(active & (~below), mid, hi)
    hit = valid & (lo < end)
    hit = hit & (tl.load(tokens_ptr + lo, mask=hit, other=-1).to(tl.int64) == tok)
    nxt = tl.load(next_ptr + lo, mask=hit, other=-1)
    tl.store(out_ptr + offs, tl.where(hit, nxt, -1).to(out_ptr.dtype.element_ty), mask=in_batch)
