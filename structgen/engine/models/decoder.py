"""The decoder forward pass shared by Llama 2/3.x, SmolLM2, Mistral, Qwen2/2.5 and Qwen3.

Per layer (pre-norm): ``x += o_proj(attn(rope(qk_norm?(qkv_proj(rms_norm(x))))))`` then
``x += down(silu(gate) * up)`` with fused ``qkv`` and ``gate_up`` matmuls. Family differences are
data (biases present or not, q/k norms present or not, the RoPE frequencies), not code paths.
All new tokens of a batch run as one ``[T, hidden]`` matrix; only attention looks at sequences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attention import AttentionPlan, pool_attention
from ..kv_cache import KVPool
from .config import ModelConfig
from .rope import RotaryTable, apply_rotary
from .weights import LayerWeights, ModelWeights, linear


class DecoderModel:
    """Weights + RoPE table of one model; ``forward`` runs new tokens through it over a ``KVPool``."""

    def __init__(self, config: ModelConfig, weights: ModelWeights, device: torch.device, dtype: torch.dtype):
        self.config = config
        self.weights = weights
        self.device, self.dtype = device, dtype
        self.rope = RotaryTable(config, device, dtype)
        self.scale = config.head_dim**-0.5
        self.t = weights.transposed

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        out_slots: torch.Tensor,
        plan: AttentionPlan,
        pool: KVPool,
        max_position: int,
    ) -> torch.Tensor:
        """Final-layer hidden states ``[T, hidden]`` (before the final norm); writes K/V to ``out_slots``."""
        cos, sin = self.rope.lookup(positions, max_position)  # [T, 1, D] x2
        x = F.embedding(input_ids, self.weights.embed)  # [T, hidden]
        for i, lw in enumerate(self.weights.layers):
            x = self._layer(x, lw, pool.k[i], pool.v[i], cos, sin, out_slots, plan)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits ``[n, vocab]`` from final-layer hidden states ``[n, hidden]``."""
        c = self.config
        h = F.rms_norm(hidden, (c.hidden_size,), self.weights.norm, c.rms_norm_eps)  # [n, hidden]
        return linear(h, self.weights.lm_head, None, self.t).float()  # [n, vocab]

    def _layer(
        self,
        x: torch.Tensor,
        lw: LayerWeights,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        out_slots: torch.Tensor,
        plan: AttentionPlan,
    ) -> torch.Tensor:
        c = self.config
        t = x.shape[0]
        h = F.rms_norm(x, (c.hidden_size,), lw.ln1, c.rms_norm_eps)  # [T, hidden]
        qkv = linear(h, lw.w_qkv, lw.b_qkv, self.t)  # [T, q + 2*kv]
        q, k, v = qkv.split((c.q_size, c.kv_size, c.kv_size), dim=-1)
        q = q.view(t, c.num_heads, c.head_dim)  # [T, H, D]
        k = k.view(t, c.num_kv_heads, c.head_dim)  # [T, KV, D]
        v = v.view(t, c.num_kv_heads, c.head_dim)  # [T, KV, D]
        if lw.q_norm is not None:
            q = F.rms_norm(q, (c.head_dim,), lw.q_norm, c.rms_norm_eps)
            k = F.rms_norm(k, (c.head_dim,), lw.k_norm, c.rms_norm_eps)
        q = apply_rotary(q, cos, sin)  # [T, H, D]
        k = apply_rotary(k, cos, sin)  # [T, KV, D]
        k_cache.index_copy_(0, out_slots, k)
        v_cache.index_copy_(0, out_slots, v)
        a = pool_attention(q, k_cache, v_cache, plan, self.scale)  # [T, H, D]
        x = x + linear(a.reshape(t, c.q_size), lw.w_o, lw.b_o, self.t)  # [T, hidden]
        h = F.rms_norm(x, (c.hidden_size,), lw.ln2, c.rms_norm_eps)  # [T, hidden]
        gate, up = linear(h, lw.w_gate_up, lw.b_gate_up, self.t).chunk(2, dim=-1)  # [T, inter] x2
        return x + linear(F.silu(gate) * up, lw.w_down, lw.b_down, self.t)  # [T, hidden]
