"""Attention over the paged KV pool, read through slot indices.

The pool holds one K and one V row per slot: ``k_pool, v_pool [N, Hkv, D]``. Sequence ``b``'s
context is the slots ``kv_indices[kv_indptr[b]:kv_indptr[b+1]]`` in position order. Query heads
are grouped: ``Hq`` is a multiple of ``Hkv`` and query head ``h`` reads KV head
``h // (Hq // Hkv)``. Scores are ``sm_scale * q . k`` (default ``D ** -0.5``), softmax in fp32, the
result in ``q``'s dtype. A sequence with no KV rows gets a zero output. With a sliding
``window`` (Mistral-style), the query at position ``p`` sees only positions ``j > p - window``.

* :func:`decode_attention`: one new query per sequence, attending its whole context (the new
  token's K/V already written into the pool). Split-K: the context is cut into ``num_splits``
  chunks processed in parallel and merged by log-sum-exp, so short batches fill the GPU; by
  default the last chunk to finish merges them, so a call is one kernel launch.
* :func:`decode_attention_rope_kv`: the same after rotating the new tokens' q/k and writing their
  K/V into the pool (``rope_kv.rope_kv_write``), all in that one launch on the Triton path.
* :func:`extend_attention`: ``n_q`` new tokens per sequence after a cached prefix; their K/V are
  the last ``n_q`` slots of the sequence's context. New token ``i`` attends context positions
  ``j <= n_kv - n_q + i`` (full over the prefix, causal among the new tokens).
"""

from __future__ import annotations

import math

import torch

from structgen.errors import KernelInputError
from structgen.kernels import _backend as B
from structgen.kernels.rope_kv import check_rope_kv, rope_kv_write_torch

DECODE_BLOCK_N = 64
DECODE_SPLIT_BLOCK_N = 16  # KV rows per tile at 16 splits or more (see decode_tile)
DECODE_WARPS = 4
MERGES = ("fused", "kernel")
MERGE_TILE = 8192  # fp32 elements of the fused merge's [heads, splits, D] load (64 registers a thread, 4 warps)
EXTEND_BLOCK_M = 64
EXTEND_BLOCK_N = 64


def _check_pool(q, k_pool, v_pool, indptr_names: tuple[str, ...], tensors: tuple[torch.Tensor, ...], kv_indices):
    """Validate the shared arguments of both attention entry points; return (Hq, Hkv, D)."""
    B.check_tensor("q", q, ndim=3, dtypes=B.FLOAT_DTYPES)
    dev = q.device
    B.check_tensor("k_pool", k_pool, ndim=3, dtypes=(q.dtype,), device=dev)
    B.check_tensor("v_pool", v_pool, ndim=3, dtypes=(q.dtype,), device=dev)
    for name, t in zip(indptr_names, tensors):
        B.check_tensor(name, t, ndim=1, dtypes=B.INT_DTYPES, device=dev)
    B.check_tensor("kv_indices", kv_indices, ndim=1, dtypes=B.INT_DTYPES, device=dev)
    for name, t in (("q", q), ("k_pool", k_pool), ("v_pool", v_pool)):
        B.check_last_dim_contiguous(name, t)
    if k_pool.shape != v_pool.shape:
        raise KernelInputError(f"k_pool {tuple(k_pool.shape)} and v_pool {tuple(v_pool.shape)} must have one shape")
    n_q_heads, n_kv_heads, head_dim = q.shape[1], k_pool.shape[1], k_pool.shape[2]
    if q.shape[2] != head_dim:
        raise KernelInputError(f"q head_dim {q.shape[2]} != pool head_dim {head_dim}; q must be [.., Hq, {head_dim}]")
    if n_kv_heads == 0 or n_q_heads % n_kv_heads:
        raise KernelInputError(f"query heads ({n_q_heads}) must be a multiple of KV heads ({n_kv_heads})")
    return n_q_heads, n_kv_heads, head_dim


def _scale(sm_scale: float | None, head_dim: int) -> float:
    return float(sm_scale) if sm_scale is not None else 1.0 / math.sqrt(head_dim)


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


# ---------------------------------------------------------------- decode


