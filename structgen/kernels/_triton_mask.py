"""Triton kernels of ``mask.py`` (imported lazily through ``_backend.kernel_module``)."""

import triton
import triton.language as tl


@triton.jit
def store_disallowed(row_ptr, words, n_cols, col0, keep, BLOCK: tl.constexpr):
    """Set -inf at columns col0 + [0, BLOCK) whose bit in ``words`` [BLOCK // 32] is clear.

    Reads and rewrites the whole block (dense vector accesses beat per-element masked stores);
    rows with ``keep`` false are neither read nor written.
    """
    bits = (words[:, None] >> tl.arange(0, 32)[None, :]) & 1  # [BLOCK/32, 32] int32
    disallowed = tl.reshape(bits == 0, (BLOCK,))  # [BLOCK] bool
    cols = col0 + tl.arange(0, BLOCK)
    live = (cols < n_cols) & keep
    x = tl.load(row_ptr + cols, mask=live)
    neg_inf = tl.full((BLOCK,), float("-inf"), tl.float32).to(x.dtype)
    tl.store(row_ptr + cols, tl.where(disallowed, neg_inf, x), mask=live)


@triton.jit
def bitmask(logits_ptr, bitmask_ptr, indices_ptr, n_cols, n_words, logits_stride, bitmask_stride,
            HAS_INDICES: tl.constexpr, BLOCK: tl.constexpr):
    pid_r = tl.program_id(0).to(tl.int64)
    pid_c = tl.program_id(1)
    if HAS_INDICES:
        row = tl.load(indices_ptr + pid_r).to(tl.int64)
    else:
        row = pid_r
    word_offs = pid_c * (BLOCK // 32) + tl.arange(0, BLOCK // 32)
    words = tl.load(bitmask_ptr + pid_r * bitmask_stride + word_offs, mask=word_offs < n_words, other=0)
    store_disallowed(logits_ptr + row * logits_stride, words, n_cols, pid_c * BLOCK, True, BLOCK)


@triton.jit
def by_state(logits_ptr, table_ptr, states_ptr, n_cols, n_words, n_states, logits_stride, table_stride,
             BLOCK: tl.constexpr):
    pid_r = tl.program_id(0).to(tl.int64)
    pid_c = tl.program_id(1)
    state = tl.load(states_ptr + pid_r).to(tl.int64)
    in_table = (state >= 0) & (state < n_states)
    word_offs = pid_c * (BLOCK // 32) + tl.arange(0, BLOCK // 32)
    src = table_ptr + tl.where(in_table, state, 0) * table_stride + word_offs
    words = tl.load(src, mask=(word_offs < n_words) & in_table, other=0)
    store_disallowed(logits_ptr + pid_r * logits_stride, words, n_cols, pid_c * BLOCK, state >= 0, BLOCK)
