"""Triton kernels of ``gemv.py`` (imported lazily through ``_backend.kernel_module``).

``gemv``: program ``(n, s)`` computes ``BLOCK_N`` outputs of every one of the ``M <= 4`` input rows
over the ``s``-th slice of ``K`` (``K_SPLIT`` columns, a multiple of ``UNROLL * BLOCK_K``). Each
loop step issues the loads of ``UNROLL`` ``[BLOCK_N, BLOCK_K]`` tiles of ``w`` (16-byte loads along
K, rows clamped to ``N - 1`` so only the store is masked) before using any, so more bytes are in
flight per program than one accumulator tile holds, then multiplies each into one fp32
``[BLOCK_N, BLOCK_K]`` accumulator per input row; the accumulators are summed along K once, after
the loop. With ``SPLIT_K == 1``
the program adds the bias and stores in the output dtype; otherwise it stores fp32 partial sums
``[SPLIT_K, M, N]`` that ``gemv_split_reduce`` adds up (fixed order: deterministic).
``GATED``: the input row is ``[gate | up]`` of width ``2 * K`` and the product uses
``silu(gate) * up``, computed in fp32 on the fly.

``gemv_norm``: the same product with the input row ``rms_norm(x + delta) * ln`` (``x`` alone without
``HAS_DELTA``). Every program first reads its input rows once (``BLOCK_R`` columns at a time, the
whole row in one step where it fits, from L2) to get their sums of squares (with ``PREFETCH``, after
issuing the loads of its first weight tiles), then streams its weight tiles, normalising the input
columns of each tile on the fly; the residual ``x + delta`` and the normalised input are rounded to x's dtype as the unfused ops
round them. Program ``(0, 0)`` alone writes ``x + delta`` to the residual output during its first
pass; no program reads that output, so it never aliases ``x`` or ``delta``.
"""

import triton
import triton.language as tl


@triton.jit
def _input(x_row, k, K, up_offset, GATED: tl.constexpr, EVEN_K: tl.constexpr):
    """fp32 ``[BLOCK_K]`` input columns ``k`` of one row (``silu(gate) * up`` when ``GATED``)."""
    if EVEN_K:
        v = tl.load(x_row + k).to(tl.float32)
    else:
        v = tl.load(x_row + k, mask=k < K, other=0.0).to(tl.float32)
    if GATED:
        if EVEN_K:
            up = tl.load(x_row + up_offset + k).to(tl.float32)
        else:
            up = tl.load(x_row + up_offset + k, mask=k < K, other=0.0).to(tl.float32)
        v = v / (1.0 + tl.exp(-v)) * up
    return v


@triton.jit
def _w_tile(w_tile, k0, k, K, EVEN_K: tl.constexpr):
    """The ``[BLOCK_N, BLOCK_K]`` weight tile at columns ``k = k0 + arange`` (zeros past K), as stored."""
    if EVEN_K:
        return tl.load(w_tile + k0)
    return tl.load(w_tile + k0, mask=(k < K)[None, :], other=0.0)


@triton.jit
def _accumulate(acc0, acc1, acc2, acc3, w, x_ptr, stride_xm, k, K, up_offset,
                M: tl.constexpr, GATED: tl.constexpr, EVEN_K: tl.constexpr):
    """``acc_m += w * in(x)[m, k]`` for each of the M rows (fp32)."""
    w = w.to(tl.float32)
    acc0 += w * _input(x_ptr, k, K, up_offset, GATED, EVEN_K)[None, :]
    if M > 1:
        acc1 += w * _input(x_ptr + stride_xm, k, K, up_offset, GATED, EVEN_K)[None, :]
    if M > 2:
        acc2 += w * _input(x_ptr + 2 * stride_xm, k, K, up_offset, GATED, EVEN_K)[None, :]
    if M > 3:
        acc3 += w * _input(x_ptr + 3 * stride_xm, k, K, up_offset, GATED, EVEN_K)[None, :]
    return acc0, acc1, acc2, acc3