def decode_attention(q, k_pool, v_pool, kv_indptr, kv_indices, sm_scale=None, *, window=None, num_splits=None,
                     merge="fused", block_n=None, num_warps=None, backend="auto"):
    """Attention of one query per sequence over its pooled context; returns ``[B, Hq, D]``.

    Args:
        q: ``[B, Hq, D]`` float32/bfloat16/float16. k_pool, v_pool: ``[N, Hkv, D]``, q's dtype.
        kv_indptr: ``[B + 1]`` int32/int64. kv_indices: ``[nnz]`` int32/int64 slot ids.
        sm_scale: score scale, default ``D ** -0.5``.
        window: sliding-window size (None: the whole context).
        num_splits: KV chunks per sequence for the Triton path (default from the batch shape,
            no host sync); ignored by the torch path. With one split the kernel writes the
            output directly (one launch, no partial results).
        merge: how the Triton path merges several splits: ``"fused"`` (the last split of each
            head group to finish merges them, one launch; launches of this mode on one device
            must not run concurrently on different streams, as they share arrival counters) or
            ``"kernel"`` (a second, reduce kernel). Same result either way; ignored by torch.
        block_n, num_warps: the Triton path's tile of KV rows per loop step (a power of two >= 16;
            a split's chunk is a multiple of it) and warps per program; defaults from the number
            of splits (:func:`decode_tile`). Ignored by torch.
    """
    _, _, head_dim = _check_pool(q, k_pool, v_pool, ("kv_indptr",), (kv_indptr,), kv_indices)
    B.check_rows("kv_indptr", kv_indptr, q.shape[0] + 1, "q (plus one)")
    if merge not in MERGES:
        raise KernelInputError(f"unknown merge {merge!r}; use one of {MERGES}")
    _check_tile(block_n, num_warps)
    scale = _scale(sm_scale, head_dim)
    if B.resolve_backend(backend, q.device) == "triton":
        return decode_attention_triton(q, k_pool, v_pool, kv_indptr, kv_indices, scale, window, num_splits, merge,
                                       block_n=block_n, num_warps=num_warps)
    return decode_attention_torch(q, k_pool, v_pool, kv_indptr, kv_indices, scale, window)


def decode_attention_rope_kv(q, k, v, cos, sin, positions, out_slots, k_pool, v_pool, kv_indptr, kv_indices,
                             sm_scale=None, *, window=None, num_splits=None, merge="fused", block_n=None,
                             num_warps=None, backend="auto"):
    """:func:`rope_kv.rope_kv_write` then :func:`decode_attention`, in one launch on the Triton path.

    Rotates the new tokens' ``q``/``k`` (``[B, Hq, D]``, ``[B, Hkv, D]``) at ``positions``, writes the
    rotated ``k`` and ``v`` into the pool at ``out_slots``, and returns the attention ``[B, Hq, D]``
    of the rotated queries over each context. Arguments as in those two functions; in addition
    ``out_slots[b]`` must be the last slot of sequence ``b``'s context (the new token's), which
    the Triton path writes and reads back within one program. The rotated queries are not returned.
    """
    check_rope_kv(q, k, v, cos, sin, positions, out_slots, k_pool, v_pool)
    _, _, head_dim = _check_pool(q, k_pool, v_pool, ("kv_indptr",), (kv_indptr,), kv_indices)
    B.check_rows("kv_indptr", kv_indptr, q.shape[0] + 1, "q (plus one)")
    if merge not in MERGES:
        raise KernelInputError(f"unknown merge {merge!r}; use one of {MERGES}")
    _check_tile(block_n, num_warps)
    scale = _scale(sm_scale, head_dim)
    if B.resolve_backend(backend, q.device) == "triton":
        rope = (k, v, cos, sin, positions, out_slots)
        return decode_attention_triton(q, k_pool, v_pool, kv_indptr, kv_indices, scale, window, num_splits, merge,
                                       rope, block_n, num_warps)
    q = rope_kv_write_torch(q, k, v, cos, sin, positions, out_slots, k_pool, v_pool)  # [B, Hq, D] rotated
    return decode_attention_torch(q, k_pool, v_pool, kv_indptr, kv_indices, scale, window)


def _check_window(window) -> int:
    """The window as a kernel argument: ``2**30`` (no limit) for None; reject sizes below 1."""
    if window is None:
        return 1 << 30
    if int(window) < 1:
        raise KernelInputError(f"window must be a positive number of positions or None, got {window}")
    return int(window)


