"""Skinny matrix products of a decode step: ``y = x @ w.T (+ b)`` for a few rows ``x``.

At batch 1-4 a projection reads its whole weight matrix to produce a handful of outputs, so its
time is the weight's bytes over memory bandwidth. The Triton kernel streams ``w`` (``[N, K]``,
rows contiguous, as the model stores it) once with wide loads along ``K``, from enough programs
to keep every SM's loads in flight, and accumulates in fp32; where ``N`` alone gives too few
programs, ``K`` is split and a second small kernel adds the partial sums (in a fixed order).
Launch parameters come from a fixed table by shape class (:func:`gemv_config`) — no autotuning,
so the call can be captured in a CUDA graph.

``gated=True`` fuses the MLP activation into the down projection: ``x`` is the ``[M, 2 * K]``
output of the fused gate/up projection (gate first) and the product uses ``silu(gate) * up``.

``gemv_norm`` fuses the pre-norm of a decoder layer into the projection: the input is
``rms_norm(x + delta) * ln``, computed by every program from the raw rows (``K`` columns from L2
before its weight tiles), and the residual ``x + delta`` is written once as a second output, so the
residual add + RMSNorm kernel before the projection goes away. On an H100 (bf16, Llama-3.2-1B shapes,
one row) it takes qkv 7.3 µs vs 9.0 for the compiled add + RMSNorm kernel then ``gemv``, gate/up 25.6
vs 27.2, LM head (final norm, no add) 169.4 vs 170.7; at two rows it loses (qkv 11.3 vs 10.0,
gate/up 40.0 vs 29.2, LM head 215.8 vs 173.5 µs: every program re-reads both rows), so the decoder
uses it for one row only.

* :func:`gemv`: the entry point (``backend="auto" | "torch" | "triton"``); rows beyond
  :data:`GEMV_MAX_ROWS` run the torch reference (a GEMM is then the better kernel).
* :func:`gemv_norm`: ``(x + delta, rms_norm(x + delta) * ln @ w.T + b)``, same backends and row bound.

On an H100 (bf16, Llama-3.2-1B shapes, weights not in L2) the kernel beats cuBLAS at one row (LM
head 168 vs 187 µs, MLP up 24.4 vs 25.2, MLP down 15.0 vs 16.5 with cuBLAS's split-K reduce, qkv
6.6 vs 7.3, o 5.4 vs 6.3), mostly at two (LM head 173 vs 186 µs; MLP up 26.2 vs 25.8 is the
exception) and loses at four (LM head 231 vs 187 µs, MLP up 34 vs 26 µs): callers choose their
row bound (the decoder uses it up to two rows).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from structgen.errors import KernelInputError
from structgen.kernels import _backend as B

GEMV_MAX_ROWS = 4  # rows of x the Triton kernel takes (one fp32 accumulator tile per row)
_REDUCE_BLOCK = 1024
_NORM_BLOCK = 4096  # input columns per step of gemv_norm's sum of squares (a 2048-wide row in one step)


class GemvConfig(NamedTuple):
    """Launch parameters of the Triton kernel: ``[block_n, block_k]`` weight tiles, ``unroll`` (1 or
    2) of them loaded per loop step, ``split_k`` programs along K per block of ``block_n`` outputs,
    ``num_warps`` per program."""

    block_n: int
    block_k: int
    split_k: int
    num_warps: int
    unroll: int = 1


def gemv(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None = None,
    *,
    gated: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """Return ``x @ w.T + b`` as a new ``[M, N]`` tensor in x's dtype (fp32 accumulation).

    Args:
        x: ``[M, K]`` float32/bfloat16/float16 (``[M, 2 * K]``, gate then up, when ``gated``),
            contiguous in its last dimension.
        w: ``[N, K]`` in x's dtype, contiguous (the ``[out, in]`` layout of a linear layer).
        b: optional ``[N]`` bias in x's dtype.
        gated: use ``silu(x[:, :K]) * x[:, K:]`` as the input rows (the MLP activation).
        backend: ``"auto"`` (Triton on CUDA for ``M <= GEMV_MAX_ROWS``), ``"torch"``, ``"triton"``.
    Raises:
        KernelDtypeError: a non-tensor or a dtype other than x's float dtype.
        KernelInputError: shapes that do not fit, a non-contiguous ``w``, or a backend that cannot run.
    """
    check_gemv(x, w, b, gated)
    if B.resolve_backend(backend, x.device) == "triton" and x.shape[0] <= GEMV_MAX_ROWS:
        return gemv_triton(x, w, b, gated=gated)
    return gemv_torch(x, w, b, gated=gated)


def check_gemv(x, w, b, gated: bool) -> None:
    """Validate the arguments of :func:`gemv` (``KernelDtypeError`` / ``KernelInputError``)."""
    B.check_tensor("x", x, ndim=2, dtypes=B.FLOAT_DTYPES)
    B.check_tensor("w", w, ndim=2, dtypes=(x.dtype,), device=x.device)
    B.check_last_dim_contiguous("x", x)
    if not w.is_contiguous():
        raise KernelInputError(f"w must be a contiguous [N, K] tensor (strides {w.stride()}); pass w.contiguous()")
    width = 2 * w.shape[1] if gated else w.shape[1]
    if x.shape[1] != width:
        what = f"2 * K = {width} (gate then up)" if gated else f"K = {width}"
        raise KernelInputError(f"x has {x.shape[1]} columns but w {tuple(w.shape)} needs {what}")
    if b is not None:
        B.check_tensor("b", b, ndim=1, dtypes=(x.dtype,), device=x.device)
        if b.shape[0] != w.shape[0] or (b.numel() > 0 and b.stride(0) != 1):
            raise KernelInputError(f"b must be a contiguous [{w.shape[0]}] tensor, got {tuple(b.shape)}")


def gemv_torch(x, w, b=None, *, gated: bool = False) -> torch.Tensor:
    """Reference implementation of :func:`gemv`: ``F.linear``, the activation in x's dtype as the model's."""
    if gated:
        gate, up = x.chunk(2, dim=-1)
        x = F.silu(gate) * up  # [M, K]
    return F.linear(x, w, b)


# (block_n, tile row bytes, split_k, num_warps, unroll) by shape class and rows; the fastest on an
# H100 at the Llama-3.2-1B shapes in bf16 (bench/kernel_bench.py --groups gemv --gemv-configs)
_CONFIGS = {
    1: {"vocab": (8, 1024, 1, 4, 1), "wide": (8, 1024, 1, 4, 1), "long": (4, 1024, 2, 4, 1),
        "fused_qkv": (4, 1024, 1, 4, 1), "square": (4, 1024, 1, 4, 1)},
    2: {"vocab": (4, 1024, 1, 4, 2), "wide": (2, 2048, 1, 4, 1), "long": (4, 2048, 1, 4, 2),
        "fused_qkv": (2, 1024, 1, 2, 2), "square": (4, 2048, 1, 4, 2)},
}
_MORE_ROWS = (2, 1024, 1, 2, 2)  # 3-4 rows: small programs keep the four accumulators in registers


def shape_class(n: int, k: int) -> str:
    """``"vocab"`` (an LM head), ``"wide"`` (N >= 4K: MLP up), ``"long"`` (K >= 4N: MLP down),
    ``"fused_qkv"`` (K < N < 4K) or ``"square"``."""
    if n >= 65536:
        return "vocab"
    if n >= 4 * k:
        return "wide"
    if k >= 4 * n:
        return "long"
    return "fused_qkv" if n > k else "square"


def gemv_config(m: int, n: int, k: int, itemsize: int) -> GemvConfig:
    """Launch parameters for ``M = m`` rows and a ``[n, k]`` weight of ``itemsize``-byte elements.

    From a fixed table by :func:`shape_class` and ``m`` (a tile row spans a fixed number of bytes
    of a weight row, so 32-bit weights get half the columns of 16-bit ones).
    """
    block_n, row_bytes, split_k, num_warps, unroll = _CONFIGS.get(m, {}).get(shape_class(n, k), _MORE_ROWS)
    return GemvConfig(block_n, row_bytes // itemsize, split_k, num_warps, unroll)


def gemv_triton(x, w, b=None, *, gated: bool = False, config: GemvConfig | None = None) -> torch.Tensor:
    """Triton implementation of :func:`gemv` for ``M <= GEMV_MAX_ROWS`` (``config``: override the table)."""
    m, n, k = x.shape[0], w.shape[0], w.shape[1]
    if m > GEMV_MAX_ROWS:
        raise KernelInputError(f"the Triton gemv takes at most {GEMV_MAX_ROWS} rows, got {m}; use gemv()")
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)  # [M, N]
    if m == 0 or n == 0:
        return out
    if k == 0:
        return out.zero_() if b is None else out.copy_(b.expand(m, n))
    cfg, k_split, split_k, part = _launch_plan(config, m, n, k, x, out)
    kernels = B.kernel_module("structgen.kernels._triton_gemv")
    kernels.gemv[(triton_cdiv(n, cfg.block_n), split_k)](
        x, w, b if b is not None else out, out, part, n, k, k_split, k, x.stride(0), w.stride(0), out.stride(0),
        M=m, HAS_BIAS=b is not None, GATED=gated, EVEN_K=k % (cfg.block_k * cfg.unroll) == 0, SPLIT_K=split_k,
        BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, UNROLL=cfg.unroll, num_warps=cfg.num_warps,
    )
    if split_k > 1:
        kernels.gemv_split_reduce[(triton_cdiv(n, _REDUCE_BLOCK), m)](
            part, b if b is not None else out, out, n, out.stride(0),
            M=m, HAS_BIAS=b is not None, SPLIT_K=split_k, BLOCK=_REDUCE_BLOCK,
        )
    return out


def gemv_norm(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None = None,
    *,
    ln: torch.Tensor,
    eps: float,
    delta: torch.Tensor | None = None,
    prefetch: bool = True,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(r, rms_norm(r) * ln @ w.T + b)`` with ``r = x + delta`` (``x`` itself without ``delta``).

    The residual ``r`` is a new ``[M, K]`` tensor in x's dtype when ``delta`` is given; the product a
    new ``[M, N]`` one (fp32 normalisation and accumulation; ``r`` and the normalised input are
    rounded to x's dtype, as ``x + delta`` and ``F.rms_norm`` round them).

    Args:
        x: ``[M, K]`` float32/bfloat16/float16 residual rows, contiguous in the last dimension.
        w: ``[N, K]`` in x's dtype, contiguous.
        b: optional ``[N]`` bias in x's dtype.
        ln: ``[K]`` RMSNorm weight in x's dtype.
        eps: RMSNorm epsilon (``>= 0``; ``> 0`` where a row can be all zeros).
        delta: optional ``[M, K]`` in x's dtype, contiguous in the last dimension, added to ``x`` first.
        prefetch: the Triton path issues each program's first weight loads before it reads the
            input rows for their sums of squares (same result; False reads the rows first).
        backend: as for :func:`gemv`.
    Raises:
        KernelDtypeError: a non-tensor or a dtype other than x's float dtype.
        KernelInputError: shapes that do not fit, a non-contiguous ``w`` / ``ln``, a negative ``eps``,
            or a backend that cannot run.
    """
    check_gemv(x, w, b, False)
    B.check_tensor("ln", ln, ndim=1, dtypes=(x.dtype,), device=x.device)
    if ln.shape[0] != x.shape[1] or (ln.numel() > 0 and ln.stride(0) != 1):
        raise KernelInputError(f"ln must be a contiguous [{x.shape[1]}] tensor, got {tuple(ln.shape)}")
    if delta is not None:
        B.check_tensor("delta", delta, ndim=2, dtypes=(x.dtype,), device=x.device)
        B.check_last_dim_contiguous("delta", delta)
        if delta.shape != x.shape:
            raise KernelInputError(f"delta {tuple(delta.shape)} must have x's shape {tuple(x.shape)}")
    if not isinstance(eps, (int, float)) or not eps >= 0:
        raise KernelInputError(f"eps must be a non-negative number, got {eps!r}")
    if B.resolve_backend(backend, x.device) == "triton" and x.shape[0] <= GEMV_MAX_ROWS:
        return gemv_norm_triton(x, w, b, ln=ln, eps=eps, delta=delta, prefetch=prefetch)
    return gemv_norm_torch(x, w, b, ln=ln, eps=eps, delta=delta)