@triton.jit
def _finish(acc, m, rows, N, b_ptr, out_ptr, stride_om, part_ptr, HAS_BIAS: tl.constexpr,
            SPLIT_K: tl.constexpr):
    """Sum one row's accumulator along K; store it (bias added) or its fp32 partial sum."""
    y = tl.sum(acc, axis=1)  # [BLOCK_N] fp32
    if SPLIT_K == 1:
        if HAS_BIAS:
            y += tl.load(b_ptr + rows, mask=rows < N, other=0.0).to(tl.float32)
        tl.store(out_ptr + m * stride_om + rows, y.to(out_ptr.dtype.element_ty), mask=rows < N)
    else:
        tl.store(part_ptr + m * N + rows, y, mask=rows < N)


@triton.jit
def _finish_rows(acc0, acc1, acc2, acc3, rows, N, b_ptr, out_ptr, stride_om, part_ptr, M: tl.constexpr,
                 HAS_BIAS: tl.constexpr, SPLIT_K: tl.constexpr):
    """:func:`_finish` for each of the M rows."""
    _finish(acc0, 0, rows, N, b_ptr, out_ptr, stride_om, part_ptr, HAS_BIAS, SPLIT_K)
    if M > 1:
        _finish(acc1, 1, rows, N, b_ptr, out_ptr, stride_om, part_ptr, HAS_BIAS, SPLIT_K)
    if M > 2:
        _finish(acc2, 2, rows, N, b_ptr, out_ptr, stride_om, part_ptr, HAS_BIAS, SPLIT_K)
    if M > 3:
        _finish(acc3, 3, rows, N, b_ptr, out_ptr, stride_om, part_ptr, HAS_BIAS, SPLIT_K)


@triton.jit
def _w_step(w_tile, k0, cols, K, EVEN_K: tl.constexpr, BLOCK_K: tl.constexpr, UNROLL: tl.constexpr):
    """The ``UNROLL`` weight tiles of the loop step at column ``k0`` (the second is the first when ``UNROLL == 1``)."""
    w = _w_tile(w_tile, k0, k0 + cols, K, EVEN_K)  # [BLOCK_N, BLOCK_K]
    w_next = w
    if UNROLL == 2:
        w_next = _w_tile(w_tile, k0 + BLOCK_K, k0 + BLOCK_K + cols, K, EVEN_K)
    return w, w_next


@triton.jit
def gemv(x_ptr, w_ptr, b_ptr, out_ptr, part_ptr, N, K, K_SPLIT, up_offset, stride_xm, stride_wn, stride_om,
         M: tl.constexpr, HAS_BIAS: tl.constexpr, GATED: tl.constexpr, EVEN_K: tl.constexpr,
         SPLIT_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, UNROLL: tl.constexpr):
    """out[m, n] = sum_k in(x)[m, k] * w[n, k] (+ b[n]) for m < M <= 4, n in this program's block."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    cols = tl.arange(0, BLOCK_K)  # [BLOCK_K]
    w_tile = w_ptr + tl.minimum(rows, N - 1).to(tl.int64)[:, None] * stride_wn + cols[None, :]
    k_start = pid_k * K_SPLIT
    k_end = tl.minimum(k_start + K_SPLIT, K)
    acc0 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    acc1 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    acc3 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    for k0 in range(k_start, k_end, UNROLL * BLOCK_K):
        w, w_next = _w_step(w_tile, k0, cols, K, EVEN_K, BLOCK_K, UNROLL)  # [BLOCK_N, BLOCK_K] x2
        acc0, acc1, acc2, acc3 = _accumulate(acc0, acc1, acc2, acc3, w, x_ptr, stride_xm, k0 + cols, K, up_offset,
                                             M, GATED, EVEN_K)
        if UNROLL == 2:
            acc0, acc1, acc2, acc3 = _accumulate(acc0, acc1, acc2, acc3, w_next, x_ptr, stride_xm,
                                                 k0 + BLOCK_K + cols, K, up_offset, M, GATED, EVEN_K)
    _finish_rows(acc0, acc1, acc2, acc3, rows, N, b_ptr, out_ptr, stride_om, part_ptr + pid_k * M * N, M,
                 HAS_BIAS, SPLIT_K)


@triton.jit
def gemv_split_reduce(part_ptr, b_ptr, out_ptr, N, stride_om, M: tl.constexpr, HAS_BIAS: tl.constexpr,
                      SPLIT_K: tl.constexpr, BLOCK: tl.constexpr):
    """out[m, n] = sum_s part[s, m, n] (+ b[n]) in split order; program (n block, m)."""
    m = tl.program_id(1)
    n = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = n < N
    y = tl.zeros([BLOCK], dtype=tl.float32)
    for s in tl.static_range(SPLIT_K):
        y += tl.load(part_ptr + (s * M + m) * N + n, mask=mask, other=0.0)
    if HAS_BIAS:
        y += tl.load(b_ptr + n, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + m * stride_om + n, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _residual(x_row, d_row, k, K, HAS_DELTA: tl.constexpr):
    """fp32 ``x + delta`` at columns ``k`` of one row (zeros past K), rounded to x's dtype once."""
    r = tl.load(x_row + k, mask=k < K, other=0.0).to(tl.float32)
    if HAS_DELTA:
        r += tl.load(d_row + k, mask=k < K, other=0.0).to(tl.float32)
        r = r.to(x_row.dtype.element_ty, fp_downcast_rounding="rtne").to(tl.float32)  # as the unfused add
    return r


