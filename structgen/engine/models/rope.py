"""Rotary position embeddings: inverse frequencies (plain, linear, llama3 scaling) and cos/sin tables.

The table is computed in float32 exactly as transformers does (``position * inv_freq``, then
``cos``/``sin``), so the same positions give bit-identical angles; it grows on demand (doubling)
instead of being sized for ``max_position_embeddings`` up front.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .config import ModelConfig


def inv_frequencies(head_dim: int, theta: float, scaling: dict[str, Any] | None) -> torch.Tensor:
    """Inverse frequencies ``[head_dim // 2]`` float32 for the given RoPE scaling."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim  # [D/2]
    inv_freq = 1.0 / (theta**exponents)  # [D/2]
    if scaling is None:
        return inv_freq
    kind = scaling["rope_type"]
    if kind == "linear":
        return inv_freq / float(scaling["factor"])
    if kind == "llama3":
        return _llama3(inv_freq, scaling)
    raise ValueError(f"unknown rope type {kind!r}")


def _llama3(inv_freq: torch.Tensor, s: dict[str, Any]) -> torch.Tensor:
    """Llama 3.1 frequency-dependent scaling: long wavelengths divided by ``factor``, smooth between."""
    factor = float(s["factor"])
    low, high = float(s["low_freq_factor"]), float(s["high_freq_factor"])
    old_len = float(s["original_max_position_embeddings"])
    low_wavelen, high_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / inv_freq  # [D/2]
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)  # [D/2]
    smooth = (old_len / wavelen - low) / (high - low)  # [D/2]
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled  # [D/2]
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)  # [D/2] bool
    return torch.where(medium, smoothed, scaled)


class RotaryTable:
    """cos/sin tables ``[capacity, head_dim]`` (HF layout, halves duplicated) on the model's device.

    ``sin`` is stored with its first half negated, so that rotation is
    ``x * cos + swap_halves(x) * sin`` (same values as HF's ``x*cos + rotate_half(x)*sin``).
    """

    def __init__(self, config: ModelConfig, device: torch.device, dtype: torch.dtype, capacity: int = 4096):
        self.inv_freq = inv_frequencies(config.head_dim, config.rope_theta, config.rope_scaling)  # [D/2]
        self.device, self.dtype = device, dtype
        self.cos = self.sin = torch.empty(0)
        self._build(max(1, min(capacity, config.max_position_embeddings)))

    def _build(self, capacity: int) -> None:
        pos = torch.arange(capacity, dtype=torch.int64).float()  # [P]
        freqs = pos[:, None] * self.inv_freq[None, :]  # [P, D/2] float32
        emb = torch.cat((freqs, freqs), dim=-1)  # [P, D]
        self.cos = emb.cos().to(device=self.device, dtype=self.dtype).contiguous()  # [P, D]
        sin = emb.sin()  # [P, D]
        sin[:, : sin.shape[1] // 2].neg_()
        self.sin = sin.to(device=self.device, dtype=self.dtype).contiguous()  # [P, D], first half negated

    def ensure(self, max_position: int) -> None:
        """Grow the tables (doubling) so that positions ``<= max_position`` can be looked up.

        Replaces ``cos``/``sin`` with new tensors when it grows: a captured CUDA graph that read the
        old ones must be captured again (``GraphDecoder`` calls this before capturing).
        """
        if max_position >= self.cos.shape[0]:
            self._build(max(2 * self.cos.shape[0], max_position + 1))

    def lookup(self, positions: torch.Tensor, max_position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin)`` rows ``[T, 1, D]`` for ``positions`` ``[T]``; ``max_position`` bounds them."""
        self.ensure(max_position)
        return self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)  # [T, 1, D] x2


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[T, heads, D]`` by ``RotaryTable.lookup`` rows ``[T, 1, D]`` (rotate-half form)."""
    half = x.shape[-1] // 2
    swapped = torch.cat((x[..., half:], x[..., :half]), dim=-1)  # [T, heads, D]
    return torch.addcmul(x * cos, swapped, sin)