def gemv_norm_torch(x, w, b=None, *, ln, eps: float, delta=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference implementation of :func:`gemv_norm`: the add, ``F.rms_norm`` and ``F.linear`` in x's dtype."""
    r = x if delta is None else x + delta  # [M, K]
    return r, F.linear(F.rms_norm(r, (r.shape[-1],), ln, eps), w, b)


def gemv_norm_triton(x, w, b=None, *, ln, eps: float, delta=None, config: GemvConfig | None = None,
                     prefetch: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton implementation of :func:`gemv_norm` for ``M <= GEMV_MAX_ROWS`` (``config``: override the table)."""
    m, n, k = x.shape[0], w.shape[0], w.shape[1]
    if m > GEMV_MAX_ROWS:
        raise KernelInputError(f"the Triton gemv takes at most {GEMV_MAX_ROWS} rows, got {m}; use gemv_norm()")
    r = x if delta is None else torch.empty((m, k), dtype=x.dtype, device=x.device)  # [M, K]
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)  # [M, N]
    if m == 0 or n == 0 or k == 0:
        if delta is not None:
            torch.add(x, delta, out=r)
        if k == 0 and m > 0:
            out.zero_() if b is None else out.copy_(b.expand(m, n))
        return r, out
    cfg, k_split, split_k, part = _launch_plan(config, m, n, k, x, out)
    d = delta if delta is not None else x
    kernels = B.kernel_module("structgen.kernels._triton_gemv")
    kernels.gemv_norm[(triton_cdiv(n, cfg.block_n), split_k)](
        x, d, ln, r, w, b if b is not None else out, out, part, n, k, k_split, float(eps),
        x.stride(0), d.stride(0), r.stride(0), w.stride(0), out.stride(0),
        M=m, HAS_DELTA=delta is not None, HAS_BIAS=b is not None, EVEN_K=k % (cfg.block_k * cfg.unroll) == 0, SPLIT_K=split_k,
        BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, UNROLL=cfg.unroll, num_warps=cfg.num_warps,
        BLOCK_R=min(_NORM_BLOCK, max(cfg.block_k, next_power_of_2(k))), PREFETCH=bool(prefetch),
    )
    if split_k > 1:
        kernels.gemv_split_reduce[(triton_cdiv(n, _REDUCE_BLOCK), m)](
            part, b if b is not None else out, out, n, out.stride(0),
            M=m, HAS_BIAS=b is not None, SPLIT_K=split_k, BLOCK=_REDUCE_BLOCK,
        )
    return r, out


def next_power_of_2(n: int) -> int:
    """The least power of two ``>= n`` (1 for ``n <= 1``)."""
    return 1 << max(0, n - 1).bit_length()


def triton_cdiv(a: int, b: int) -> int:
    """Ceiling of ``a / b`` for positive ``b``."""
    return -(-a // b)


def _launch_plan(config, m: int, n: int, k: int, x: torch.Tensor, out: torch.Tensor):
    """``(config, k_split, split_k, part)`` of a gemv launch: the config (``gemv_config`` by default),
    K columns per split (a multiple of one loop step), the split count, and the fp32 partials
    buffer ``[split_k, M, N]`` (``out`` itself when there is one split)."""
    cfg = config or gemv_config(m, n, k, x.element_size())
    if cfg.unroll not in (1, 2):
        raise KernelInputError(f"GemvConfig.unroll must be 1 or 2, got {cfg.unroll}")
    step = cfg.block_k * cfg.unroll  # K columns per loop step
    k_split = triton_cdiv(triton_cdiv(k, cfg.split_k), step) * step
    split_k = triton_cdiv(k, k_split)
    part = torch.empty((split_k, m, n), dtype=torch.float32, device=x.device) if split_k > 1 else out
    return cfg, k_split, split_k, part
