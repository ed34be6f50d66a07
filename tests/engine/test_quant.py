"""4-bit projection weights (models/quant.py): exact detection, kernel vs dense math, loading."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from structgen.engine.loader import load_model
from structgen.engine.model_runner import ForwardBatch
from structgen.engine.models.quant import DENSE_MIN_ROWS, GROUP, Int4Weight, int4_supported
from structgen.errors import ModelLoadError

needs_int4 = pytest.mark.skipif(not int4_supported(), reason="needs PyTorch's CPU int4 kernel and native bfloat16")


def q4_1(w: torch.Tensor) -> torch.Tensor:
    """``w`` rounded to the GGUF Q4_1 grid (per 32 inputs: min offset, (max-min)/15 step, fp16 scales)."""
    n, k = w.shape
    g = w.reshape(n, k // GROUP, GROUP)
    lo = g.amin(-1, keepdim=True).half().float()
    step = ((g.amax(-1, keepdim=True) - lo) / 15).half().float()
    q = torch.round((g - lo) / step).clamp(0, 15)
    return (q * step + lo).reshape(n, k)


@needs_int4
def test_exactly_quantised_matrix_packs_and_multiplies_like_its_dense_form():
    torch.manual_seed(0)
    w = q4_1(torch.randn(96, 128) * 0.05)
    packed = Int4Weight.from_dense(w)
    assert packed is not None and packed.shape == (96, 128)
    # what the kernel multiplies by: w up to the bfloat16 rounding of the scales
    assert (packed.dequantize() - w).abs().max() <= 2**-7 * w.abs().max()
    for rows in (1, 7, DENSE_MIN_ROWS + 3):  # the kernel path and the dense (prefill) path
        x = torch.randn(rows, 128).bfloat16()
        ref = x.float() @ w.t()
        got = packed.matmul(x).float()
        assert got.shape == (rows, 96)
        assert (got - ref).abs().max() <= 0.02 * ref.abs().max()


@needs_int4
def test_matrices_that_are_not_4_bit_are_left_alone():
    torch.manual_seed(0)
    w = torch.randn(64, 128)
    assert Int4Weight.from_dense(w) is None  # arbitrary floats
    near = q4_1(w)
    near[3, 5] += 0.1 * (near[3, 0:32].amax() - near[3, 0:32].amin()) / 15  # one weight off the grid
    assert Int4Weight.from_dense(near) is None
    assert Int4Weight.from_dense(q4_1(w)[:, :80].contiguous()) is None  # in % GROUP != 0
    assert Int4Weight.from_dense(q4_1(w).double()) is None  # only float32 sources


def tiny_llama(layers: int):
    """A random tiny Llama (hidden 64: two Q4_1 groups per row)."""
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
    )  # fmt: skip
    return transformers.LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def quantised_folder(tmp_path_factory):
    """A tiny Llama whose projections are on the Q4_1 grid (like a dequantised GGUF)."""
    model = tiny_llama(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("proj.weight"):
                p.copy_(q4_1(p.float()))
    folder = tmp_path_factory.mktemp("q4")
    model.save_pretrained(folder)
    return folder


@needs_int4
def test_auto_keeps_4_bit_weights_on_cpu_bfloat16_and_tracks_float32(quantised_folder):
    ref = load_model(quantised_folder, device="cpu", dtype="float32")
    ours = load_model(quantised_folder, device="cpu", dtype="bfloat16")  # quantization="auto"
    assert isinstance(ours.model.weights.layers[0].w_qkv, Int4Weight)
    assert isinstance(ours.model.weights.layers[1].w_down, Int4Weight)
    assert not isinstance(ref.model.weights.layers[0].w_qkv, Int4Weight)
    dense = load_model(quantised_folder, device="cpu", dtype="bfloat16", quantization="none")
    assert not isinstance(dense.model.weights.layers[0].w_qkv, Int4Weight)
    tokens = [(7 * i + 3) % 96 for i in range(12)]
    outs = []
    for runner in (ref, ours):
        pool = runner.new_kv_pool(32)
        s = pool.alloc(len(tokens))
        outs.append(runner.forward(ForwardBatch.build([(tokens, 0, s, s)], all_logits=True), pool))
    a, b = outs
    assert (a - b).abs().max() <= 0.05 * a.abs().max()
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.8


def test_quantization_option_errors(tmp_path, quantised_folder):
    with pytest.raises(ModelLoadError, match="unknown quantization"):
        load_model(quantised_folder, device="cpu", quantization="int3")
    with pytest.raises(ModelLoadError, match="int4"):
        load_model(quantised_folder, device="cpu", dtype="float32", quantization="int4")


@needs_int4
def test_int4_request_on_dense_weights_says_so(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dense")
    tiny_llama(1).save_pretrained(folder)
    with pytest.raises(ModelLoadError, match="not 4-bit"):
        load_model(folder, device="cpu", dtype="bfloat16", quantization="int4")
    runner = load_model(folder, device="cpu", dtype="bfloat16")  # auto: dense, no error
    assert not isinstance(runner.model.weights.layers[0].w_qkv, Int4Weight)
