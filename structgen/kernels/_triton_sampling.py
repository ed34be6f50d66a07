"""Triton kernel of ``sampling.py`` (imported lazily through ``_backend.kernel_module``)."""

import triton
import triton.language as tl


@triton.jit
def philox4x32(c0, c1, c2, c3, k0, k1, ROUNDS: tl.constexpr):
    """Philox4x32 on uint32 tensors; the same rounds as ``sampling.philox4x32``."""
    a = tl.full((1,), 0xD2511F53, tl.uint32)
    b = tl.full((1,), 0xCD9E8D57, tl.uint32)
    key_a = tl.full((1,), 0x9E3779B9, tl.uint32)
    key_b = tl.full((1,), 0xBB67AE85, tl.uint32)
    for _ in tl.static_range(ROUNDS):
        _c0, _c2 = c0, c2
        c0 = tl.umulhi(b, _c2) ^ c1 ^ k0
        c2 = tl.umulhi(a, _c0) ^ c3 ^ k1
        c1 = b * _c2
        c3 = a * _c0
        k0 = k0 + key_a
        k1 = k1 + key_b
    return c0, c1, c2, c3


@triton.jit
def gumbel(col0, k0, k1, c1, c2, ROUNDS: tl.constexpr, BLOCK: tl.constexpr):
    """Gumbel noise [BLOCK] fp32 for columns col0 + [0, BLOCK) (col0 a multiple of 4)."""
    quad = (col0 // 4 + tl.arange(0, BLOCK // 4)).to(tl.uint32)  # [BLOCK/4]
    zero = tl.zeros((BLOCK // 4,), tl.uint32)
    r0, r1, r2, r3 = philox4x32(quad, zero + c1, zero + c2, zero, k0, k1, ROUNDS)
    r = tl.reshape(tl.join(tl.join(r0, r2), tl.join(r1, r3)), (BLOCK,))  # [BLOCK] uint32, word v % 4
    u = ((r >> 9).to(tl.float32) + 0.5) * 1.1920928955078125e-07  # 2**-23
    return -tl.log(-tl.log(u))


@triton.jit
def masked_sample_split(logits_ptr, table_ptr, states_ptr, inv_temp_ptr, seeds_ptr, offsets_ptr, best_ptr, col_ptr,
                        n_cols, n_words, n_states, logits_stride, table_stride, chunk,
                        ROUNDS: tl.constexpr, BLOCK: tl.constexpr):
    """Program (row, split): best score and its first column over columns [split * chunk, +chunk)."""
    row = tl.program_id(0).to(tl.int64)
    split = tl.program_id(1)
    state = tl.load(states_ptr + row).to(tl.int64)
    in_table = (state >= 0) & (state < n_states)
    table_row = table_ptr + tl.where(in_table, state, 0) * table_stride
    inv_t = tl.load(inv_temp_ptr + row)
    seed = tl.load(seeds_ptr + row)
    offset = tl.load(offsets_ptr + row)
    k0 = (seed & 0xFFFFFFFF).to(tl.uint32)
    k1 = ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32)
    c1 = (offset & 0xFFFFFFFF).to(tl.uint32)
    c2 = ((offset >> 32) & 0xFFFFFFFF).to(tl.uint32)
    best = tl.full((BLOCK,), float("-inf"), tl.float32)
    best_col = tl.zeros((BLOCK,), tl.int32)
    lo = split * chunk
    hi = tl.minimum(lo + chunk, n_cols)
    for col0 in range(lo, hi, BLOCK):
        cols = col0 + tl.arange(0, BLOCK)  # [BLOCK]
        x = tl.load(logits_ptr + row * logits_stride + cols, mask=cols < hi, other=float("-inf"))
        x = x.to(tl.float32)
        word_offs = col0 // 32 + tl.arange(0, BLOCK // 32)
        words = tl.load(table_row + word_offs, mask=(word_offs < n_words) & in_table, other=0)
        bits = (words[:, None] >> tl.arange(0, 32)[None, :]) & 1  # [BLOCK/32, 32]
        allowed = tl.reshape(bits != 0, (BLOCK,)) | (state < 0)
        x = tl.where(allowed, x, float("-inf"))
        if inv_t > 0:
            x = x * inv_t + gumbel(col0, k0, k1, c1, c2, ROUNDS, BLOCK)
        better = x > best
        best = tl.where(better, x, best)
        best_col = tl.where(better, cols, best_col)
    top = tl.max(best, axis=0)
    first = tl.min(tl.where(best == top, best_col, 2147483647), axis=0)
    n_splits = tl.num_programs(1)
    tl.store(best_ptr + row * n_splits + split, top)
    tl.store(col_ptr + row * n_splits + split, first)


@triton.jit
def masked_sample_reduce(best_ptr, col_ptr, out_ptr, SPLITS: tl.constexpr, BLOCK_S: tl.constexpr):
    """Program (row): the first column of the best split score, -1 when every score is -inf."""
    row = tl.program_id(0).to(tl.int64)
    s = tl.arange(0, BLOCK_S)
    best = tl.load(best_ptr + row * SPLITS + s, mask=s < SPLITS, other=float("-inf"))
    cols = tl.load(col_ptr + row * SPLITS + s, mask=s < SPLITS, other=2147483647)
    top = tl.max(best, axis=0)
    first = tl.min(tl.where(best == top, cols, 2147483647), axis=0)
    tl.store(out_ptr + row, tl.where(top == float("-inf"), -1, first).to(tl.int64))