def _attend(q, k, v, scale, first_pos, window):
    """fp32 attention of ``q [Hq, n_q, D]`` (positions ``first_pos + i``) over ``k, v [Hkv, n_kv, D]``."""
    group = q.shape[0] // k.shape[0]
    k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)  # [Hq, n_kv, D]
    s = torch.einsum("hqd,hkd->hqk", q, k) * scale  # [Hq, n_q, n_kv]
    pos = first_pos + torch.arange(q.shape[1], device=q.device).unsqueeze(1)  # [n_q, 1]
    j = torch.arange(k.shape[1], device=q.device).unsqueeze(0)  # [1, n_kv]
    s = s.masked_fill((j > pos) | (j <= pos - window), float("-inf"))
    return torch.einsum("hqk,hkd->hqd", torch.softmax(s, dim=-1), v)  # [Hq, n_q, D]


def decode_attention_torch(q, k_pool, v_pool, kv_indptr, kv_indices, sm_scale, window=None) -> torch.Tensor:
    """Reference implementation of :func:`decode_attention`: gather each context, attend in fp32."""
    window = _check_window(window)
    out = torch.zeros_like(q)  # [B, Hq, D]
    bounds = kv_indptr.tolist()
    for b in range(q.shape[0]):
        slots = kv_indices[bounds[b]:bounds[b + 1]].long()  # [L]
        if slots.numel() == 0:
            continue
        k = k_pool[slots].float().transpose(0, 1)  # [Hkv, L, D]
        v = v_pool[slots].float().transpose(0, 1)
        o = _attend(q[b].float().unsqueeze(1), k, v, sm_scale, slots.numel() - 1, window)  # [Hq, 1, D]
        out[b] = o.squeeze(1).to(q.dtype)
    return out


