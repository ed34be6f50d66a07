"""rope_kv_write: the reference is the model's rotary + KV write; Triton matches it; validation."""

from __future__ import annotations

import pytest
import torch

from structgen.kernels import rope_kv_write

TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2}


def table(gen, n_pos, head_dim, dtype, device):
    """cos/sin ``[P, D]`` of random angles, halves duplicated and sin's first half negated."""
    angles = torch.rand(n_pos, head_dim // 2, generator=gen) * 6.3
    emb = torch.cat((angles, angles), dim=-1)  # [P, D]
    sin = emb.sin()
    sin[:, : head_dim // 2].neg_()
    return emb.cos().to(dtype).to(device), sin.to(dtype).to(device)


def fused_qkv(gen, n, n_q_heads, n_kv_heads, head_dim, dtype, device):
    """q, k, v as the non-contiguous views of one ``[T, (Hq + 2 Hkv) * D]`` projection output."""
    qkv = torch.randn(n, (n_q_heads + 2 * n_kv_heads) * head_dim, generator=gen).to(dtype).to(device)
    q_size, kv_size = n_q_heads * head_dim, n_kv_heads * head_dim
    q = qkv[:, :q_size].view(n, n_q_heads, head_dim)
    k = qkv[:, q_size : q_size + kv_size].view(n, n_kv_heads, head_dim)
    v = qkv[:, q_size + kv_size :].view(n, n_kv_heads, head_dim)
    return q, k, v


def rotate_half(x, cos, sin):
    """HF's ``x * cos + rotate_half(x) * sin`` in float64, with the un-negated sin of angles."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def test_reference_rotates_by_the_position_and_writes_the_slots(gen):
    head_dim, n_pos = 8, 16
    cos, sin = table(gen, n_pos, head_dim, torch.float32, "cpu")
    q, k, v = fused_qkv(gen, 3, 4, 2, head_dim, torch.float32, "cpu")
    positions, slots = torch.tensor([5, 0, 15]), torch.tensor([7, 2, 9])
    k_pool, v_pool = torch.randn(10, 2, head_dim, generator=gen), torch.randn(10, 2, head_dim, generator=gen)
    untouched = k_pool.clone()
    got_q = rope_kv_write(q, k, v, cos, sin, positions, slots, k_pool, v_pool)
    hf_sin = sin.clone()
    hf_sin[:, : head_dim // 2].neg_()  # back to the plain sin of the angles
    c, s = cos[positions].unsqueeze(1).double(), hf_sin[positions].unsqueeze(1).double()
    torch.testing.assert_close(got_q.double(), rotate_half(q.double(), c, s))
    torch.testing.assert_close(k_pool[slots].double(), rotate_half(k.double(), c, s))
    torch.testing.assert_close(v_pool[slots], v)
    others = [i for i in range(10) if i not in slots.tolist()]
    assert torch.equal(k_pool[others], untouched[others])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("n_q_heads", "n_kv_heads", "head_dim"), [(4, 2, 64), (8, 1, 128), (6, 6, 64), (3, 1, 48)])
def test_triton_matches_reference(triton_ready, device, gen, dtype, n_q_heads, n_kv_heads, head_dim):
    n, n_slots = 5, 40
    cos, sin = table(gen, 64, head_dim, dtype, device)
    q, k, v = fused_qkv(gen, n, n_q_heads, n_kv_heads, head_dim, dtype, device)
    positions = torch.randint(0, 64, (n,), generator=gen).to(device)
    slots = torch.randperm(n_slots, generator=gen)[:n].to(torch.int32).to(device)
    poison = torch.full((n_slots, n_kv_heads, head_dim), float("nan"), dtype=dtype, device=device)
    pools = {name: (poison.clone(), poison.clone()) for name in ("torch", "triton")}
    want = rope_kv_write(q, k, v, cos, sin, positions, slots, *pools["torch"], backend="torch")
    got = rope_kv_write(q, k, v, cos, sin, positions, slots, *pools["triton"], backend=triton_ready)
    assert got.shape == q.shape and got.dtype == dtype and got.is_contiguous()
    tol = TOL[dtype]
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)
    (k_want, v_want), (k_got, v_got), rows = pools["torch"], pools["triton"], slots.long()
    torch.testing.assert_close(k_got[rows].float(), k_want[rows].float(), atol=tol, rtol=tol)
    assert torch.equal(v_got[rows], v_want[rows])  # values are copied, not recomputed
    others = torch.ones(n_slots, dtype=torch.bool, device=device)
    others[rows] = False
    assert k_got[others].isnan().all() and v_got[others].isnan().all()  # no other pool row written


def test_triton_accepts_contiguous_inputs_and_an_empty_batch(triton_ready, device, gen):
    cos, sin = table(gen, 8, 16, torch.float32, device)
    q, k, v = (t.contiguous() for t in fused_qkv(gen, 2, 2, 1, 16, torch.float32, device))
    k_pool, v_pool = torch.zeros(4, 1, 16, device=device), torch.zeros(4, 1, 16, device=device)
    pos, slots = torch.tensor([3, 7], device=device), torch.tensor([1, 0], device=device)
    want = rope_kv_write(q, k, v, cos, sin, pos, slots, k_pool.clone(), v_pool.clone(), backend="torch")
    got = rope_kv_write(q, k, v, cos, sin, pos, slots, k_pool, v_pool, backend=triton_ready)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    empty = rope_kv_write(q[:0], k[:0], v[:0], cos, sin, pos[:0], slots[:0], k_pool, v_pool, backend=triton_ready)
    assert empty.shape == (0, 2, 16)


def test_invalid_inputs_raise_typed_errors(gen):
    cos, sin = table(gen, 8, 8, torch.float32, "cpu")
    q, k, v = fused_qkv(gen, 2, 2, 1, 8, torch.float32, "cpu")
    pools = torch.zeros(4, 1, 8), torch.zeros(4, 1, 8)
    pos, slots = torch.tensor([0, 1]), torch.tensor([2, 3])
    with pytest.raises(TypeError, match="cos must have dtype torch.float32"):
        rope_kv_write(q, k, v, cos.bfloat16(), sin, pos, slots, *pools)
    with pytest.raises(TypeError, match="positions must have dtype"):
        rope_kv_write(q, k, v, cos, sin, pos.float(), slots, *pools)
    with pytest.raises(ValueError, match="out_slots has 1 rows but q has 2"):
        rope_kv_write(q, k, v, cos, sin, pos, slots[:1], *pools)
    with pytest.raises(ValueError, match="k_pool must be"):
        rope_kv_write(q, k, v, cos, sin, pos, slots, torch.zeros(4, 2, 8), pools[1])
    with pytest.raises(ValueError, match="even"):
        rope_kv_write(q[..., :7], k[..., :7], v[..., :7], cos[:, :7], sin[:, :7], pos, slots,
                      torch.zeros(4, 1, 7), torch.zeros(4, 1, 7))
    with pytest.raises(ValueError, match="contiguous in its last dimension"):
        rope_kv_write(q.transpose(1, 2), k, v, cos, sin, pos, slots, *pools)
    with pytest.raises(ValueError, match="unknown kernel backend"):
        rope_kv_write(q, k, v, cos, sin, pos, slots, *pools, backend="cuda")