@triton.jit
def _rstd(x_row, d_row, res_row, write, K, eps, HAS_DELTA: tl.constexpr, BLOCK_R: tl.constexpr):
    """``1 / sqrt(mean(r ** 2) + eps)`` of one row ``r = x + delta``; stores ``r`` to ``res_row`` where ``write``."""
    cols = tl.arange(0, BLOCK_R)
    ss = tl.zeros([BLOCK_R], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_R):
        k = k0 + cols
        r = _residual(x_row, d_row, k, K, HAS_DELTA)
        if HAS_DELTA:
            tl.store(res_row + k, r.to(res_row.dtype.element_ty), mask=(k < K) & write)
        ss += r * r
    return 1.0 / tl.sqrt(tl.sum(ss) / K + eps)


@triton.jit
def _normed(x_row, d_row, ln, rstd, k, K, HAS_DELTA: tl.constexpr):
    """fp32 input columns ``k``: ``(x + delta) * rstd * ln`` rounded to x's dtype (zeros past K)."""
    h = _residual(x_row, d_row, k, K, HAS_DELTA) * rstd * ln
    return h.to(x_row.dtype.element_ty, fp_downcast_rounding="rtne").to(tl.float32)


@triton.jit
def _accumulate_normed(acc0, acc1, acc2, acc3, w, x_ptr, d_ptr, ln_ptr, stride_xm, stride_dm, k, K,
                       rstd0, rstd1, rstd2, rstd3, M: tl.constexpr, HAS_DELTA: tl.constexpr):
    """``acc_m += w * normed(x)[m, k]`` for each of the M rows (fp32)."""
    w = w.to(tl.float32)
    ln = tl.load(ln_ptr + k, mask=k < K, other=0.0).to(tl.float32)
    acc0 += w * _normed(x_ptr, d_ptr, ln, rstd0, k, K, HAS_DELTA)[None, :]
    if M > 1:
        acc1 += w * _normed(x_ptr + stride_xm, d_ptr + stride_dm, ln, rstd1, k, K, HAS_DELTA)[None, :]
    if M > 2:
        acc2 += w * _normed(x_ptr + 2 * stride_xm, d_ptr + 2 * stride_dm, ln, rstd2, k, K, HAS_DELTA)[None, :]
    if M > 3:
        acc3 += w * _normed(x_ptr + 3 * stride_xm, d_ptr + 3 * stride_dm, ln, rstd3, k, K, HAS_DELTA)[None, :]
    return acc0, acc1, acc2, acc3


@triton.jit
def _normed_step(acc0, acc1, acc2, acc3, w, w_next, x_ptr, d_ptr, ln_ptr, stride_xm, stride_dm, k0, cols, K,
                 rstd0, rstd1, rstd2, rstd3, M: tl.constexpr, HAS_DELTA: tl.constexpr, BLOCK_K: tl.constexpr,
                 UNROLL: tl.constexpr):
    """Fold the tiles of one loop step (from :func:`_w_step`) into the accumulators."""
    acc0, acc1, acc2, acc3 = _accumulate_normed(acc0, acc1, acc2, acc3, w, x_ptr, d_ptr, ln_ptr, stride_xm,
                                                stride_dm, k0 + cols, K, rstd0, rstd1, rstd2, rstd3, M, HAS_DELTA)
    if UNROLL == 2:
        acc0, acc1, acc2, acc3 = _accumulate_normed(acc0, acc1, acc2, acc3, w_next, x_ptr, d_ptr, ln_ptr,
                                                    stride_xm, stride_dm, k0 + BLOCK_K + cols, K,
                                                    rstd0, rstd1, rstd2, rstd3, M, HAS_DELTA)
    return acc0, acc1, acc2, acc3


