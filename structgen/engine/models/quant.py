"""4-bit group-quantised projection weights for CPU decoding (the GGUF ``Q4_1`` layout).

A ``Q4_1`` checkpoint (the embedded default model ships this way) stores each run of 32 input
weights of an output row as 4-bit integers ``q`` with a scale ``d`` and an offset ``m``:
``w = q * d + m``. Loading it dequantises to floats; on the CPU a decode step then reads every
weight at 2 or 4 bytes, which bounds its speed (decoding a small batch is weight-bandwidth bound).
``Int4Weight`` recovers ``q``, ``d`` and ``m`` from the dequantised matrix — only when the matrix
is exactly of that form, so nothing is approximated — and multiplies with PyTorch's CPU int4 kernel
(``_weight_int4pack_mm_for_cpu``, bfloat16 activations), reading half a byte per weight.

The kernel computes ``w = (q - 8) * scale + zero`` per group, so ``scale = d`` and
``zero = m + 8 d``, both held in bfloat16 as the kernel requires: the one rounding this adds is the
scales' (relative 2^-9), the same order as storing the weights themselves in bfloat16.
Prefill chunks (many rows) run faster as a dense matmul, so the dense bfloat16 matrix is kept too
and used from ``DENSE_MIN_ROWS`` rows up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GROUP = 32  # input weights per scale/offset pair (GGUF Q4_1, Q4_0)
DENSE_MIN_ROWS = 48  # from this many rows (prefill chunks) the dense bfloat16 matmul is faster
_MAX_STEP_ERROR = 1e-3  # a weight may sit this far (in quantisation steps) from the 4-bit grid


def int4_supported() -> bool:
    """True when this PyTorch has the CPU int4 matmul kernel and the CPU computes bfloat16 natively."""
    ops = torch.ops.aten
    if not (hasattr(ops, "_weight_int4pack_mm_for_cpu") and hasattr(ops, "_convert_weight_to_int4pack_for_cpu")):
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class Int4Weight:
    """A ``[out, in]`` projection held as packed 4-bit groups plus its dense bfloat16 copy.

    Build with ``Int4Weight.from_dense`` (None when the matrix is not 4-bit group-quantised);
    ``matmul(x)`` is ``x @ W.T`` for ``x`` ``[T, in]`` bfloat16.
    """

    def __init__(self, packed: torch.Tensor, scales_zeros: torch.Tensor, dense: torch.Tensor, shape: tuple[int, int]):
        self.packed = packed  # the kernel's packed layout of q [out, in]
        self.scales_zeros = scales_zeros  # [in / GROUP, out, 2] bfloat16: (scale, zero) per group
        self.dense = dense  # [out, in] bfloat16, for prefill chunks
        self.shape = shape  # (out, in)

    @classmethod
    def from_dense(cls, w: torch.Tensor) -> Int4Weight | None:
        """Pack float32 ``w`` ``[out, in]`` if every group of ``GROUP`` inputs is ``q * d + m`` with
        ``q`` in 0..15 (to within ``_MAX_STEP_ERROR`` of a step); otherwise None."""
        if w.dim() != 2 or w.dtype != torch.float32 or w.shape[1] % GROUP or w.device.type != "cpu":
            return None
        n, k = w.shape
        g = w.reshape(n, k // GROUP, GROUP)  # [out, groups, GROUP]
        lo, hi = torch.aminmax(g, dim=-1)  # [out, groups]: m (the quantiser maps a group's minimum to 0)
        step = (hi - lo) / 15  # [out, groups]: d (and its maximum to 15)
        safe = torch.where(step > 0, step, torch.ones_like(step))[..., None]
        q = (g - lo[..., None]).div_(safe).round_()  # [out, groups, GROUP], in 0..15
        err = torch.addcmul(lo[..., None], q, step[..., None]).sub_(g).abs_()  # reconstruction error
        if float(err.sub_(safe * _MAX_STEP_ERROR).amax()) > 0:
            return None
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.reshape(n, k).to(torch.int32), 1)
        scales_zeros = torch.stack([step, lo + 8 * step], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)
        return cls(packed, scales_zeros, w.to(torch.bfloat16), (n, k))

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T`` for ``x`` ``[T, in]`` (bfloat16) → ``[T, out]`` bfloat16."""
        if x.shape[0] >= DENSE_MIN_ROWS:
            return F.linear(x, self.dense)
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x.contiguous(), self.packed, GROUP, self.scales_zeros)

    def dequantize(self) -> torch.Tensor:
        """The weights as float32 ``[out, in]``, as the int4 kernel sees them (bfloat16 scales)."""
        n, k = self.shape
        eye = torch.eye(k, dtype=torch.bfloat16)  # [in, in]
        return torch.ops.aten._weight_int4pack_mm_for_cpu(eye, self.packed, GROUP, self.scales_zeros).t().float()

    @property
    def nbytes(self) -> int:
        """Bytes of the packed weights and scales (what a decode step reads)."""
        return self.packed.numel() * self.packed.element_size() + self.scales_zeros.numel() * 2

    def __repr__(self) -> str:
        return f"Int4Weight(out={self.shape[0]}, in={self.shape[1]}, group={GROUP})"
