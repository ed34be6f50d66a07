"""A tiny, fast, deterministic model for tests that only need valid structure.

``tiny_runtime()`` builds a 2-layer Llama (hidden size 64) over the embedded default model's
tokenizer, writes it as ``config.json`` + ``model.safetensors`` to a temporary folder, and loads
it through the ordinary loader on the CPU — in about a second. Its layers have random weights
(fixed seed), but the residual stream carries one constant dimension that the output head reads
as a fixed per-token preference, so decoding is deterministic and short: it prefers, in order,
end-of-sequence, ``"``, ``}``, ``]``, ``0``, ``a``, ``,``, ``1``, and avoids backslashes (so a
JSON string is written without escapes). Under a constraint the output is
therefore a small valid value (``{"name": "", "age": 0}``, ``000-0000``); free text is empty.
What it generates means nothing: use the default model where content matters.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Any

HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = 16
INTERMEDIATE = 128
SEED = 1234
CARRIER = 48.0  # value of residual dimension 0 in every embedding: dominates the final RMSNorm
PREFERENCES = ('"', "}", "]", "0", "a", ",", "1")  # after EOS, most preferred first

_lock = threading.Lock()
_cache: dict[str, Any] = {}


def tiny_runtime(**engine_options: Any) -> Any:
    """The process-wide tiny ``Runtime`` (built on first call; engine_options apply to that call)."""
    with _lock:
        rt = _cache.get("runtime")
        if rt is None:
            rt = _cache["runtime"] = build_tiny_runtime(**engine_options)
        return rt


def build_tiny_runtime(folder: str | Path | None = None, **engine_options: Any) -> Any:
    """A new tiny ``Runtime``, its weights written to ``folder`` (default: a new temporary folder)."""
    from .. import assets
    from ..engine.loader import load_model
    from ..engine.runtime import Runtime

    tokenizer = assets.load_default_tokenizer()
    path = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="structgen-tiny-"))
    write_tiny_model(path, tokenizer)
    runner = load_model(path, device="cpu", dtype="float32", tokenizer=tokenizer)
    engine_options.setdefault("kv_cache_tokens", 4096)
    return Runtime(str(path), device="cpu", runner=runner, **engine_options)


def write_tiny_model(folder: Path, tokenizer: Any) -> Path:
    """Write ``config.json`` and ``model.safetensors`` of the tiny model for ``tokenizer`` into ``folder``."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    vocab = len(tokenizer)
    eos = _eos_ids(tokenizer)
    (folder / "config.json").write_text(json.dumps(_config(vocab, eos)))
    g = torch.Generator().manual_seed(SEED)
    tensors = _layer_tensors(g)
    embed = torch.randn(vocab, HIDDEN, generator=g) * 0.02  # [vocab, hidden]
    embed[:, 0] = CARRIER
    tensors["model.embed_tokens.weight"] = embed
    tensors["model.norm.weight"] = torch.ones(HIDDEN)
    tensors["lm_head.weight"] = _head(vocab, _preferences(tokenizer, eos))  # [vocab, hidden]
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    return folder


def _config(vocab: int, eos: list[int]) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab,
        "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
        "hidden_act": "silu", "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0, "tie_word_embeddings": False, "eos_token_id": eos[0] if len(eos) == 1 else eos,
        "bos_token_id": eos[0],
    }  # fmt: skip


def _layer_tensors(g: Any) -> dict[str, Any]:
    """Random layer weights whose outputs never write residual dimension 0 (the carrier)."""
    import torch

    def rand(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    out: dict[str, Any] = {}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        o_proj, down = rand(HIDDEN, HEADS * HEAD_DIM), rand(HIDDEN, INTERMEDIATE)
        o_proj[0], down[0] = 0.0, 0.0
        out.update({
            p + "input_layernorm.weight": torch.ones(HIDDEN), p + "post_attention_layernorm.weight": torch.ones(HIDDEN),
            p + "self_attn.q_proj.weight": rand(HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.k_proj.weight": rand(KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.v_proj.weight": rand(KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.o_proj.weight": o_proj,
            p + "mlp.gate_proj.weight": rand(INTERMEDIATE, HIDDEN), p + "mlp.up_proj.weight": rand(INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": down,
        })  # fmt: skip
    return out


def _head(vocab: int, scores: dict[int, float]) -> Any:
    """Output head: only column 0 is non-zero, so logits are ``score[t] * normed_carrier``."""
    import torch

    head = torch.zeros(vocab, HIDDEN)  # [vocab, hidden]
    for token_id, score in scores.items():
        head[token_id, 0] = score
    return head


def _preferences(tokenizer: Any, eos: list[int]) -> dict[int, float]:
    scores = {t: -4.0 for text, t in tokenizer.get_vocab().items() if "\\" in text}  # no JSON escapes
    scores.update({t: 2.0 * (len(PREFERENCES) + 1) for t in eos})
    for rank, text in enumerate(PREFERENCES):
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) == 1:
            scores[ids[0]] = 2.0 * (len(PREFERENCES) - rank)
    return scores


def _eos_ids(tokenizer: Any) -> list[int]:
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return ids or [0]
