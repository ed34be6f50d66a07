"""Our own forward passes for the supported decoder-only families (Llama, Mistral, Qwen2, Qwen3)."""

from .config import SUPPORTED_ARCHITECTURES, ModelConfig
from .decoder import DecoderModel

__all__ = ["SUPPORTED_ARCHITECTURES", "DecoderModel", "ModelConfig"]
