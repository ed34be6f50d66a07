"""``ModelConfig``: the architecture facts the forward pass needs, read from a Hugging Face config.

One dataclass covers every supported family; the family-specific switches are ``qkv_bias``
(Qwen2), ``o_bias``/``mlp_bias`` (Llama with ``attention_bias``/``mlp_bias``) and ``qk_norm``
(Qwen3). Both the transformers 4.x keys (``rope_theta`` + ``rope_scaling``) and the 5.x key
(``rope_parameters``) are understood.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import UnsupportedModelError

# Architecture name -> family switches that are not spelled out in config.json.
SUPPORTED_ARCHITECTURES: dict[str, dict[str, bool]] = {
    "LlamaForCausalLM": {},
    "MistralForCausalLM": {},
    "Qwen2ForCausalLM": {"qkv_bias": True},
    "Qwen3ForCausalLM": {"qk_norm": True},
}
_MODEL_TYPES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and hyper-parameters of a decoder-only model.

    ``rope_scaling`` is ``None`` for plain RoPE, else a dict with ``rope_type`` in
    ``SUPPORTED_ROPE_TYPES`` and that type's parameters (``factor``, ``low_freq_factor``, ...).
    ``eos_token_ids`` holds every id that ends a generation according to the config.
    """

    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    sliding_window: int | None = None
    model_type: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def q_size(self) -> int:
        """Width of the query projection (``num_heads * head_dim``)."""
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Width of the key (and of the value) projection (``num_kv_heads * head_dim``)."""
        return self.num_kv_heads * self.head_dim

    @staticmethod
    def eos_ids(value: Any) -> tuple[int, ...]:
        """An ``eos_token_id`` entry (None, int or list) as a tuple of ints."""
        if value is None:
            return ()
        if isinstance(value, (list, tuple)):
            return tuple(int(v) for v in value)
        return (int(value),)

    @classmethod
    def from_hf(cls, cfg: dict[str, Any]) -> ModelConfig:
        """Build from a Hugging Face ``config.json`` dict; ``UnsupportedModelError`` if we cannot run it."""
        arch = _architecture(cfg)
        switches = SUPPORTED_ARCHITECTURES[arch]
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        theta, scaling = _rope(cfg)
        act = cfg.get("hidden_act", "silu")
        if act != "silu":
            raise UnsupportedModelError(f"{arch} with hidden_act={act!r} is not supported (only 'silu')")
        window = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
        attention_bias = bool(cfg.get("attention_bias", False))
        return cls(
            architecture=arch,
            vocab_size=int(cfg["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(cfg["intermediate_size"]),
            num_layers=int(cfg["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            rope_scaling=scaling,
            max_position_embeddings=int(cfg.get("max_position_embeddings", 4096)),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=switches.get("qkv_bias", False) or attention_bias,
            o_bias=attention_bias and arch in ("LlamaForCausalLM", "MistralForCausalLM"),
            mlp_bias=bool(cfg.get("mlp_bias", False)),
            qk_norm=switches.get("qk_norm", False),
            bos_token_id=cfg.get("bos_token_id"),
            eos_token_ids=cls.eos_ids(cfg.get("eos_token_id")),
            sliding_window=int(window) if window else None,
            model_type=str(cfg.get("model_type", "")),
            extra={k: cfg[k] for k in ("_name_or_path",) if k in cfg},
        )


def _architecture(cfg: dict[str, Any]) -> str:
    """The supported architecture named by ``architectures`` or ``model_type``."""
    names = list(cfg.get("architectures") or [])
    if not names and cfg.get("model_type") in _MODEL_TYPES:
        names = [_MODEL_TYPES[cfg["model_type"]]]
    for name in names:
        if name in SUPPORTED_ARCHITECTURES:
            return name
    named = ", ".join(names) or repr(cfg.get("model_type"))
    raise UnsupportedModelError(
        f"architecture {named} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
    )


def _rope(cfg: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """``(rope_theta, rope_scaling or None)`` from either config layout."""
    params = dict(cfg.get("rope_parameters") or {})
    scaling = dict(cfg.get("rope_scaling") or {})
    theta = float(params.pop("rope_theta", cfg.get("rope_theta", 10000.0)))
    merged = {**scaling, **params}
    kind = merged.pop("rope_type", merged.pop("type", "default")) or "default"
    merged.pop("type", None)
    if kind not in SUPPORTED_ROPE_TYPES:
        raise UnsupportedModelError(
            f"rope scaling type {kind!r} is not supported; supported: {', '.join(SUPPORTED_ROPE_TYPES)}"
        )
    if kind == "default":
        return theta, None
    return theta, {"rope_type": kind, **merged}
