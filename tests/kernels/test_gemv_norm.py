"""gemv_norm: the reference is add + F.rms_norm + F.linear; Triton matches a float64 computation of the
same (interpreted on CPU, native on GPU) and writes the residual ``x + delta`` exactly as the add does."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from structgen.errors import KernelDtypeError, KernelInputError
from structgen.kernels import gemv_norm
from structgen.kernels.gemv import (
    GEMV_MAX_ROWS,
    GemvConfig,
    gemv_norm_torch,
    gemv_norm_triton,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
EPS = 1e-5


def operands(gen, m, n, k, dtype, device, *, bias=False):
    """x, delta ``[m, k]``, ln ``[k]`` around 1, w ``[n, k]``, b ``[n]`` or None (outputs O(1))."""
    x = torch.randn(m, k, generator=gen) * 3
    delta = torch.randn(m, k, generator=gen)
    ln = 1 + 0.2 * torch.randn(k, generator=gen)
    w = torch.randn(n, k, generator=gen) / k**0.5
    b = torch.randn(n, generator=gen) if bias else None
    cast = lambda t: None if t is None else t.to(dtype).to(device)
    return cast(x), cast(delta), cast(ln), cast(w), cast(b)


def exact(r, ln, w, b):
    """float64 ``rms_norm(r) * ln @ w.T + b`` of the residual ``r`` (already rounded to its dtype)."""
    r, ln, w = r.double().cpu(), ln.double().cpu(), w.double().cpu()
    h = r * torch.rsqrt(r.pow(2).mean(-1, keepdim=True) + EPS) * ln
    y = h @ w.T
    return y if b is None else y + b.double().cpu()


def assert_close(y, ref, tol):
    err = (y.double().cpu() - ref).abs().max().item()
    assert err <= tol * max(1.0, ref.abs().max().item()), f"max error {err}"


def test_reference_is_add_rms_norm_linear(gen):
    x, delta, ln, w, b = operands(gen, 3, 5, 8, torch.float64, "cpu", bias=True)
    r, y = gemv_norm_torch(x, w, b, ln=ln, eps=EPS, delta=delta)
    torch.testing.assert_close(r, x + delta)
    torch.testing.assert_close(y, exact(x + delta, ln, w, b))
    x, _, ln, w, b = operands(gen, 3, 5, 8, torch.float32, "cpu", bias=True)
    r, y = gemv_norm(x, w, b, ln=ln, eps=EPS, backend="torch")
    assert r is x
    torch.testing.assert_close(y, F.linear(F.rms_norm(x, (8,), ln, EPS), w, b))


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize(("n", "k"), [(37, 200), (64, 512), (9, 1030), (3, 4100)])
@pytest.mark.parametrize("with_delta", [True, False])
@pytest.mark.parametrize("bias", [False, True])
def test_triton_matches_exact(triton_ready, device, gen, m, n, k, with_delta, bias):
    """N and K off the block sizes (K = 4100: the sum of squares over two steps), every row count, with
    and without the residual add (fp32)."""
    x, delta, ln, w, b = operands(gen, m, n, k, torch.float32, device, bias=bias)
    delta = delta if with_delta else None
    r, y = gemv_norm(x, w, b, ln=ln, eps=EPS, delta=delta, backend=triton_ready)
    want_r = x if delta is None else x + delta
    assert torch.equal(r, want_r)  # fp32: one rounding of the add in both
    assert_close(y, exact(want_r, ln, w, b), 1e-5)


@pytest.mark.parametrize("config", [GemvConfig(4, 64, 1, 4), GemvConfig(8, 64, 3, 4), GemvConfig(2, 128, 2, 2),
                                    GemvConfig(4, 64, 1, 4, 2), GemvConfig(2, 32, 3, 2, 2)])
@pytest.mark.parametrize("k", [300, 256, 40])
@pytest.mark.parametrize("prefetch", [True, False])
def test_triton_split_k_and_unroll(triton_ready, device, gen, config, k, prefetch):
    """Split-K (every split normalises with the whole row's RMS), unrolled loads, K off and on the loop
    step (40: one partial step), the first step's weights loaded before or after the norm pass."""
    x, delta, ln, w, b = operands(gen, 2, 21, k, torch.float32, device, bias=True)
    r, y = gemv_norm_triton(x, w, b, ln=ln, eps=EPS, delta=delta, config=config, prefetch=prefetch)
    assert torch.equal(r, x + delta)
    assert_close(y, exact(x + delta, ln, w, b), 1e-5)


@pytest.mark.parametrize("m", [1, 2])
def test_residual_is_a_new_tensor_and_inputs_untouched(triton_ready, device, gen, m):
    """Many programs along N and K (8 x 3 grid; program (0, 0) alone stores the residual): the residual
    is right in every column, a fresh contiguous tensor (so no program can read a half-updated x), and
    x and delta are unchanged. Strided input rows (x and delta are column slices) check the row strides.
    """
    x, delta, ln, w, _ = operands(gen, m, 29, 2 * 150, torch.float32, device)
    x, delta = x[:, :150], delta[:, 150:]  # [m, 150] views with row stride 300
    x0, d0 = x.clone(), delta.clone()
    r, y = gemv_norm_triton(x[:, :150], w[:, :150].contiguous(), ln=ln[:150], eps=EPS, delta=delta,
                            config=GemvConfig(4, 32, 3, 2))
    assert r.shape == (m, 150) and r.is_contiguous()
    assert r.data_ptr() not in (x.data_ptr(), delta.data_ptr())
    assert torch.equal(r, x0 + d0) and torch.equal(x, x0) and torch.equal(delta, d0)
    assert_close(y, exact(x0 + d0, ln[:150], w[:, :150], None), 1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m", [1, 2])
def test_triton_half_precision_matches_the_unfused_ops(triton_ready, device, gen, dtype, m):
    """16-bit: the residual is the add's (bit-exact natively; the CPU interpreter's bf16 rounding is off
    by up to one ulp), and the output is as close to the exact value as the unfused ops' output."""
    x, delta, ln, w, b = operands(gen, m, 40, 640, dtype, device, bias=True)
    r, y = gemv_norm(x, w, b, ln=ln, eps=EPS, delta=delta, backend=triton_ready)
    want_r, want_y = gemv_norm_torch(x, w, b, ln=ln, eps=EPS, delta=delta)
    assert r.dtype == y.dtype == dtype and y.shape == (m, 40)
    if device.type == "cuda" or dtype == torch.float16:
        assert torch.equal(r, want_r)
    else:
        ulp = 2.0**-7 * want_r.float().abs()
        assert ((r.float() - want_r.float()).abs() <= ulp).all()
    ref = exact(want_r, ln, w, b)
    unfused = (want_y.double().cpu() - ref).abs().max().item()
    ulp = 2.0**-7 if dtype == torch.bfloat16 else 2.0**-10
    assert (y.double().cpu() - ref).abs().max().item() <= max(1.5 * unfused, 4 * ulp * ref.abs().max().item())


def test_rows_beyond_the_bound_use_the_reference(triton_ready, device, gen):
    x, delta, ln, w, _ = operands(gen, GEMV_MAX_ROWS + 2, 16, 32, torch.float32, device)
    r, y = gemv_norm(x, w, ln=ln, eps=EPS, delta=delta, backend=triton_ready)
    assert torch.equal(r, x + delta)
    assert_close(y, exact(x + delta, ln, w, None), 1e-5)
    with pytest.raises(KernelInputError, match="at most"):
        gemv_norm_triton(x, w, ln=ln, eps=EPS)


def test_empty_inputs(triton_ready, device, gen):
    x, delta, ln, w, b = operands(gen, 2, 5, 0, torch.float32, device, bias=True)
    r, y = gemv_norm(x, w, b, ln=ln, eps=EPS, delta=delta, backend=triton_ready)
    assert r.shape == (2, 0)
    torch.testing.assert_close(y, b.expand(2, 5))
    x, delta, ln, w, _ = operands(gen, 0, 5, 8, torch.float32, device)
    r, y = gemv_norm(x, w, ln=ln, eps=EPS, delta=delta, backend=triton_ready)
    assert r.shape == (0, 8) and y.shape == (0, 5)


def test_validation(gen):
    x, delta, ln, w, _ = operands(gen, 2, 6, 8, torch.float32, "cpu")
    with pytest.raises(KernelDtypeError, match="dtype"):
        gemv_norm(x, w, ln=ln.double(), eps=EPS)
    with pytest.raises(KernelDtypeError, match="dtype"):
        gemv_norm(x, w, ln=ln, eps=EPS, delta=delta.half())
    with pytest.raises(KernelDtypeError, match="torch.Tensor"):
        gemv_norm(x, w, ln=ln.tolist(), eps=EPS)
    with pytest.raises(KernelInputError, match=r"ln must be a contiguous \[8\]"):
        gemv_norm(x, w, ln=ln[:7], eps=EPS)
    with pytest.raises(KernelInputError, match="delta"):
        gemv_norm(x, w, ln=ln, eps=EPS, delta=delta[:1])
    with pytest.raises(KernelInputError, match="eps"):
        gemv_norm(x, w, ln=ln, eps=-1.0)
    with pytest.raises(KernelInputError, match="eps"):
        gemv_norm(x, w, ln=ln, eps=float("nan"))
    with pytest.raises(KernelInputError, match="columns"):
        gemv_norm(x[:, :7], w, ln=ln[:7], eps=EPS)
    with pytest.raises(KernelInputError, match="unknown kernel backend"):
        gemv_norm(x, w, ln=ln, eps=EPS, backend="cuda")


LLAMA_1B_SHAPES = {"qkv": (3072, 2048), "gate_up": (16384, 2048), "lm_head": (128256, 2048)}


@needs_cuda
@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("name", list(LLAMA_1B_SHAPES))
@pytest.mark.parametrize("with_delta", [True, False])
def test_native_llama_shapes_match_the_unfused_ops(gen, m, name, with_delta):
    """bf16 at the Llama-3.2-1B shapes of the normed projections: the same residual, and as close to the
    exact value as add + RMSNorm + cuBLAS."""
    n, k = LLAMA_1B_SHAPES[name]
    x, delta, ln, w, _ = operands(gen, m, n, k, torch.bfloat16, "cuda")
    delta = delta if with_delta else None
    r, y = gemv_norm(x, w, ln=ln, eps=EPS, delta=delta)
    want_r, want_y = gemv_norm_torch(x, w, ln=ln, eps=EPS, delta=delta)
    assert torch.equal(r, want_r)
    ref = exact(want_r, ln, w, None)
    err = (y.double().cpu() - ref).abs().max().item()
    unfused = (want_y.double().cpu() - ref).abs().max().item()
    assert err <= max(1.5 * unfused, 1e-2), f"{name}: gemv_norm error {err}, unfused {unfused}"
