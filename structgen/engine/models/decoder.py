"""The decoder forward pass shared by Llama 2/3.x, SmolLM2, Mistral, Qwen2/2.5 and Qwen3.

Per layer (pre-norm): ``x += o_proj(attn(rope(qk_norm?(qkv_proj(rms_norm(x))))))`` then
``x += down(silu(gate) * up)`` with fused ``qkv`` and ``gate_up`` matmuls. Family differences are
data (biases present or not, q/k norms present or not, the RoPE frequencies), not code paths.
All new tokens of a batch run as one ``[T, hidden]`` matrix; only attention looks at sequences.

``hidden_states`` runs any mix of prefills and decodes with the torch attention of ``attention.py``;
``decode_hidden`` runs one token per sequence with ``kernels.decode_attention`` over CSR context
indices and never synchronises with the host (so it can be captured in a CUDA graph); by default
each layer's RoPE, KV-pool write, decode attention and split merge are one Triton launch
(``kernels.decode_attention_rope_kv``), and the projections and the LM head of a batch of at most
``GEMV_DECODE_ROWS`` rows run through ``kernels.gemv`` (the MLP activation fused into the down
projection, the residual add + RMSNorm before a projection fused into it: ``kernels.gemv_norm``);
each is switchable through ``DecoderModel.decode_kernels``.
Under tensor parallelism (``parallel.py``) the weights hold this rank's heads and MLP columns,
``config`` the per-rank head counts, and ``reduce`` sums the row-parallel outputs over ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..attention import AttentionPlan, pool_attention
from ..kv_cache import KVPool
from .config import ModelConfig
from .rope import RotaryTable, apply_rotary
from .weights import LayerWeights, ModelWeights, linear


def add_rms_norm(x: torch.Tensor, delta: torch.Tensor, w: torch.Tensor, eps: float):
    """``(x + delta, rms_norm(x + delta) * w)``: the residual add and the next norm (fusable)."""
    y = x + delta
    return y, F.rms_norm(y, (y.shape[-1],), w, eps)


def silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` for ``gate_up`` ``[T, 2*inter]`` (gate first)."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


class ElementwiseOps:
    """The element-wise steps of a layer; ``compiled()`` fuses each into one kernel with torch.compile."""

    def __init__(self, rotary=apply_rotary, add_norm=add_rms_norm, act=silu_mul):
        self.rotary, self.add_norm, self.act = rotary, add_norm, act

    @classmethod
    def compiled(cls) -> ElementwiseOps:
        """torch.compile'd ops (dynamic shapes: one compilation per op, not per batch size)."""
        c = lambda fn: torch.compile(fn, dynamic=True, fullgraph=True)
        return cls(c(apply_rotary), c(add_rms_norm), c(silu_mul))


EAGER_OPS = ElementwiseOps()

LayerAttention = Callable[[torch.Tensor, LayerWeights, torch.Tensor, torch.Tensor], torch.Tensor]
"""``attention(qkv [T, q + 2*kv], layer, k_cache, v_cache) -> [T, H, D]``: split the fused
projection, apply the layer's q/k norms if any, rotate q and k at the step's positions, write the
rotated k and v into the layer's pool rows at the step's slots, and attend."""

ROPE_KV_MODES = ("attention", "kernel", "unfused")
GEMV_DECODE_ROWS = 2  # rows up to which kernels.gemv beats cuBLAS on an H100 (bench/decode_profile.py)
GEMV_NORM_ROWS = 1  # rows up to which kernels.gemv_norm beats add + RMSNorm then gemv (bench/decode_profile.py)


