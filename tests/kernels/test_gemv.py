"""gemv: the reference is F.linear; Triton matches a float64 product (interpreted on CPU, native on GPU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from structgen.errors import KernelDtypeError, KernelInputError
from structgen.kernels import gemv
from structgen.kernels.gemv import (
    GEMV_MAX_ROWS,
    GemvConfig,
    gemv_norm,
    gemv_torch,
    gemv_triton,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def operands(gen, m, n, k, dtype, device, *, bias=False, gated=False):
    """x ``[m, k]`` (``[m, 2k]`` when gated), w ``[n, k]``, b ``[n]`` or None, scaled so outputs are O(1)."""
    x = torch.randn(m, 2 * k if gated else k, generator=gen)
    w = torch.randn(n, k, generator=gen) / k**0.5
    b = torch.randn(n, generator=gen) if bias else None
    cast = lambda t: None if t is None else t.to(dtype).to(device)
    return cast(x), cast(w), cast(b)


def exact(x, w, b, gated):
    """float64 ``act(x) @ w.T + b`` of the (already rounded) operands; the activation in float64 too."""
    x, w = x.double().cpu(), w.double().cpu()
    if gated:
        gate, up = x.chunk(2, dim=-1)
        x = F.silu(gate) * up
    y = x @ w.T
    return y if b is None else y + b.double().cpu()


def assert_close(y, ref, tol):
    err = (y.double().cpu() - ref).abs().max().item()
    assert err <= tol * max(1.0, ref.abs().max().item()), f"max error {err}"


def test_reference_is_linear_and_gated_reference_applies_silu_mul(gen):
    x, w, b = operands(gen, 3, 5, 8, torch.float64, "cpu", bias=True, gated=True)
    gate, up = x[:, :8], x[:, 8:]
    want = (gate * torch.sigmoid(gate) * up) @ w.T + b
    torch.testing.assert_close(gemv_torch(x, w, b, gated=True), want)
    torch.testing.assert_close(gemv_torch(gate, w, b), gate @ w.T + b)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize(("n", "k"), [(37, 200), (64, 512), (9, 1030)])
@pytest.mark.parametrize("bias", [False, True])
def test_triton_matches_exact_product(triton_ready, device, gen, m, n, k, bias):
    """N and K off the block sizes, every row count; fp32 operands, so only accumulation order differs."""
    x, w, b = operands(gen, m, n, k, torch.float32, device, bias=bias)
    assert_close(gemv(x, w, b, backend=triton_ready), exact(x, w, b, False), 1e-5)


@pytest.mark.parametrize("config", [GemvConfig(4, 64, 1, 4), GemvConfig(8, 64, 3, 4), GemvConfig(2, 128, 2, 2),
                                    GemvConfig(4, 64, 1, 4, 2), GemvConfig(2, 32, 3, 2, 2)])
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("k", [300, 256])
def test_triton_split_k_and_gated_match_exact_product(triton_ready, device, gen, config, gated, k):
    """Split-K partial sums (including a last split shorter than the others), unrolled loads, the fused
    activation; K off and on the loop step."""
    x, w, b = operands(gen, 3, 21, k, torch.float32, device, bias=True, gated=gated)
    y = gemv_triton(x, w, b, gated=gated, config=config)
    assert_close(y, exact(x, w, b, gated), 1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_triton_half_precision_rounds_once(triton_ready, device, gen, dtype):
    """16-bit operands, fp32 accumulation: one rounding of the output, so within 2 ulps of the exact sum."""
    x, w, b = operands(gen, 2, 40, 640, dtype, device, bias=True)
    y = gemv(x, w, b, backend=triton_ready)
    assert y.dtype == dtype and y.shape == (2, 40)
    ulp = 2.0**-7 if dtype == torch.bfloat16 else 2.0**-10
    ref = exact(x, w, b, False)
    assert ((y.double().cpu() - ref).abs() <= 2 * ulp * ref.abs().clamp_min(1e-3)).all()


def test_rows_beyond_the_bound_use_the_reference(triton_ready, device, gen):
    x, w, _ = operands(gen, GEMV_MAX_ROWS + 3, 16, 32, torch.float32, device)
    assert_close(gemv(x, w, backend=triton_ready), exact(x, w, None, False), 1e-5)
    with pytest.raises(KernelInputError, match="at most"):
        gemv_triton(x, w)


def test_empty_inputs(triton_ready, device, gen):
    x, w, b = operands(gen, 2, 5, 0, torch.float32, device, bias=True)
    torch.testing.assert_close(gemv(x, w, b, backend=triton_ready), b.expand(2, 5))
    x, w, _ = operands(gen, 0, 5, 8, torch.float32, device)
    assert gemv(x, w, backend=triton_ready).shape == (0, 5)


def test_validation(gen):
    x, w, b = operands(gen, 2, 6, 8, torch.float32, "cpu", bias=True)
    with pytest.raises(KernelDtypeError, match="dtype"):
        gemv(x, w.double())
    with pytest.raises(KernelDtypeError, match="torch.Tensor"):
        gemv(x.tolist(), w)
    with pytest.raises(KernelInputError, match="columns"):
        gemv(x[:, :7], w)
    with pytest.raises(KernelInputError, match="gate then up"):
        gemv(x, w, gated=True)
    with pytest.raises(KernelInputError, match="contiguous"):
        gemv(x[:, :6], w.T)
    with pytest.raises(KernelInputError, match=r"\[6\]"):
        gemv(x, w, b[:5])
    with pytest.raises(KernelInputError, match="dimensions"):
        gemv(x[0], w)
    with pytest.raises(KernelInputError, match="unknown kernel backend"):
        gemv(x, w, backend="cuda")


LLAMA_1B_SHAPES = {"qkv": (3072, 2048), "o": (2048, 2048), "gate_up": (16384, 2048), "down": (2048, 8192),
                   "lm_head": (128256, 2048)}


@needs_cuda
@pytest.mark.parametrize("m", [1, 2, 4])
@pytest.mark.parametrize("name", list(LLAMA_1B_SHAPES))
def test_native_llama_shapes_match_cublas(gen, m, name):
    """bf16 at the Llama-3.2-1B projection shapes: as close to the exact product as cuBLAS is."""
    n, k = LLAMA_1B_SHAPES[name]
    gated = name == "down"
    x, w, _ = operands(gen, m, n, k, torch.bfloat16, "cuda", gated=gated)
    y = gemv(x, w, gated=gated)
    ref = exact(x, w, None, gated)
    err = (y.double().cpu() - ref).abs().max().item()
    cublas = (gemv_torch(x, w, gated=gated).double().cpu() - ref).abs().max().item()
    assert err <= max(1.5 * cublas, 1e-2), f"{name}: gemv error {err}, cuBLAS {cublas}"


@pytest.mark.parametrize("architecture", ["LlamaForCausalLM", "Qwen2ForCausalLM"])
@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("fused_norm", [False, True])
def test_decode_hidden_and_logits_with_gemv_match_the_torch_path(triton_ready, device, monkeypatch, architecture,
                                                                 batch, fused_norm):
    """DecodeKernels(gemv=True): projections (biases for Qwen2), fused MLP activation and LM head through
    gemv at batch 1 and 2, with ``fused_norm`` (up to GEMV_NORM_ROWS rows) the input norms (the first
    layer's without an add) and the final norm inside gemv_norm; batch 3 is over GEMV_DECODE_ROWS and
    keeps linear. All equal the torch path."""
    from structgen import kernels
    from structgen.engine.kv_cache import KVPool
    from structgen.engine.models.config import ModelConfig
    from structgen.engine.models.decoder import GEMV_NORM_ROWS, DecoderModel
    from structgen.engine.models.weights import random_weights

    normed_calls = []
    monkeypatch.setattr(kernels, "gemv_norm", lambda *a, **kw: normed_calls.append(1) or gemv_norm(*a, **kw))

    cfg = ModelConfig.from_hf({"architectures": [architecture], "vocab_size": 300, "hidden_size": 64,
                               "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
                               "num_key_value_heads": 2, "head_dim": 16, "rope_theta": 10000.0,
                               "max_position_embeddings": 512, "rms_norm_eps": 1e-6})
    weights = random_weights(cfg, device, torch.float32, seed=5)
    if weights.transposed:  # CPU float32 stores [in, out]; gemv takes the [out, in] layout of CUDA
        for lw in weights.layers:
            for name in ("w_qkv", "w_o", "w_gate_up", "w_down"):
                setattr(lw, name, getattr(lw, name).t().contiguous())
        weights.lm_head, weights.transposed = weights.lm_head.t().contiguous(), False
    model = DecoderModel(cfg, weights, device, torch.float32)
    lens = [3, 40, 1, 25, 7, 9][:batch]  # context lengths, the new token last
    ctx = torch.randperm(100)[: sum(lens)].to(torch.int32).to(device)  # [nnz] slots
    indptr = torch.tensor([0, *lens]).cumsum(0).to(torch.int32).to(device)  # [B + 1]
    out_slots = ctx[indptr[1:].long() - 1].long()  # [B]
    positions = torch.tensor(lens, device=device) - 1  # [B]
    ids = torch.tensor([5, 17, 260, 99, 1, 2][:batch], device=device)
    results = []
    for gemv_on, backend in ((False, "torch"), (True, triton_ready)):
        model.decode_kernels.gemv = gemv_on
        model.decode_kernels.fused_norm = fused_norm and gemv_on
        pool = KVPool(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, 100, torch.float32, device)
        for cache in (*pool.k, *pool.v):
            cache.copy_(torch.randn(cache.shape, generator=torch.Generator().manual_seed(9)))
        hidden = model.decode_hidden(ids, positions, out_slots, indptr, ctx, pool, backend)  # [B, hidden]
        results.append((hidden, model.logits(hidden, backend), pool.k[1].clone()))
    (want, want_logits, want_k), (got, got_logits, got_k) = results
    assert len(normed_calls) == (2 * cfg.num_layers + 1 if fused_norm and batch <= GEMV_NORM_ROWS else 0)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_logits, want_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_k, want_k, atol=1e-4, rtol=1e-4)
