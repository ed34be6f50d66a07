"""Hugging Face checkpoint tensors → our fused, contiguous per-layer weights.

At load time q/k/v projections are concatenated into one ``[q + 2*kv, hidden]`` matrix and
gate/up into one ``[2*intermediate, hidden]`` matrix, so a layer runs two input matmuls instead
of five. Every tensor is converted to the model dtype and moved to the device once.

On the CPU in float32 the projection matrices are then stored transposed (``[in, out]``,
contiguous) and applied as ``x @ w``: for the few-row matmuls of decoding, CPU BLAS runs that
layout up to twice as fast as ``F.linear``'s ``x @ w.T``. In bfloat16/float16 the CPU kernels
favour the stored ``[out, in]`` layout instead (the LM head twice as fast), so it is kept.
``linear(x, w, b, transposed)`` hides the layout.

With ``int4=True`` (CPU, bfloat16), a projection whose float32 values are exactly 4-bit group
quantised (a dequantised GGUF ``Q4_1`` checkpoint) is kept as an ``Int4Weight`` (``quant.py``);
``linear`` dispatches on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...errors import ModelLoadError
from .config import ModelConfig
from .quant import Int4Weight

GetTensor = Callable[[str], torch.Tensor]


@dataclass
class LayerWeights:
    """One decoder layer. Optional entries are None when the architecture has no such tensor."""

    ln1: torch.Tensor  # [hidden]
    w_qkv: torch.Tensor | Int4Weight  # [q + 2*kv, hidden] (projections may be Int4Weight: see build_weights)
    b_qkv: torch.Tensor | None  # [q + 2*kv]
    q_norm: torch.Tensor | None  # [head_dim]
    k_norm: torch.Tensor | None  # [head_dim]
    w_o: torch.Tensor  # [hidden, q]
    b_o: torch.Tensor | None  # [hidden]
    ln2: torch.Tensor  # [hidden]
    w_gate_up: torch.Tensor  # [2*inter, hidden]
    b_gate_up: torch.Tensor | None  # [2*inter]
    w_down: torch.Tensor  # [hidden, inter]
    b_down: torch.Tensor | None  # [hidden]


@dataclass
class ModelWeights:
    """All tensors of a model. ``lm_head`` is ``embed`` itself when tied and not transposed.

    When ``transposed``, every projection (``w_*``, ``lm_head``) is stored ``[in, out]``.
    """

    embed: torch.Tensor  # [vocab, hidden]
    layers: list[LayerWeights]
    norm: torch.Tensor  # [hidden]
    lm_head: torch.Tensor  # [vocab, hidden], or [hidden, vocab] when transposed
    transposed: bool = False


_PROJECTIONS = ("w_qkv", "w_o", "w_gate_up", "w_down")


def linear(x: torch.Tensor, w: torch.Tensor | Int4Weight, b: torch.Tensor | None, transposed: bool) -> torch.Tensor:
    """``x @ W.T + b`` for ``x`` ``[T, in]``, with ``w`` stored ``[out, in]`` or, if ``transposed``, ``[in, out]``
    (an ``Int4Weight`` knows its own layout)."""
    if isinstance(w, Int4Weight):
        y = w.matmul(x)  # [T, out]
        return y if b is None else y + b
    if not transposed:
        return F.linear(x, w, b)
    return torch.addmm(b, x, w) if b is not None else torch.mm(x, w)  # [T, out]


def transpose_projections(weights: ModelWeights) -> ModelWeights:
    """Store every projection ``[in, out]`` (in place; ``lm_head`` becomes its own copy when tied)."""
    if weights.transposed:
        return weights
    for lw in weights.layers:
        for name in _PROJECTIONS:
            w = getattr(lw, name)
            if not isinstance(w, Int4Weight):
                setattr(lw, name, w.t().contiguous())
    weights.lm_head = weights.lm_head.t().contiguous()  # [hidden, vocab]
    weights.transposed = True
    return weights


def build_weights(
    config: ModelConfig, get: GetTensor, names: set[str], device: torch.device, dtype: torch.dtype,
    int4: bool = False,
) -> ModelWeights:
    """Read every tensor through ``get(name)`` (``names`` lists what the checkpoint holds).

    ``int4``: keep 4-bit group-quantised projections as ``Int4Weight`` (CPU, bfloat16 only). The
    first projection that is not exactly 4-bit stops the attempt; the rest load dense.
    """
    if int4 and (device.type != "cpu" or dtype != torch.bfloat16):
        raise ModelLoadError("int4 weights need device='cpu' and dtype=bfloat16")
    packing = int4

    def check(name: str) -> None:
        if name not in names:
            raise ModelLoadError(f"checkpoint lacks tensor {name!r} required by {config.architecture}")

    def take(name: str) -> torch.Tensor:
        check(name)
        return get(name).to(device=device, dtype=dtype).contiguous()

    def cat(*parts: str) -> torch.Tensor:
        return torch.cat([take(p) for p in parts], dim=0).contiguous()

    def proj(*parts: str) -> torch.Tensor | Int4Weight:
        """A projection matrix (row blocks ``parts`` stacked), packed to 4 bits when exact."""
        nonlocal packing
        if packing:
            for p in parts:
                check(p)
            packed = Int4Weight.from_dense(torch.cat([get(p).float() for p in parts], dim=0))
            if packed is not None:
                return packed
            packing = False
        return cat(*parts)

    layers = [_layer(config, f"model.layers.{i}.", take, cat, proj) for i in range(config.num_layers)]
    embed = take("model.embed_tokens.weight")  # [vocab, hidden]
    tied = config.tie_word_embeddings or "lm_head.weight" not in names
    if tied and not config.tie_word_embeddings:
        raise ModelLoadError("checkpoint lacks 'lm_head.weight' and the config does not tie embeddings")
    lm_head = embed if tied else take("lm_head.weight")
    weights = ModelWeights(embed=embed, layers=layers, norm=take("model.norm.weight"), lm_head=lm_head)
    return transpose_projections(weights) if _transpose_on(device, dtype) else weights


def _transpose_on(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether projections are stored ``[in, out]`` (CPU float32 only; see the module docstring)."""
    return device.type == "cpu" and dtype == torch.float32