@dataclass
class DecodeKernels:
    """Which fused kernels ``decode_hidden`` launches per layer (each can be turned off, e.g. to compare).

    ``rope_kv``: where RoPE of q/k and the two KV-pool writes happen: ``"attention"`` inside the
    decode-attention launch (``kernels.decode_attention_rope_kv``), ``"kernel"`` in one
    ``kernels.rope_kv_write`` launch before it, ``"unfused"`` in a rotary kernel and two
    ``index_copy_``. ``attention_merge``: ``merge`` of the decode attention (``"fused"``: the
    last split of each head group merges the partial results, no separate reduce kernel;
    ``"kernel"``: a separate reduce kernel; the fused merge shares arrival counters per device,
    so two decode steps must not run concurrently on different streams of one device). ``gemv``:
    when the step has at most ``GEMV_DECODE_ROWS`` rows, run the four projections of each layer
    and the LM head (``logits``, for any caller) through ``kernels.gemv`` instead of cuBLAS, with
    ``silu(gate) * up`` computed inside the down projection (plain ``[out, in]`` weights only;
    others keep ``linear``). ``fused_norm``: where ``gemv`` applies and the step has at most
    ``GEMV_NORM_ROWS`` rows, also fold the residual add + RMSNorm before the qkv and gate/up
    projections (and the final norm before the LM head) into the projection
    (``kernels.gemv_norm``), one launch fewer per norm. ``attention_splits``,
    ``attention_block_n``, ``attention_warps``: ``num_splits``, ``block_n`` and ``num_warps`` of
    the Triton decode attention (None: the kernel's defaults for the batch shape).
    ``norm_prefetch``: ``prefetch`` of ``kernels.gemv_norm`` (its first weight loads issued before
    the input's sum of squares).
    Every setting computes the same function up to rounding; on the torch backend all run the
    reference ops.
    """

    rope_kv: str = "attention"
    attention_merge: str = "fused"
    gemv: bool = True
    fused_norm: bool = True
    attention_splits: int | None = None
    attention_block_n: int | None = None
    attention_warps: int | None = None
    norm_prefetch: bool = True