def default_num_splits(batch: int, n_kv_heads: int) -> int:
    """Splits per sequence so that about 256 programs run: 1 for large batches, up to 16."""
    want = max(1, 256 // max(1, batch * n_kv_heads))
    return min(16, 1 << (want.bit_length() - 1))


def _check_tile(block_n, num_warps) -> None:
    """Reject a decode tile the kernel cannot run (None means the default)."""
    if block_n is not None and (int(block_n) < 16 or int(block_n) & (int(block_n) - 1)):
        raise KernelInputError(f"block_n must be a power of two >= 16, got {block_n}")
    if num_warps is not None and int(num_warps) not in (1, 2, 4, 8):
        raise KernelInputError(f"num_warps must be 1, 2, 4 or 8, got {num_warps}")


def decode_tile(splits: int) -> tuple[int, int]:
    """``(block_n, num_warps)`` of a decode-attention launch with ``splits`` chunks per sequence.

    A split's chunk is a multiple of ``block_n``: with many splits (a batch of one or two
    sequences) 16-row tiles spread a short context over more of them than 64-row ones, which
    leave most splits empty (bench/decode_profile.py --kernels attn64,fused).
    """
    return (DECODE_SPLIT_BLOCK_N if splits >= 16 else DECODE_BLOCK_N), DECODE_WARPS


def decode_attention_triton(q, k_pool, v_pool, kv_indptr, kv_indices, sm_scale, window=None,
                            num_splits=None, merge="fused", rope=None, block_n=None, num_warps=None) -> torch.Tensor:
    """Triton implementation of :func:`decode_attention` (split-K, then a log-sum-exp merge).

    One split: a single launch writes the output. Several: the partials are merged by the last
    split of each (sequence, KV head) (``merge="fused"``) or by a separate ``decode_reduce``.
    ``rope``: ``(k, v, cos, sin, positions, out_slots)`` of :func:`decode_attention_rope_kv`.
    ``block_n``, ``num_warps``: the launch tile (None: :func:`decode_tile` of the split count).
    """
    window = _check_window(window)
    n, n_q_heads, head_dim = q.shape
    n_kv_heads = k_pool.shape[1]
    out = torch.empty_like(q)  # [B, Hq, D]
    if n == 0:
        return out
    splits = int(num_splits) if num_splits else default_num_splits(n, n_kv_heads)
    if splits < 1:
        raise KernelInputError(f"num_splits must be >= 1, got {num_splits}")
    tile_n, warps = decode_tile(splits)
    tile_n, warps = int(block_n or tile_n), int(num_warps or warps)
    mode = 1 if splits == 1 else (2 if merge == "fused" else 0)
    if mode == 1:  # no partials: the kernel never touches mid_o / mid_lse / counters
        mid_o = mid_lse = counters = out
    else:
        mid_o = torch.empty((n, n_q_heads, splits, head_dim), dtype=torch.float32, device=q.device)
        mid_lse = torch.empty((n, n_q_heads, splits), dtype=torch.float32, device=q.device)
        counters = _merge_counters(q.device, n * n_kv_heads) if mode == 2 else out
    group = n_q_heads // n_kv_heads
    block_d, block_s = max(16, triton_next_pow2(head_dim)), triton_next_pow2(splits)
    if rope is None:  # the RoPE arguments are never read: stand-ins of the right kinds
        new_k, new_v, cos, sin, positions, out_slots = q, q, q, q, kv_indptr, kv_indptr
        rope_strides = (0,) * 6
    else:
        new_k, new_v, cos, sin, positions, out_slots = rope
        rope_strides = (new_k.stride(0), new_k.stride(1), new_v.stride(0), new_v.stride(1), cos.stride(0),
                        sin.stride(0))
    k = B.kernel_module("structgen.kernels._triton_attention")
    k.decode_split[(n, n_kv_heads, splits)](
        q, k_pool, v_pool, kv_indptr, kv_indices, mid_o, mid_lse, out, counters, sm_scale, window,
        q.stride(0), q.stride(1), k_pool.stride(0), k_pool.stride(1), v_pool.stride(0), v_pool.stride(1),
        out.stride(0), out.stride(1), new_k, new_v, cos, sin, positions, out_slots, *rope_strides,
        GROUP=group, HEAD_DIM=head_dim, NUM_SPLITS=splits, MODE=mode, ROPE=rope is not None,
        BLOCK_G=max(16, triton_next_pow2(group)),
        BLOCK_N=tile_n, BLOCK_D=block_d, BLOCK_S=block_s, MERGE_G=_merge_heads(group, block_s, block_d),
        PRECISION=_precision(q.dtype), UPCAST=B.interpret_mode(), num_warps=warps,
    )
    if mode == 0:
        k.decode_reduce[(n, n_q_heads)](
            mid_o, mid_lse, out, out.stride(0), out.stride(1), n_q_heads,
            HEAD_DIM=head_dim, NUM_SPLITS=splits, BLOCK_S=block_s, BLOCK_D=block_d,
        )
    return out


def _merge_heads(group: int, block_s: int, block_d: int) -> int:
    """Query heads merged per load by the fused merge: all of the group while the tile stays <= 8192 fp32."""
    heads = triton_next_pow2(group)
    while heads > 1 and heads * block_s * block_d > MERGE_TILE:
        heads //= 2
    return heads


_MERGE_COUNTERS: dict[torch.device, list[torch.Tensor]] = {}


def _merge_counters(device: torch.device, n: int) -> torch.Tensor:
    """At least ``n`` int32 arrival counters on ``device``, all zero between launches.

    Kept per device and reused: the merging program of each launch resets its counter to 0, so no
    launch needs a memset (a CUDA graph captures no allocation once the first eager call made them).
    A larger set replaces a smaller one, which is kept alive: captured graphs may still use it.
    """
    kept = _MERGE_COUNTERS.setdefault(device, [])
    if not kept or kept[-1].numel() < n:
        kept.append(torch.zeros(max(n, 4096), dtype=torch.int32, device=device))  # [>= n]
    return kept[-1]


def triton_next_pow2(x: int) -> int:
    """Smallest power of two >= x (>= 1)."""
    return 1 << max(0, int(x) - 1).bit_length()


# ---------------------------------------------------------------- extend (prefill after a cached prefix)


def extend_attention(q, k_pool, v_pool, qo_indptr, kv_indptr, kv_indices, sm_scale=None, *, window=None,
                     max_q_len=None, backend="auto"):
    """Attention of the new tokens of each sequence over its cached prefix and themselves.

    Args:
        q: ``[T, Hq, D]``, the new tokens of all sequences, sequence ``b`` at rows
            ``qo_indptr[b]:qo_indptr[b+1]``. k_pool, v_pool: ``[N, Hkv, D]``, q's dtype, the new
            tokens' K/V already written. qo_indptr, kv_indptr: ``[B + 1]`` int32/int64; each
            sequence needs ``n_kv >= n_q``. kv_indices: ``[nnz]`` slot ids, new tokens last.
        window: sliding-window size (None: no limit).
        max_q_len: the largest ``n_q`` (sizes the Triton grid); computed from ``qo_indptr``
            (one host sync) when omitted.
    Returns:
        ``[T, Hq, D]`` in q's dtype.
    """
    _, _, head_dim = _check_pool(q, k_pool, v_pool, ("qo_indptr", "kv_indptr"), (qo_indptr, kv_indptr), kv_indices)
    if qo_indptr.shape != kv_indptr.shape:
        raise KernelInputError(f"qo_indptr {tuple(qo_indptr.shape)} and kv_indptr {tuple(kv_indptr.shape)} "
                               "must both be [B + 1]")
    scale = _scale(sm_scale, head_dim)
    if B.resolve_backend(backend, q.device) == "triton":
        return extend_attention_triton(q, k_pool, v_pool, qo_indptr, kv_indptr, kv_indices, scale, window, max_q_len)
    return extend_attention_torch(q, k_pool, v_pool, qo_indptr, kv_indptr, kv_indices, scale, window)


def extend_attention_torch(q, k_pool, v_pool, qo_indptr, kv_indptr, kv_indices, sm_scale, window=None):
    """Reference implementation of :func:`extend_attention`: gather, causal-offset mask, fp32 softmax."""
    window = _check_window(window)
    out = torch.zeros_like(q)  # [T, Hq, D]
    qb, kb = qo_indptr.tolist(), kv_indptr.tolist()
    for b in range(len(qb) - 1):
        n_q, n_kv = qb[b + 1] - qb[b], kb[b + 1] - kb[b]
        if n_kv < n_q:
            raise KernelInputError(f"sequence {b} has {n_q} new tokens but only {n_kv} KV slots; "
                                   "write the new tokens' K/V into the pool and list their slots last")
        if n_q == 0:
            continue
        slots = kv_indices[kb[b]:kb[b + 1]].long()  # [n_kv]
        k = k_pool[slots].float().transpose(0, 1)  # [Hkv, n_kv, D]
        v = v_pool[slots].float().transpose(0, 1)
        qs = q[qb[b]:qb[b + 1]].float().transpose(0, 1)  # [Hq, n_q, D]
        out[qb[b]:qb[b + 1]] = _attend(qs, k, v, sm_scale, n_kv - n_q, window).transpose(0, 1).to(q.dtype)
    return out


def extend_attention_triton(q, k_pool, v_pool, qo_indptr, kv_indptr, kv_indices, sm_scale, window=None,
                            max_q_len=None):
    """Triton implementation of :func:`extend_attention` (one program per query block and head)."""
    window = _check_window(window)
    n_tokens, n_q_heads, head_dim = q.shape
    out = torch.empty_like(q)  # [T, Hq, D]
    n_seq = qo_indptr.shape[0] - 1
    if n_tokens == 0 or n_seq == 0:
        return out
    if max_q_len is None:
        max_q_len = int((qo_indptr[1:] - qo_indptr[:-1]).max())
    if max_q_len <= 0:
        return out
    k = B.kernel_module("structgen.kernels._triton_attention")
    grid = ((max_q_len + EXTEND_BLOCK_M - 1) // EXTEND_BLOCK_M, n_seq, n_q_heads)
    k.extend[grid](
        q, k_pool, v_pool, out, qo_indptr, kv_indptr, kv_indices, sm_scale, window,
        q.stride(0), q.stride(1), k_pool.stride(0), k_pool.stride(1), v_pool.stride(0), v_pool.stride(1),
        out.stride(0), out.stride(1),
        GROUP=n_q_heads // k_pool.shape[1], HEAD_DIM=head_dim, BLOCK_M=EXTEND_BLOCK_M, BLOCK_N=EXTEND_BLOCK_N,
        BLOCK_D=max(16, triton_next_pow2(head_dim)), PRECISION=_precision(q.dtype), UPCAST=B.interpret_mode(),
    )
    return out