@triton.jit
def gemv_norm(x_ptr, d_ptr, ln_ptr, res_ptr, w_ptr, b_ptr, out_ptr, part_ptr, N, K, K_SPLIT, eps,
              stride_xm, stride_dm, stride_rm, stride_wn, stride_om,
              M: tl.constexpr, HAS_DELTA: tl.constexpr, HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr,
              SPLIT_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, UNROLL: tl.constexpr,
              BLOCK_R: tl.constexpr, PREFETCH: tl.constexpr):
    """out[m, n] = sum_k (rms_norm(x + delta) * ln)[m, k] * w[n, k] (+ b[n]); res[m] = x[m] + delta[m].

    ``PREFETCH``: issue the first loop step's weight loads before the sum-of-squares pass, so the
    two reads overlap (every program's slice of K holds at least one step).
    """
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    cols = tl.arange(0, BLOCK_K)  # [BLOCK_K]
    w_tile = w_ptr + tl.minimum(rows, N - 1).to(tl.int64)[:, None] * stride_wn + cols[None, :]
    k_start = pid_k * K_SPLIT
    k_end = tl.minimum(k_start + K_SPLIT, K)
    if PREFETCH:
        w, w_next = _w_step(w_tile, k_start, cols, K, EVEN_K, BLOCK_K, UNROLL)  # [BLOCK_N, BLOCK_K] x2
    write = (pid_n == 0) & (pid_k == 0)  # the one program that stores the residual rows
    rstd0 = _rstd(x_ptr, d_ptr, res_ptr, write, K, eps, HAS_DELTA, BLOCK_R)
    rstd1 = rstd0
    rstd2 = rstd0
    rstd3 = rstd0
    if M > 1:
        rstd1 = _rstd(x_ptr + stride_xm, d_ptr + stride_dm, res_ptr + stride_rm, write, K, eps, HAS_DELTA, BLOCK_R)
    if M > 2:
        rstd2 = _rstd(x_ptr + 2 * stride_xm, d_ptr + 2 * stride_dm, res_ptr + 2 * stride_rm, write, K, eps,
                      HAS_DELTA, BLOCK_R)
    if M > 3:
        rstd3 = _rstd(x_ptr + 3 * stride_xm, d_ptr + 3 * stride_dm, res_ptr + 3 * stride_rm, write, K, eps,
                      HAS_DELTA, BLOCK_R)
    acc0 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    acc1 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    acc3 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    k_loop = k_start
    if PREFETCH:
        acc0, acc1, acc2, acc3 = _normed_step(acc0, acc1, acc2, acc3, w, w_next, x_ptr, d_ptr, ln_ptr, stride_xm,
                                              stride_dm, k_start, cols, K, rstd0, rstd1, rstd2, rstd3, M,
                                              HAS_DELTA, BLOCK_K, UNROLL)
        k_loop = k_start + UNROLL * BLOCK_K
    for k0 in range(k_loop, k_end, UNROLL * BLOCK_K):
        w, w_next = _w_step(w_tile, k0, cols, K, EVEN_K, BLOCK_K, UNROLL)
        acc0, acc1, acc2, acc3 = _normed_step(acc0, acc1, acc2, acc3, w, w_next, x_ptr, d_ptr, ln_ptr, stride_xm,
                                              stride_dm, k0, cols, K, rstd0, rstd1, rstd2, rstd3, M,
                                              HAS_DELTA, BLOCK_K, UNROLL)
    _finish_rows(acc0, acc1, acc2, acc3, rows, N, b_ptr, out_ptr, stride_om, part_ptr + pid_k * M * N, M,
                 HAS_BIAS, SPLIT_K)
