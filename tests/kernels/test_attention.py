"""decode_attention / extend_attention: reference semantics, Triton within tolerance, validation."""

from __future__ import annotations

import math

import pytest
import torch

from structgen.kernels import (
    decode_attention,
    decode_attention_rope_kv,
    extend_attention,
)

TOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2}


def pool(gen, n_slots, n_kv_heads, head_dim, dtype, device):
    k = torch.randn(n_slots, n_kv_heads, head_dim, generator=gen)
    v = torch.randn(n_slots, n_kv_heads, head_dim, generator=gen)
    return k.to(dtype).to(device), v.to(dtype).to(device)


def ragged(gen, lens, n_slots, device):
    indptr = torch.tensor([0, *lens]).cumsum(0).to(device)
    indices = torch.randperm(n_slots, generator=gen)[: sum(lens)].to(torch.int32).to(device)
    return indptr, indices


def naive(q, k, v, scale, mask):
    """Plain softmax attention of one head: q [n_q, D], k/v [n_kv, D], mask [n_q, n_kv] True = attend."""
    s = (q @ k.T) * scale
    return torch.softmax(s.masked_fill(~mask, float("-inf")), -1) @ v


def test_reference_decode_is_softmax_attention_with_grouped_heads(gen):
    k_pool, v_pool = pool(gen, 20, 2, 8, torch.float32, "cpu")
    indptr, indices = ragged(gen, [3, 0, 7], 20, "cpu")
    q = torch.randn(3, 4, 8, generator=gen)
    out = decode_attention(q, k_pool, v_pool, indptr, indices)
    assert torch.equal(out[1], torch.zeros(4, 8))  # no context: zeros
    slots = indices[3:10].long()
    for h in range(4):
        kv = k_pool[slots, h // 2], v_pool[slots, h // 2]
        want = naive(q[2, h : h + 1], *kv, 1 / math.sqrt(8), torch.ones(1, 7, dtype=torch.bool))
        torch.testing.assert_close(out[2, h], want[0], atol=1e-5, rtol=1e-5)


def test_reference_extend_is_causal_over_new_tokens_and_full_over_the_prefix(gen):
    k_pool, v_pool = pool(gen, 20, 1, 8, torch.float32, "cpu")
    kv_indptr, indices = ragged(gen, [6], 20, "cpu")
    q = torch.randn(2, 2, 8, generator=gen)  # 2 new tokens after a 4-token prefix
    out = extend_attention(q, k_pool, v_pool, torch.tensor([0, 2]), kv_indptr, indices, sm_scale=0.3)
    mask = torch.tensor([[True] * 5 + [False], [True] * 6])
    for h in range(2):
        want = naive(q[:, h], k_pool[indices.long(), 0], v_pool[indices.long(), 0], 0.3, mask)
        torch.testing.assert_close(out[:, h], want, atol=1e-5, rtol=1e-5)


def test_reference_sliding_window_sees_only_the_last_positions(gen):
    k_pool, v_pool = pool(gen, 20, 1, 8, torch.float32, "cpu")
    indptr, indices = ragged(gen, [9], 20, "cpu")
    slots = indices.long()
    q = torch.randn(1, 1, 8, generator=gen)
    out = decode_attention(q, k_pool, v_pool, indptr, indices, window=4)
    want = naive(q[0], k_pool[slots[5:], 0], v_pool[slots[5:], 0], 1 / math.sqrt(8), torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(out[0], want, atol=1e-5, rtol=1e-5)
    qe = torch.randn(3, 1, 8, generator=gen)  # positions 6, 7, 8 with window 2: keys {5,6}, {6,7}, {7,8}
    ext = extend_attention(qe, k_pool, v_pool, torch.tensor([0, 3]), indptr, indices, window=2)
    mask = torch.zeros(3, 9, dtype=torch.bool)
    for i, p in enumerate((6, 7, 8)):
        mask[i, p - 1 : p + 1] = True
    torch.testing.assert_close(ext[:, 0], naive(qe[:, 0], k_pool[slots, 0], v_pool[slots, 0], 1 / math.sqrt(8), mask),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("window", [1, 50])
def test_triton_sliding_window_matches_reference(triton_ready, device, gen, window):
    k_pool, v_pool = pool(gen, 300, 2, 32, torch.float32, device)
    n_kv, n_q = [5, 130, 3], [5, 70, 1]
    kv_indptr, indices = ragged(gen, n_kv, 300, device)
    qo_indptr = torch.tensor([0, *n_q]).cumsum(0).to(device)
    q = torch.randn(sum(n_q), 4, 32, generator=gen).to(device)
    want = extend_attention(q, k_pool, v_pool, qo_indptr, kv_indptr, indices, window=window, backend="torch")
    got = extend_attention(q, k_pool, v_pool, qo_indptr, kv_indptr, indices, window=window, backend=triton_ready)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    qd = torch.randn(3, 4, 32, generator=gen).to(device)
    want = decode_attention(qd, k_pool, v_pool, kv_indptr, indices, window=window, backend="torch")
    got = decode_attention(qd, k_pool, v_pool, kv_indptr, indices, window=window, backend=triton_ready, num_splits=2)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("num_splits", "merge", "block_n", "num_warps"),
                         [(None, "fused", None, None), (None, "kernel", None, None), (1, "fused", None, None),
                          (3, "fused", None, None), (3, "kernel", None, None), (16, "fused", 16, 2),
                          (5, "fused", 32, 1), (1, "fused", 16, 8)])
def test_triton_decode_matches_reference(triton_ready, device, gen, dtype, num_splits, merge, block_n, num_warps):
    k_pool, v_pool = pool(gen, 300, 2, 32, dtype, device)
    indptr, indices = ragged(gen, [5, 0, 130, 1], 300, device)
    q = torch.randn(4, 8, 32, generator=gen).to(dtype).to(device)
    want = decode_attention(q, k_pool, v_pool, indptr, indices, backend="torch")
    got = decode_attention(q, k_pool, v_pool, indptr, indices, backend=triton_ready, num_splits=num_splits,
                           merge=merge, block_n=block_n, num_warps=num_warps)
    assert got.dtype == dtype and got.shape == q.shape
    torch.testing.assert_close(got.float(), want.float(), atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize(("n_q_heads", "head_dim", "num_splits"),
                         [(8, 64, 16), (4, 128, 4), (6, 128, 16), (16, 128, 16), (2, 64, 1)])
def test_triton_decode_fused_merge_stays_right_over_repeated_launches(triton_ready, device, gen, n_q_heads, head_dim,
                                                                      num_splits):
    """The merge counters are reused between launches: each launch with fresh inputs must still be right."""
    for lens in ([1], [200, 3, 64], [65], [0, 129]):
        k_pool, v_pool = pool(gen, 400, 2, head_dim, torch.bfloat16, device)
        indptr, indices = ragged(gen, lens, 400, device)
        q = torch.randn(len(lens), n_q_heads, head_dim, generator=gen).to(torch.bfloat16).to(device)
        want = decode_attention(q, k_pool, v_pool, indptr, indices, backend="torch")
        got = decode_attention(q, k_pool, v_pool, indptr, indices, backend=triton_ready, num_splits=num_splits)
        torch.testing.assert_close(got.float(), want.float(), atol=TOL[torch.bfloat16], rtol=TOL[torch.bfloat16])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("n_q_heads", "head_dim", "num_splits", "merge", "window", "block_n"),
                         [(8, 64, None, "fused", None, None), (4, 128, 3, "kernel", None, None),
                          (2, 64, 1, "fused", 50, None), (6, 64, 4, "fused", 7, None), (8, 64, 16, "fused", None, 16)])
def test_triton_decode_with_rope_kv_matches_reference(triton_ready, device, gen, dtype, n_q_heads, head_dim,
                                                      num_splits, merge, window, block_n):
    """RoPE + KV write + attention in one launch = rope_kv_write then decode_attention (torch)."""
    lens = [5, 130, 1, 64]
    k_pool, v_pool = pool(gen, 300, 2, head_dim, dtype, device)
    indptr, indices = ragged(gen, lens, 300, device)
    out_slots = indices[indptr[1:].long() - 1].long()  # [B] each context's last slot
    k_pool[out_slots] = float("nan")  # stale rows: reading them instead of the new token gives NaN
    v_pool[out_slots] = float("nan")
    qkv = torch.randn(len(lens), (n_q_heads + 4) * head_dim, generator=gen).to(dtype).to(device)
    q, k, v = qkv.split((n_q_heads * head_dim, 2 * head_dim, 2 * head_dim), dim=1)
    q, k, v = q.view(-1, n_q_heads, head_dim), k.view(-1, 2, head_dim), v.view(-1, 2, head_dim)
    angles = torch.rand(512, head_dim // 2, generator=gen) * 6.3
    cos = torch.cat((angles, angles), -1).cos().to(dtype).to(device)
    sin = torch.cat((-angles, angles), -1).sin().to(dtype).to(device)
    positions = torch.tensor(lens, device=device) + 200  # RoPE positions need not equal context indices
    results = []
    for backend in ("torch", triton_ready):
        kp, vp = k_pool.clone(), v_pool.clone()
        out = decode_attention_rope_kv(q, k, v, cos, sin, positions, out_slots, kp, vp, indptr, indices,
                                       window=window, num_splits=num_splits, merge=merge, block_n=block_n,
                                       backend=backend)
        results.append((out, kp, vp))
    (want, want_k, want_v), (got, got_k, got_v) = results
    assert not got.isnan().any()
    torch.testing.assert_close(got.float(), want.float(), atol=TOL[dtype], rtol=TOL[dtype])
    torch.testing.assert_close(got_k[out_slots].float(), want_k[out_slots].float(), atol=TOL[dtype], rtol=TOL[dtype])
    assert torch.equal(got_v[out_slots], want_v[out_slots])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a race shows only on a GPU")
def test_fused_merge_equals_the_reduce_kernel_under_load(gen):
    """Many concurrent programs: the last-arriving split must see every partial (no stale reads)."""
    device = torch.device("cuda")
    for _ in range(20):
        lens = torch.randint(1, 1500, (8,), generator=gen).tolist()
        k_pool, v_pool = pool(gen, sum(lens) + 7, 8, 64, torch.float32, device)
        indptr, indices = ragged(gen, lens, sum(lens) + 7, device)
        q = torch.randn(8, 32, 64, generator=gen).to(device)
        want = decode_attention(q, k_pool, v_pool, indptr, indices, num_splits=16, merge="kernel")
        got = decode_attention(q, k_pool, v_pool, indptr, indices, num_splits=16, merge="fused")
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_extend_matches_reference(triton_ready, device, gen, dtype):
    k_pool, v_pool = pool(gen, 300, 2, 32, dtype, device)
    n_kv, n_q = [5, 0, 130, 3], [5, 0, 70, 1]  # no prefix, empty, prefix 60 over two query blocks, decode-like
    kv_indptr, indices = ragged(gen, n_kv, 300, device)
    qo_indptr = torch.tensor([0, *n_q]).cumsum(0).to(device)
    q = torch.randn(sum(n_q), 4, 32, generator=gen).to(dtype).to(device)
    want = extend_attention(q, k_pool, v_pool, qo_indptr, kv_indptr, indices, backend="torch")
    got = extend_attention(q, k_pool, v_pool, qo_indptr, kv_indptr, indices, backend=triton_ready)
    torch.testing.assert_close(got.float(), want.float(), atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_single_sequence_and_empty_batch(request, device, gen, backend):
    if backend == "triton":
        request.getfixturevalue("triton_ready")
    k_pool, v_pool = pool(gen, 40, 1, 16, torch.float32, device)
    indptr, indices = ragged(gen, [17], 40, device)
    q = torch.randn(1, 1, 16, generator=gen).to(device)
    out = decode_attention(q, k_pool, v_pool, indptr, indices, backend=backend)
    slots = indices.long()
    want = naive(q[0], k_pool[slots, 0], v_pool[slots, 0], 0.25, torch.ones(1, 17, dtype=torch.bool, device=device))
    torch.testing.assert_close(out[0], want, atol=1e-4, rtol=1e-4)
    empty = decode_attention(q[:0], k_pool, v_pool, indptr[:1], indices[:0], backend=backend)
    assert empty.shape == (0, 1, 16)


def test_invalid_inputs_raise_typed_errors(gen):
    k_pool, v_pool = pool(gen, 10, 2, 8, torch.float32, "cpu")
    indptr, indices = ragged(gen, [3], 10, "cpu")
    with pytest.raises(ValueError, match="multiple of KV heads"):
        decode_attention(torch.zeros(1, 3, 8), k_pool, v_pool, indptr, indices)
    with pytest.raises(TypeError, match="k_pool must have dtype torch.bfloat16"):
        decode_attention(torch.zeros(1, 2, 8, dtype=torch.bfloat16), k_pool, v_pool, indptr, indices)
    with pytest.raises(ValueError, match="kv_indptr has 2 rows but q"):
        decode_attention(torch.zeros(2, 2, 8), k_pool, v_pool, indptr, indices)
    with pytest.raises(ValueError, match="head_dim"):
        decode_attention(torch.zeros(1, 2, 4), k_pool, v_pool, indptr, indices)
    with pytest.raises(ValueError, match="window must be a positive"):
        decode_attention(torch.zeros(1, 2, 8), k_pool, v_pool, indptr, indices, window=0)
    with pytest.raises(ValueError, match="unknown merge"):
        decode_attention(torch.zeros(1, 2, 8), k_pool, v_pool, indptr, indices, merge="atomic")
    with pytest.raises(ValueError, match="block_n must be a power of two"):
        decode_attention(torch.zeros(1, 2, 8), k_pool, v_pool, indptr, indices, block_n=24)
    with pytest.raises(ValueError, match="num_warps must be"):
        decode_attention(torch.zeros(1, 2, 8), k_pool, v_pool, indptr, indices, num_warps=3)
    with pytest.raises(ValueError, match="only 3 KV slots"):
        extend_attention(torch.zeros(4, 2, 8), k_pool, v_pool, torch.tensor([0, 4]), indptr, indices)