def _layer(config: ModelConfig, p: str, take, cat, proj) -> LayerWeights:
    attn, mlp = p + "self_attn.", p + "mlp."
    qkv = [attn + "q_proj", attn + "k_proj", attn + "v_proj"]
    return LayerWeights(
        ln1=take(p + "input_layernorm.weight"),
        w_qkv=proj(*(n + ".weight" for n in qkv)),
        b_qkv=cat(*(n + ".bias" for n in qkv)) if config.qkv_bias else None,
        q_norm=take(attn + "q_norm.weight") if config.qk_norm else None,
        k_norm=take(attn + "k_norm.weight") if config.qk_norm else None,
        w_o=proj(attn + "o_proj.weight"),
        b_o=take(attn + "o_proj.bias") if config.o_bias else None,
        ln2=take(p + "post_attention_layernorm.weight"),
        w_gate_up=proj(mlp + "gate_proj.weight", mlp + "up_proj.weight"),
        b_gate_up=cat(mlp + "gate_proj.bias", mlp + "up_proj.bias") if config.mlp_bias else None,
        w_down=proj(mlp + "down_proj.weight"),
        b_down=take(mlp + "down_proj.bias") if config.mlp_bias else None,
    )


def random_weights(config: ModelConfig, device: torch.device, dtype: torch.dtype, seed: int = 0) -> ModelWeights:
    """Random weights of ``config``'s shapes (N(0, 0.02) projections, norms near 1), for benchmarks and tests.

    Generated on ``device`` (no host copy of a large model). Tied models share ``embed`` and ``lm_head``.
    """
    c = config
    gen = torch.Generator(device=device).manual_seed(seed)

    def rnd(*shape: int, std: float = 0.02, mean: float = 0.0) -> torch.Tensor:
        return (torch.randn(shape, generator=gen, device=device, dtype=torch.float32) * std + mean).to(dtype)

    def bias(n: int, on: bool) -> torch.Tensor | None:
        return rnd(n) if on else None

    qkv = c.q_size + 2 * c.kv_size
    layers = [
        LayerWeights(
            ln1=rnd(c.hidden_size, std=0.1, mean=1.0),
            w_qkv=rnd(qkv, c.hidden_size),
            b_qkv=bias(qkv, c.qkv_bias),
            q_norm=rnd(c.head_dim, std=0.1, mean=1.0) if c.qk_norm else None,
            k_norm=rnd(c.head_dim, std=0.1, mean=1.0) if c.qk_norm else None,
            w_o=rnd(c.hidden_size, c.q_size),
            b_o=bias(c.hidden_size, c.o_bias),
            ln2=rnd(c.hidden_size, std=0.1, mean=1.0),
            w_gate_up=rnd(2 * c.intermediate_size, c.hidden_size),
            b_gate_up=bias(2 * c.intermediate_size, c.mlp_bias),
            w_down=rnd(c.hidden_size, c.intermediate_size),
            b_down=bias(c.hidden_size, c.mlp_bias),
        )
        for _ in range(c.num_layers)
    ]
    embed = rnd(c.vocab_size, c.hidden_size, std=1.0)
    lm_head = embed if c.tie_word_embeddings else rnd(c.vocab_size, c.hidden_size)
    weights = ModelWeights(embed=embed, layers=layers, norm=rnd(c.hidden_size, std=0.1, mean=1.0), lm_head=lm_head)
    return transpose_projections(weights) if _transpose_on(device, dtype) else weights
