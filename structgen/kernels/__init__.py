"""Device kernels of the decode step, each a Triton kernel with a plain-torch reference.

Every entry point takes ``backend="auto"`` (Triton on CUDA when triton imports, torch otherwise),
``"torch"`` or ``"triton"``, validates dtype/shape/device first (``KernelDtypeError`` is a
``TypeError``, ``KernelInputError`` a ``ValueError``; both say the fix), and never synchronises
with the host on the Triton path except where a docstring says so.

* ``mask``: :func:`apply_token_bitmask_`, :func:`mask_logits_by_state_` (packed int32 bitmasks)
* ``fsm``: :func:`advance_states` (CSR binary search of the sampled token)
* ``sampling``: :func:`masked_sample` (mask + greedy / Gumbel-max with Philox noise, fused)
* ``attention``: :func:`decode_attention`, :func:`extend_attention` over the slot-indexed KV pool,
  :func:`decode_attention_rope_kv` (RoPE + KV write + decode attention in one launch)
* ``rope_kv``: :func:`rope_kv_write` (RoPE of a step's q/k fused with the KV-pool write)
* ``gemv``: :func:`gemv` (``x @ w.T + b`` for a few rows, optionally with the MLP activation fused in),
  :func:`gemv_norm` (the same with the residual add + RMSNorm before it fused in)
"""

from structgen.kernels._backend import BACKENDS, resolve_backend
from structgen.kernels.attention import (
    decode_attention,
    decode_attention_rope_kv,
    extend_attention,
)
from structgen.kernels.fsm import advance_states
from structgen.kernels.gemv import gemv, gemv_norm
from structgen.kernels.mask import (
    apply_token_bitmask_,
    mask_logits_by_state_,
    pack_bitmask,
    unpack_bitmask,
)
from structgen.kernels.rope_kv import rope_kv_write
from structgen.kernels.sampling import gumbel_noise, masked_sample

__all__ = [
    "BACKENDS",
    "advance_states",
    "apply_token_bitmask_",
    "decode_attention",
    "decode_attention_rope_kv",
    "extend_attention",
    "gemv",
    "gemv_norm",
    "gumbel_noise",
    "mask_logits_by_state_",
    "masked_sample",
    "pack_bitmask",
    "resolve_backend",
    "rope_kv_write",
    "unpack_bitmask",
]
