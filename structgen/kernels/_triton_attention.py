"""Triton kernels of ``attention.py`` (imported lazily through ``_backend.kernel_module``).

Online softmax over K/V rows gathered from the pool through slot indices. ``m`` is the running
row maximum, ``l`` the running sum of ``exp(s - m)``; fully masked rows keep ``l == 0`` and
produce zeros. fp32 inputs use IEEE dots (no TF32), 16-bit inputs accumulate in fp32.
"""

import triton
import triton.language as tl


@triton.jit
def online_softmax_step(q, k_ptrs, v_ptrs, valid, kv_mask, m, l, acc, sm_scale,
                        PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """Fold one [BLOCK_N] tile of keys/values into (m, l, acc); ``valid`` is [rows, BLOCK_N].

    ``UPCAST`` computes the dots in fp32 (the interpreter mis-handles 16-bit dots).
    """
    k = tl.load(k_ptrs, mask=kv_mask, other=0.0)  # [BLOCK_N, BLOCK_D]
    if UPCAST:
        q = q.to(tl.float32)
        k = k.to(tl.float32)
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * sm_scale  # [rows, BLOCK_N] fp32
    s = tl.where(valid, s, float("-inf"))
    m_new = tl.maximum(m, tl.max(s, axis=1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp(m - m_safe)
    p = tl.exp(s - m_safe[:, None])
    v = tl.load(v_ptrs, mask=kv_mask, other=0.0)  # [BLOCK_N, BLOCK_D]
    if UPCAST:
        v = v.to(tl.float32)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    return m_new, l * alpha + tl.sum(p, axis=1), acc


@triton.jit
def decode_split(q_ptr, k_ptr, v_ptr, kv_indptr_ptr, kv_indices_ptr, mid_o_ptr, mid_lse_ptr, out_ptr, count_ptr,
                 sm_scale, window, stride_qb, stride_qh, stride_kn, stride_kh, stride_vn, stride_vh,
                 stride_ob, stride_oh,
                 new_k_ptr, new_v_ptr, cos_ptr, sin_ptr, pos_ptr, slot_ptr,
                 stride_nkb, stride_nkh, stride_nvb, stride_nvh, stride_cos, stride_sin,
                 GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, NUM_SPLITS: tl.constexpr, MODE: tl.constexpr,
                 ROPE: tl.constexpr,
                 BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr,
                 MERGE_G: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """Program (b, kv head, split): attention of the GROUP query heads over one KV chunk.

    The query sits at position length - 1 and sees positions [max(0, length - window), length).
    ``ROPE``: ``q`` is not yet rotated and the new token's K/V are not yet in the pool: rotate the
    query rows by the table rows of ``pos[b]`` (rounded to q's dtype), and the split holding
    position length - 1 writes the rotated ``new_k[b]`` and ``new_v[b]`` of its KV head into the
    pool at ``slot[b]`` (the context's last slot) before reading its chunk.
    ``MODE`` 0: store the partial result and its log-sum-exp in ``mid_o``/``mid_lse`` (merged by
    ``decode_reduce``). 1 (``NUM_SPLITS == 1``): store the final result in ``out``. 2: store the
    partial, then take a ticket from ``count_ptr[b, kv head]``; the split arriving last merges the
    group's partials into ``out`` (``MERGE_G`` heads per load) and resets the counter to 0 for the
    next launch.
    """
    b = tl.program_id(0).to(tl.int64)
    kvh = tl.program_id(1).to(tl.int64)
    split = tl.program_id(2)
    start = tl.load(kv_indptr_ptr + b).to(tl.int64)
    length = (tl.load(kv_indptr_ptr + b + 1) - start).to(tl.int32)
    first = tl.maximum(length - window, 0)
    chunk = tl.cdiv(tl.cdiv(length - first, NUM_SPLITS), BLOCK_N) * BLOCK_N
    lo = first + split * chunk
    hi = tl.minimum(lo + chunk, length)
    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, BLOCK_D)
    heads = kvh * GROUP + g  # [BLOCK_G]
    q_mask = (g < GROUP)[:, None] & (d < HEAD_DIM)[None, :]
    q_rows = q_ptr + b * stride_qb + heads[:, None] * stride_qh
    if ROPE:
        pos = tl.load(pos_ptr + b).to(tl.int64)
        cos = tl.load(cos_ptr + pos * stride_cos + d, mask=d < HEAD_DIM, other=0.0).to(tl.float32)  # [BLOCK_D]
        sin = tl.load(sin_ptr + pos * stride_sin + d, mask=d < HEAD_DIM, other=0.0).to(tl.float32)
        q = rotate_rows(q_rows, q_mask, cos, sin, HEAD_DIM, BLOCK_D).to(q_ptr.dtype.element_ty)
        if (lo <= length - 1) & (length - 1 < hi):  # this split reads the new token: store it first
            slot = tl.load(slot_ptr + b).to(tl.int64)
            one = tl.arange(0, 1)[:, None]  # [1, 1]: the new token's row of this KV head
            kv_row = (one < 1) & (d < HEAD_DIM)[None, :]  # [1, BLOCK_D]
            k_new = rotate_rows(new_k_ptr + b * stride_nkb + kvh * stride_nkh + one, kv_row, cos, sin, HEAD_DIM,
                                BLOCK_D)  # [1, BLOCK_D] fp32
            tl.store(k_ptr + slot * stride_kn + kvh * stride_kh + d[None, :], k_new.to(k_ptr.dtype.element_ty),
                     mask=kv_row)
            v_new = tl.load(new_v_ptr + b * stride_nvb + kvh * stride_nvh + d[None, :], mask=kv_row, other=0.0)
            tl.store(v_ptr + slot * stride_vn + kvh * stride_vh + d[None, :], v_new.to(v_ptr.dtype.element_ty),
                     mask=kv_row)
            tl.debug_barrier()  # the stores are visible to this program's loads below
    else:
        q = tl.load(q_rows + d[None, :], mask=q_mask, other=0.0)
    m = tl.full((BLOCK_G,), float("-inf"), tl.float32)
    l = tl.zeros((BLOCK_G,), tl.float32)
    acc = tl.zeros((BLOCK_G, BLOCK_D), tl.float32)
    for n0 in range(lo, hi, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        n_mask = n < hi
        slots = tl.load(kv_indices_ptr + start + n, mask=n_mask, other=0).to(tl.int64)
        kv_mask = n_mask[:, None] & (d < HEAD_DIM)[None, :]
        k_ptrs = k_ptr + slots[:, None] * stride_kn + kvh * stride_kh + d[None, :]
        v_ptrs = v_ptr + slots[:, None] * stride_vn + kvh * stride_vh + d[None, :]
        m, l, acc = online_softmax_step(q, k_ptrs, v_ptrs, n_mask[None, :], kv_mask, m, l, acc, sm_scale,
                                        PRECISION, UPCAST)
    l_safe = tl.where(l == 0.0, 1.0, l)
    if MODE == 1:
        o_ptrs = out_ptr + b * stride_ob + heads[:, None] * stride_oh + d[None, :]
        tl.store(o_ptrs, (acc / l_safe[:, None]).to(out_ptr.dtype.element_ty), mask=q_mask)
    else:
        lse = tl.where(l == 0.0, float("-inf"), m + tl.log(l_safe))
        row = (b * GROUP * tl.num_programs(1) + heads) * NUM_SPLITS + split  # [BLOCK_G] in [B, Hq, S]
        tl.store(mid_lse_ptr + row, lse, mask=g < GROUP)
        tl.store(mid_o_ptr + row[:, None] * HEAD_DIM + d[None, :], acc / l_safe[:, None], mask=q_mask)
        if MODE == 2:
            tl.debug_barrier()  # every thread's partial is stored before the release below
            counter = count_ptr + b * tl.num_programs(1) + kvh
            ticket = tl.atomic_add(counter, 1, sem="acq_rel", scope="gpu")
            if ticket == NUM_SPLITS - 1:
                for g0 in tl.static_range(0, GROUP, MERGE_G):
                    merge_heads(mid_o_ptr, mid_lse_ptr, out_ptr + b * stride_ob, stride_oh,
                                b * GROUP * tl.num_programs(1), kvh * GROUP, g0,
                                GROUP, HEAD_DIM, NUM_SPLITS, MERGE_G, BLOCK_S, BLOCK_D)
                tl.atomic_xchg(counter, 0, sem="relaxed", scope="gpu")


@triton.jit
def rotate_rows(row_ptrs, mask, cos, sin, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """fp32 ``x * cos + swap_halves(x) * sin`` of the rows at ``row_ptrs`` ``[R, 1]`` (cos/sin ``[BLOCK_D]``)."""
    d = tl.arange(0, BLOCK_D)
    half = HEAD_DIM // 2
    partner = tl.where(d < half, d + half, d - half)  # [BLOCK_D] index of the other half
    x = tl.load(row_ptrs + d[None, :], mask=mask, other=0.0).to(tl.float32)  # [R, BLOCK_D]
    xs = tl.load(row_ptrs + partner[None, :], mask=mask, other=0.0).to(tl.float32)
    return x * cos[None, :] + xs * sin[None, :]


@triton.jit
def merge_heads(mid_o_ptr, mid_lse_ptr, out_ptr, stride_oh, seq_head0, group_head0, g0,
                GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, NUM_SPLITS: tl.constexpr, MERGE_G: tl.constexpr,
                BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    """Merge the partials of query heads ``g0 .. g0 + MERGE_G`` of a group (one load of each kind).

    ``seq_head0``: the sequence's first row in ``[B * Hq]``; ``group_head0``: the group's first head.
    The partials are read from L2 (``.cg``): other programs of this launch wrote them.
    """
    g = g0 + tl.arange(0, MERGE_G)  # [G] head within the group
    s = tl.arange(0, BLOCK_S)
    d = tl.arange(0, BLOCK_D)
    heads = group_head0 + g  # [G]
    rows = (seq_head0 + heads)[:, None] * NUM_SPLITS + s[None, :]  # [G, S]
    s_mask = (g < GROUP)[:, None] & (s < NUM_SPLITS)[None, :]
    lse = tl.load(mid_lse_ptr + rows, mask=s_mask, other=float("-inf"), cache_modifier=".cg")  # [G, S]
    o_mask = s_mask[:, :, None] & (d < HEAD_DIM)[None, None, :]
    o = tl.load(mid_o_ptr + rows[:, :, None] * HEAD_DIM + d[None, None, :], mask=o_mask, other=0.0,
                cache_modifier=".cg")  # [G, S, D]
    top = tl.max(lse, axis=1)  # [G]
    w = tl.exp(lse - tl.where(top == float("-inf"), 0.0, top)[:, None])  # [G, S], 0 where empty
    total = tl.sum(w, axis=1)  # [G]
    out = tl.sum(w[:, :, None] * o, axis=1) / tl.where(total == 0.0, 1.0, total)[:, None]  # [G, D]
    out_mask = (g < GROUP)[:, None] & (d < HEAD_DIM)[None, :]
    tl.store(out_ptr + heads[:, None] * stride_oh + d[None, :], out.to(out_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def merge_splits(mid_o_ptr, mid_lse_ptr, row0, out_ptr,
                 HEAD_DIM: tl.constexpr, NUM_SPLITS: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    """Store at ``out_ptr`` the log-sum-exp merge of the partial rows ``row0 .. row0 + NUM_SPLITS``."""
    s = tl.arange(0, BLOCK_S)
    d = tl.arange(0, BLOCK_D)
    row = row0 + s  # [BLOCK_S]
    lse = tl.load(mid_lse_ptr + row, mask=s < NUM_SPLITS, other=float("-inf"))
    top = tl.max(lse, axis=0)
    w = tl.exp(lse - tl.where(top == float("-inf"), 0.0, top))  # [BLOCK_S]
    o_mask = (s < NUM_SPLITS)[:, None] & (d < HEAD_DIM)[None, :]
    o = tl.load(mid_o_ptr + row[:, None] * HEAD_DIM + d[None, :], mask=o_mask, other=0.0)
    total = tl.sum(w, axis=0)
    out = tl.sum(w[:, None] * o, axis=0) / tl.where(total == 0.0, 1.0, total)  # [BLOCK_D]
    tl.store(out_ptr + d, out.to(out_ptr.dtype.element_ty), mask=d < HEAD_DIM)


@triton.jit
def decode_reduce(mid_o_ptr, mid_lse_ptr, out_ptr, stride_ob, stride_oh, n_heads,
                  HEAD_DIM: tl.constexpr, NUM_SPLITS: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    """Program (b, q head): merge the NUM_SPLITS partial results by their log-sum-exp."""
    b = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    merge_splits(mid_o_ptr, mid_lse_ptr, (b * n_heads + h) * NUM_SPLITS, out_ptr + b * stride_ob + h * stride_oh,
                 HEAD_DIM, NUM_SPLITS, BLOCK_S, BLOCK_D)


@triton.jit
def extend(q_ptr, k_ptr, v_ptr, out_ptr, qo_indptr_ptr, kv_indptr_ptr, kv_indices_ptr, sm_scale, window,
           stride_qt, stride_qh, stride_kn, stride_kh, stride_vn, stride_vh, stride_ot, stride_oh,
           GROUP: tl.constexpr, HEAD_DIM: tl.constexpr,
           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
           UPCAST: tl.constexpr):
    """Program (query block, b, q head): causal over the new tokens, full over the cached prefix.

    Query i (position prefix + i) sees positions j with prefix + i - window < j <= prefix + i.
    """
    mblk = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    h = tl.program_id(2).to(tl.int64)
    kvh = h // GROUP
    q_start = tl.load(qo_indptr_ptr + b).to(tl.int64)
    n_q = (tl.load(qo_indptr_ptr + b + 1) - q_start).to(tl.int32)
    kv_start = tl.load(kv_indptr_ptr + b).to(tl.int64)
    n_kv = (tl.load(kv_indptr_ptr + b + 1) - kv_start).to(tl.int32)
    prefix = n_kv - n_q
    i = mblk * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M] query index within the sequence
    d = tl.arange(0, BLOCK_D)
    q_mask = (i < n_q)[:, None] & (d < HEAD_DIM)[None, :]
    q_rows = (q_start + i).to(tl.int64)
    q = tl.load(q_ptr + q_rows[:, None] * stride_qt + h * stride_qh + d[None, :], mask=q_mask, other=0.0)
    m = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    hi = tl.minimum(n_kv, prefix + (mblk + 1) * BLOCK_M)
    hi = tl.where(mblk * BLOCK_M < n_q, hi, 0)
    lo = tl.maximum(prefix + mblk * BLOCK_M - window + 1, 0) // BLOCK_N * BLOCK_N
    for n0 in range(lo, hi, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        n_mask = n < n_kv
        slots = tl.load(kv_indices_ptr + kv_start + n, mask=n_mask, other=0).to(tl.int64)
        kv_mask = n_mask[:, None] & (d < HEAD_DIM)[None, :]
        k_ptrs = k_ptr + slots[:, None] * stride_kn + kvh * stride_kh + d[None, :]
        v_ptrs = v_ptr + slots[:, None] * stride_vn + kvh * stride_vh + d[None, :]
        pos = (prefix + i)[:, None]
        valid = n_mask[None, :] & (n[None, :] <= pos) & (n[None, :] > pos - window)
        m, l, acc = online_softmax_step(q, k_ptrs, v_ptrs, valid, kv_mask, m, l, acc, sm_scale,
                                        PRECISION, UPCAST)
    out = acc / tl.where(l == 0.0, 1.0, l)[:, None]
    o_ptrs = out_ptr + q_rows[:, None] * stride_ot + h * stride_oh + d[None, :]
    tl.store(o_ptrs, out.to(out_ptr.dtype.element_ty), mask=q_mask)
