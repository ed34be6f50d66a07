"""Rotary embedding of a step's queries and keys fused with the KV-pool write.

For each new token ``t`` at position ``positions[t]``: ``q`` and ``k`` are rotated by the cos/sin
table rows of that position (rotate-half form, the table's ``sin`` stored with its first half
negated, as ``engine.models.rope.RotaryTable`` builds it), the rotated keys and the values are
written into the pool at ``out_slots[t]``, and the rotated queries are returned. This is one
Triton launch in place of a rotary kernel and two ``index_copy_`` per layer.

* :func:`rope_kv_write`: the entry point (``backend="auto" | "torch" | "triton"``).
"""

from __future__ import annotations

import torch

from structgen.errors import KernelInputError
from structgen.kernels import _backend as B


def rope_kv_write(q, k, v, cos, sin, positions, out_slots, k_pool, v_pool, *, backend="auto") -> torch.Tensor:
    """Rotate ``q``/``k``, write rotated ``k`` and ``v`` into the pool; return the rotated ``q``.

    Args:
        q: ``[T, Hq, D]``; k, v: ``[T, Hkv, D]``; float32/bfloat16/float16, one dtype, each
            contiguous in its last dimension (views of a fused qkv projection are fine).
        cos, sin: ``[P, D]`` tables in q's dtype (``sin``'s first half negated); every position
            must be ``< P`` (not checked on the Triton path, which never reads back to the host).
        positions, out_slots: ``[T]`` int32/int64; the pool rows ``out_slots`` are overwritten.
        k_pool, v_pool: ``[N, Hkv, D]`` in q's dtype, written in place.
    Returns:
        A new ``[T, Hq, D]`` tensor of rotated queries, in q's dtype.
    """
    check_rope_kv(q, k, v, cos, sin, positions, out_slots, k_pool, v_pool)
    if B.resolve_backend(backend, q.device) == "triton":
        return rope_kv_write_triton(q, k, v, cos, sin, positions, out_slots, k_pool, v_pool)
    return rope_kv_write_torch(q, k, v, cos, sin, positions, out_slots, k_pool, v_pool)


def check_rope_kv(q, k, v, cos, sin, positions, out_slots, k_pool, v_pool) -> None:
    """Validate the arguments of :func:`rope_kv_write` (``KernelDtypeError`` / ``KernelInputError``)."""
    B.check_tensor("q", q, ndim=3, dtypes=B.FLOAT_DTYPES)
    dev, dtype = q.device, q.dtype
    for name, t in (("k", k), ("v", v), ("k_pool", k_pool), ("v_pool", v_pool)):
        B.check_tensor(name, t, ndim=3, dtypes=(dtype,), device=dev)
    for name, t in (("cos", cos), ("sin", sin)):
        B.check_tensor(name, t, ndim=2, dtypes=(dtype,), device=dev)
    for name, t in (("positions", positions), ("out_slots", out_slots)):
        B.check_tensor(name, t, ndim=1, dtypes=B.INT_DTYPES, device=dev)
        B.check_rows(name, t, q.shape[0], "q")
    for name, t in (("k", k), ("v", v)):
        B.check_rows(name, t, q.shape[0], "q")
    for name, t in (("q", q), ("k", k), ("v", v), ("cos", cos), ("sin", sin), ("k_pool", k_pool), ("v_pool", v_pool)):
        B.check_last_dim_contiguous(name, t)
    head_dim, n_kv_heads = q.shape[2], k.shape[1]
    if head_dim % 2:
        raise KernelInputError(f"head_dim must be even for rotate-half RoPE, got {head_dim}")
    if v.shape != k.shape:
        raise KernelInputError(f"v {tuple(v.shape)} must have k's shape {tuple(k.shape)}")
    if k.shape[2] != head_dim:
        raise KernelInputError(f"k head_dim {k.shape[2]} != q head_dim {head_dim}")
    for name, t in (("k_pool", k_pool), ("v_pool", v_pool)):
        if t.shape[1:] != (n_kv_heads, head_dim):
            raise KernelInputError(f"{name} must be [N, {n_kv_heads}, {head_dim}] to hold k/v rows, "
                                   f"got {tuple(t.shape)}")
    if cos.shape != sin.shape or cos.shape[1] != head_dim:
        raise KernelInputError(f"cos {tuple(cos.shape)} and sin {tuple(sin.shape)} must both be [P, {head_dim}]")


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x * cos + swap_halves(x) * sin`` for ``x [T, H, D]`` and table rows ``[T, 1, D]``."""
    half = x.shape[-1] // 2
    swapped = torch.cat((x[..., half:], x[..., :half]), dim=-1)  # [T, H, D]
    return torch.addcmul(x * cos, swapped, sin)


def rope_kv_write_torch(q, k, v, cos, sin, positions, out_slots, k_pool, v_pool) -> torch.Tensor:
    """Reference implementation of :func:`rope_kv_write` (arithmetic in q's dtype, as the eager model)."""
    c, s = cos[positions].unsqueeze(1), sin[positions].unsqueeze(1)  # [T, 1, D] x2
    slots = out_slots.long()
    k_pool.index_copy_(0, slots, _rotate(k, c, s))
    v_pool.index_copy_(0, slots, v)
    return _rotate(q, c, s)  # [T, Hq, D]


def rope_kv_write_triton(q, k, v, cos, sin, positions, out_slots, k_pool, v_pool) -> torch.Tensor:
    """Triton implementation of :func:`rope_kv_write` (one program per token, fp32 arithmetic)."""
    n, n_q_heads, head_dim = q.shape
    n_kv_heads = k.shape[1]
    q_out = torch.empty((n, n_q_heads, head_dim), dtype=q.dtype, device=q.device)  # [T, Hq, D]
    if n == 0:
        return q_out
    kernels = B.kernel_module("structgen.kernels._triton_rope_kv")
    kernels.rope_kv_write[(n,)](
        q, k, v, cos, sin, positions, out_slots, q_out, k_pool, v_pool,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), cos.stride(0), sin.stride(0),
        q_out.stride(0), q_out.stride(1), k_pool.stride(0), k_pool.stride(1), v_pool.stride(0), v_pool.stride(1),
        N_Q_HEADS=n_q_heads, N_KV_HEADS=n_kv_heads, HEAD_DIM=head_dim, BLOCK_HQ=_pow2(n_q_heads),
        BLOCK_HKV=_pow2(n_kv_heads), BLOCK_D=max(16, _pow2(head_dim)),
    )
    return q_out


def _pow2(x: int) -> int:
    """Smallest power of two >= x (>= 1)."""
    return 1 << max(0, int(x) - 1).bit_length()