class DecoderModel:
    """Weights + RoPE table of one model; ``forward`` runs new tokens through it over a ``KVPool``."""

    def __init__(self, config: ModelConfig, weights: ModelWeights, device: torch.device, dtype: torch.dtype):
        self.config = config
        self.weights = weights
        self.device, self.dtype = device, dtype
        self.rope = RotaryTable(config, device, dtype)
        self.scale = config.head_dim**-0.5
        self.t = weights.transposed
        self.reduce: Callable[[torch.Tensor], torch.Tensor] | None = None  # all-reduce (tensor parallel)
        self.gather_vocab: Callable[[torch.Tensor], torch.Tensor] | None = None  # vocab-parallel lm_head
        self.decode_ops = EAGER_OPS  # element-wise ops of decode_hidden (GraphDecoder may compile them)
        self.decode_kernels = DecodeKernels()  # fused kernels of decode_hidden (read at each call)

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
        store = self._rope_store_unfused(cos, sin, out_slots, EAGER_OPS)

        def attention(qkv, lw, k_cache, v_cache):
            return pool_attention(store(qkv, lw, k_cache, v_cache), k_cache, v_cache, plan, self.scale)

        return self._run_layers(input_ids, attention, pool, EAGER_OPS)

    def decode_hidden(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        out_slots: torch.Tensor,
        kv_indptr: torch.Tensor,
        kv_indices: torch.Tensor,
        pool: KVPool,
        backend: str = "auto",
    ) -> torch.Tensor:
        """Hidden states ``[B, hidden]`` of one new token per sequence (a decode step).

        Sequence ``b``'s context (its new token last, K/V written here first) is
        ``kv_indices[kv_indptr[b]:kv_indptr[b+1]]``, and ``out_slots[b]`` is its last slot. The
        RoPE table must already cover every position (``self.rope.ensure``): nothing here reads a
        tensor back to the host.
        """
        from ...kernels import decode_attention, decode_attention_rope_kv, rope_kv_write

        window, fused = self.config.sliding_window, self.decode_kernels
        if fused.rope_kv not in ROPE_KV_MODES:
            raise ValueError(f"unknown decode_kernels.rope_kv {fused.rope_kv!r}; use one of {ROPE_KV_MODES}")
        cos, sin = self.rope.cos, self.rope.sin  # [P, D] x2
        attn = {"window": window, "merge": fused.attention_merge, "num_splits": fused.attention_splits,
                "block_n": fused.attention_block_n, "num_warps": fused.attention_warps, "backend": backend}

        def attend(q, k_cache, v_cache):
            return decode_attention(q, k_cache, v_cache, kv_indptr, kv_indices, self.scale, **attn)  # [B, H, D]

        if fused.rope_kv == "attention":
            def attention(qkv, lw, k_cache, v_cache):
                q, k, v = self._split_qkv(qkv, lw)  # [B, H, D], [B, KV, D] x2 (views unless normed)
                return decode_attention_rope_kv(q, k, v, cos, sin, positions, out_slots, k_cache, v_cache,
                                                kv_indptr, kv_indices, self.scale, **attn)  # [B, H, D]
        elif fused.rope_kv == "kernel":
            def attention(qkv, lw, k_cache, v_cache):
                q, k, v = self._split_qkv(qkv, lw)
                q = rope_kv_write(q, k, v, cos, sin, positions, out_slots, k_cache, v_cache, backend=backend)
                return attend(q, k_cache, v_cache)
        else:
            rows = cos[positions].unsqueeze(1), sin[positions].unsqueeze(1)  # [B, 1, D] x2
            store = self._rope_store_unfused(*rows, out_slots, self.decode_ops)

            def attention(qkv, lw, k_cache, v_cache):
                return attend(store(qkv, lw, k_cache, v_cache), k_cache, v_cache)

        return self._run_layers(input_ids, attention, pool, self.decode_ops, gemv=fused.gemv,
                                fused_norm=fused.fused_norm, backend=backend)

    def _split_qkv(self, qkv: torch.Tensor, lw: LayerWeights):
        """``q [T, H, D], k [T, KV, D], v [T, KV, D]`` of the fused projection, q/k normed if the model has norms."""
        c, t = self.config, qkv.shape[0]
        q = qkv[:, : c.q_size].view(t, c.num_heads, c.head_dim)
        k = qkv[:, c.q_size : c.q_size + c.kv_size].view(t, c.num_kv_heads, c.head_dim)
        v = qkv[:, c.q_size + c.kv_size :].view(t, c.num_kv_heads, c.head_dim)
        if lw.q_norm is not None:
            q = F.rms_norm(q, (c.head_dim,), lw.q_norm, c.rms_norm_eps)
            k = F.rms_norm(k, (c.head_dim,), lw.k_norm, c.rms_norm_eps)
        return q, k, v

    def _rope_store_unfused(self, cos, sin, out_slots, ops: ElementwiseOps):
        """``store(qkv, layer, k_cache, v_cache) -> q [T, H, D]`` of separate kernels: rotary (q and k in
        one pass when unnormed), then two ``index_copy_`` into the pool. ``cos``/``sin``: rows ``[T, 1, D]``.
        """
        c = self.config

        def store(qkv, lw, k_cache, v_cache):
            q, k, v = self._split_qkv(qkv, lw)
            if lw.q_norm is None:  # rotate q and k in one pass
                qk = qkv[:, : c.q_size + c.kv_size].view(qkv.shape[0], c.num_heads + c.num_kv_heads, c.head_dim)
                q, k = ops.rotary(qk, cos, sin).split((c.num_heads, c.num_kv_heads), dim=1)  # [T, H, D], [T, KV, D]
            else:
                q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
            k_cache.index_copy_(0, out_slots, k)
            v_cache.index_copy_(0, out_slots, v)
            return q

        return store

    def _run_layers(self, input_ids, attention: LayerAttention, pool: KVPool, ops: ElementwiseOps,
                    gemv: bool = False, fused_norm: bool = False, backend: str = "auto") -> torch.Tensor:
        x = F.embedding(input_ids, self.weights.embed)  # [T, hidden]
        delta = None  # the first layer's input is x itself
        rows = x.shape[0]
        proj = Projection(self.t, gemv and rows <= GEMV_DECODE_ROWS, backend, fused_norm and rows <= GEMV_NORM_ROWS,
                          self.decode_kernels.norm_prefetch)
        for i, lw in enumerate(self.weights.layers):
            x, delta = self._layer(x, delta, lw, pool.k[i], pool.v[i], attention, ops, proj)
        return x + delta

    def logits(self, hidden: torch.Tensor, backend: str = "auto") -> torch.Tensor:
        """float32 logits ``[n, vocab]`` from final-layer hidden states ``[n, hidden]`` (``backend``: of gemv)."""
        c = self.config
        fused, rows = self.decode_kernels, hidden.shape[0]
        proj = Projection(self.t, fused.gemv and rows <= GEMV_DECODE_ROWS, backend,
                          fused.fused_norm and rows <= GEMV_NORM_ROWS, fused.norm_prefetch)
        _, out = proj.normed(hidden, None, self.weights.norm, c.rms_norm_eps, self.weights.lm_head, None,
                             EAGER_OPS)  # [n, vocab] (this rank's columns if vocab-parallel)
        if self.gather_vocab is not None:
            out = self.gather_vocab(out)  # [n, vocab]
        return out.float()

    def _layer(
        self,
        x: torch.Tensor,
        delta: torch.Tensor | None,
        lw: LayerWeights,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        attention: LayerAttention,
        ops: ElementwiseOps = EAGER_OPS,
        proj: Projection | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One layer on the residual stream ``x + delta`` (``x`` when ``delta`` is None); returns
        ``(x + delta + attn_out, mlp_out)``: the residual add is fused with the layer's input norm."""
        c = self.config
        t = x.shape[0]
        proj = proj or Projection(self.t, False, "auto")
        x, qkv = proj.normed(x, delta, lw.ln1, c.rms_norm_eps, lw.w_qkv, lw.b_qkv, ops)  # [T, hidden], [T, q + 2*kv]
        a = attention(qkv, lw, k_cache, v_cache)  # [T, H, D]; K/V of the new tokens written to the pool
        o = self._row_parallel(proj, a.reshape(t, c.q_size), lw.w_o, lw.b_o)  # [T, hidden]
        x, gate_up = proj.normed(x, o, lw.ln2, c.rms_norm_eps, lw.w_gate_up, lw.b_gate_up, ops)  # [T, 2*inter]
        if proj.applies(lw.w_down):  # silu(gate) * up inside the down projection
            return x, self._row_parallel(proj, gate_up, lw.w_down, lw.b_down, gated=True)
        return x, self._row_parallel(proj, ops.act(gate_up), lw.w_down, lw.b_down)  # [T, hidden] x2

    def _row_parallel(self, proj: Projection, x: torch.Tensor, w, b: torch.Tensor | None,
                      gated: bool = False) -> torch.Tensor:
        """``x @ w.T (+ b)``; under tensor parallelism the partial sums of all ranks are added (bias once)."""
        if self.reduce is None:
            return proj(x, w, b, gated)
        return self.reduce(proj(x, w, None, gated)) + (b if b is not None else 0)


class Projection:
    """``proj(x, w, b, gated=False) -> x' @ w.T + b`` with ``x' = silu(gate) * up`` of ``x`` when ``gated``.

    ``small``: use ``kernels.gemv`` (few rows) for plain contiguous ``[out, in]`` weights; every
    other weight, and every call when not ``small``, goes through ``weights.linear``. ``gated`` is
    only asked for where :meth:`applies` said yes. :meth:`normed` runs the residual add + RMSNorm
    before a projection, inside ``kernels.gemv_norm`` where ``fuse_norm`` and :meth:`applies`
    (with its ``prefetch``).
    """

    def __init__(self, transposed: bool, small: bool, backend: str, fuse_norm: bool = False,
                 prefetch: bool = True):
        self.transposed, self.small, self.backend = transposed, small and not transposed, backend
        self.fuse_norm, self.prefetch = fuse_norm, prefetch

    def applies(self, w) -> bool:
        """True when ``w`` goes through ``kernels.gemv``."""
        return self.small and isinstance(w, torch.Tensor) and w.is_contiguous()

    def __call__(self, x: torch.Tensor, w, b: torch.Tensor | None, gated: bool = False) -> torch.Tensor:
        if self.applies(w):
            from ...kernels import gemv

            return gemv(x, w, b, gated=gated, backend=self.backend)
        if gated:
            raise ValueError("a gated projection needs a weight that kernels.gemv takes (see applies)")
        return linear(x, w, b, self.transposed)

    def normed(self, x: torch.Tensor, delta: torch.Tensor | None, ln: torch.Tensor, eps: float, w,
               b: torch.Tensor | None, ops: ElementwiseOps) -> tuple[torch.Tensor, torch.Tensor]:
        """``(r, rms_norm(r) * ln @ w.T + b)`` for ``r = x + delta`` (``x`` itself when ``delta`` is None)."""
        if self.fuse_norm and self.applies(w):
            from ...kernels import gemv_norm

            return gemv_norm(x, w, b, ln=ln, eps=eps, delta=delta, prefetch=self.prefetch, backend=self.backend)
        if delta is None:
            h = F.rms_norm(x, (x.shape[-1],), ln, eps)  # [T, hidden]
        else:
            x, h = ops.add_norm(x, delta, ln, eps)  # [T, hidden] x2
        return x, self(h, w, b)
