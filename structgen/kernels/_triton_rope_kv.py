"""Triton kernel of ``rope_kv.py`` (imported lazily through ``_backend.kernel_module``).

One program per token: rotate its query and key heads (rotate-half RoPE, fp32 math, one rounding
to the output dtype), store the rotated queries, and write the rotated keys and the values into
the pool rows of the token's slot.
"""

import triton
import triton.language as tl


@triton.jit
def rotate_heads(src_ptr, dst_ptr, stride_sh, stride_dh, cos, sin, n_heads,
                 HEAD_DIM: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr):
    """Store ``x * cos + swap_halves(x) * sin`` of ``n_heads`` rows of ``HEAD_DIM`` (cos/sin [BLOCK_D] fp32)."""
    h = tl.arange(0, BLOCK_H)
    d = tl.arange(0, BLOCK_D)
    half = HEAD_DIM // 2
    partner = tl.where(d < half, d + half, d - half)  # [BLOCK_D] index of the other half
    mask = (h < n_heads)[:, None] & (d < HEAD_DIM)[None, :]
    rows = src_ptr + h[:, None] * stride_sh
    x = tl.load(rows + d[None, :], mask=mask, other=0.0).to(tl.float32)  # [BLOCK_H, BLOCK_D]
    xs = tl.load(rows + partner[None, :], mask=mask, other=0.0).to(tl.float32)
    out = x * cos[None, :] + xs * sin[None, :]
    tl.store(dst_ptr + h[:, None] * stride_dh + d[None, :], out.to(dst_ptr.dtype.element_ty), mask=mask)


@triton.jit
def rope_kv_write(q_ptr, k_ptr, v_ptr, cos_ptr, sin_ptr, pos_ptr, slot_ptr, q_out_ptr, k_pool_ptr, v_pool_ptr,
                  stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_cos, stride_sin,
                  stride_ot, stride_oh, stride_kpn, stride_kph, stride_vpn, stride_vph,
                  N_Q_HEADS: tl.constexpr, N_KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr,
                  BLOCK_HQ: tl.constexpr, BLOCK_HKV: tl.constexpr, BLOCK_D: tl.constexpr):
    """Program t: q_out[t] = rope(q[t]); k_pool[slot[t]] = rope(k[t]); v_pool[slot[t]] = v[t]."""
    t = tl.program_id(0).to(tl.int64)
    pos = tl.load(pos_ptr + t).to(tl.int64)
    slot = tl.load(slot_ptr + t).to(tl.int64)
    d = tl.arange(0, BLOCK_D)
    d_mask = d < HEAD_DIM
    cos = tl.load(cos_ptr + pos * stride_cos + d, mask=d_mask, other=0.0).to(tl.float32)  # [BLOCK_D]
    sin = tl.load(sin_ptr + pos * stride_sin + d, mask=d_mask, other=0.0).to(tl.float32)
    rotate_heads(q_ptr + t * stride_qt, q_out_ptr + t * stride_ot, stride_qh, stride_oh, cos, sin, N_Q_HEADS,
                 HEAD_DIM, BLOCK_HQ, BLOCK_D)
    rotate_heads(k_ptr + t * stride_kt, k_pool_ptr + slot * stride_kpn, stride_kh, stride_kph, cos, sin, N_KV_HEADS,
                 HEAD_DIM, BLOCK_HKV, BLOCK_D)
    h = tl.arange(0, BLOCK_HKV)
    mask = (h < N_KV_HEADS)[:, None] & d_mask[None, :]
    v = tl.load(v_ptr + t * stride_vt + h[:, None] * stride_vh + d[None, :], mask=mask, other=0.0)
    tl.store(v_pool_ptr + slot * stride_vpn + h[:, None] * stride_vph + d[None, :], v.to(v_pool_ptr.dtype.element_ty),
             mask=mask)
