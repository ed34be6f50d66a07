"""Mask logits with packed token bitmasks, in place.

Bitmask convention (shared with xgrammar, llguidance and outlines-core): a row is
``W = ceil(V / 32)`` int32 words; token ``t`` is allowed iff bit ``t & 31`` of word ``t >> 5`` is
set. Masking writes ``-inf`` into every disallowed column and leaves allowed columns untouched::

    for i, r in enumerate(rows):                   # r = indices[i] (or i), or by FSM state
        for t in range(logits.shape[1]):
            allowed = t < 32 * W and (mask_row[t >> 5] >> (t & 31)) & 1
            if not allowed:
                logits[r, t] = -inf

Columns beyond ``32 * W`` are disallowed; bits beyond ``logits.shape[1]`` are ignored. A row whose
mask allows nothing becomes all ``-inf`` (the sampler then reports no token, see ``sampling.py``).
"""

from __future__ import annotations

import torch

from structgen.kernels import _backend as B

MASK_BLOCK = 2048  # logits columns per Triton program (64 bitmask words)


def unpack_bitmask(words: torch.Tensor, n_cols: int) -> torch.Tensor:
    """Expand packed rows ``[R, W] int32`` to ``[R, n_cols] bool`` (True = allowed)."""
    shifts = torch.arange(32, dtype=torch.int32, device=words.device)  # [32]
    bits = (words.unsqueeze(-1) >> shifts) & 1  # [R, W, 32] int32
    allowed = bits.reshape(words.shape[0], 32 * words.shape[1]).bool()  # [R, 32W]
    if allowed.shape[1] >= n_cols:
        return allowed[:, :n_cols]
    pad = allowed.new_zeros((words.shape[0], n_cols - allowed.shape[1]))  # columns past 32W: disallowed
    return torch.cat([allowed, pad], dim=1)  # [R, n_cols]


def pack_bitmask(allowed: torch.Tensor) -> torch.Tensor:
    """Pack ``[R, V] bool`` (True = allowed) into ``[R, ceil(V / 32)] int32`` rows (inverse of unpack)."""
    n_rows, n_cols = allowed.shape
    n_words = (n_cols + 31) // 32
    padded = allowed.new_zeros((n_rows, n_words * 32))
    padded[:, :n_cols] = allowed
    weights = torch.ones(32, dtype=torch.int64, device=allowed.device) << torch.arange(32, device=allowed.device)
    words = (padded.reshape(n_rows, n_words, 32).long() * weights).sum(-1)  # [R, W] in [0, 2**32)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def rows_by_state(table: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """Gather ``table[states]`` as ``[B, W] int32``; states outside ``[0, S)`` give all-zero rows."""
    n_states = table.shape[0]
    valid = (states >= 0) & (states < n_states)  # [B] bool
    if n_states == 0:
        return table.new_zeros((states.shape[0], table.shape[1]))
    rows = table[states.long().clamp(0, n_states - 1)]  # [B, W] int32
    return rows * valid.unsqueeze(1).to(rows.dtype)


# ---------------------------------------------------------------- apply_token_bitmask_


def _check_bitmask_args(logits, bitmask, indices) -> None:
    B.check_tensor("logits", logits, ndim=2, dtypes=B.FLOAT_DTYPES)
    B.check_tensor("bitmask", bitmask, ndim=2, dtypes=(torch.int32,), device=logits.device)
    B.check_last_dim_contiguous("logits", logits)
    B.check_last_dim_contiguous("bitmask", bitmask)
    if indices is None:
        B.check_rows("bitmask", bitmask, logits.shape[0], "logits")
        return
    B.check_tensor("indices", indices, ndim=1, dtypes=B.INT_DTYPES, device=logits.device)
    B.check_rows("bitmask", bitmask, indices.shape[0], "indices")


def apply_token_bitmask_(
    logits: torch.Tensor, bitmask: torch.Tensor, indices: torch.Tensor | None = None, *, backend: str = "auto"
) -> torch.Tensor:
    """Write ``-inf`` into the disallowed columns of ``logits``, in place; return ``logits``.

    Args:
        logits: ``[B, V]`` float32/bfloat16/float16, last dimension contiguous.
        bitmask: ``[R, W]`` int32 packed rows. Without ``indices`` ``R == B`` and row ``i`` masks
            logits row ``i``; with ``indices`` (``[R]`` int32/int64, distinct, each in ``[0, B)``)
            bitmask row ``i`` masks logits row ``indices[i]`` and the other rows are untouched.
            (xgrammar's ``indices`` instead selects rows of a full-batch bitmask:
            pass ``bitmask[indices]`` to get that.)
        backend: ``"auto"``, ``"torch"`` or ``"triton"`` (see ``_backend``).
    """
    _check_bitmask_args(logits, bitmask, indices)
    if B.resolve_backend(backend, logits.device) == "triton":
        return apply_token_bitmask_triton_(logits, bitmask, indices)
    return apply_token_bitmask_torch_(logits, bitmask, indices)


def apply_token_bitmask_torch_(logits, bitmask, indices=None) -> torch.Tensor:
    """Reference implementation of :func:`apply_token_bitmask_` (arguments not validated)."""
    allowed = unpack_bitmask(bitmask, logits.shape[1])  # [R, V] bool
    if indices is None:
        return logits.masked_fill_(~allowed, float("-inf"))
    idx = indices.long()  # [R]
    logits[idx] = logits[idx].masked_fill(~allowed, float("-inf"))
    return logits


def apply_token_bitmask_triton_(logits, bitmask, indices=None) -> torch.Tensor:
    """Triton implementation of :func:`apply_token_bitmask_` (arguments not validated)."""
    n_rows, n_cols = bitmask.shape[0], logits.shape[1]
    if n_rows == 0 or n_cols == 0:
        return logits
    k = _mask_kernels()
    grid = (n_rows, (n_cols + MASK_BLOCK - 1) // MASK_BLOCK)
    k.bitmask[grid](
        logits, bitmask, indices if indices is not None else bitmask, n_cols, bitmask.shape[1],
        logits.stride(0), bitmask.stride(0), HAS_INDICES=indices is not None, BLOCK=MASK_BLOCK,
    )
    return logits


# ---------------------------------------------------------------- mask_logits_by_state_


def mask_logits_by_state_(
    logits: torch.Tensor, table: torch.Tensor, states: torch.Tensor, *, backend: str = "auto"
) -> torch.Tensor:
    """Mask each logits row with the bitmask row of its FSM state, in place; return ``logits``.

    One fused kernel: row ``b`` is masked with ``table[states[b]]``. A row with ``states[b] < 0`` is
    unconstrained and left untouched; a state ``>= S`` (a caller bug, not checked to avoid a host
    sync) allows nothing, so its row becomes all ``-inf``.

    Args:
        logits: ``[B, V]`` float32/bfloat16/float16, last dimension contiguous.
        table: ``[S, W]`` int32 packed bitmask rows, one per FSM state (e.g. several automata
            concatenated, with per-sequence state offsets).
        states: ``[B]`` int32/int64.
    """
    B.check_tensor("logits", logits, ndim=2, dtypes=B.FLOAT_DTYPES)
    B.check_tensor("table", table, ndim=2, dtypes=(torch.int32,), device=logits.device)
    B.check_tensor("states", states, ndim=1, dtypes=B.INT_DTYPES, device=logits.device)
    B.check_last_dim_contiguous("logits", logits)
    B.check_last_dim_contiguous("table", table)
    B.check_rows("states", states, logits.shape[0], "logits")
    if B.resolve_backend(backend, logits.device) == "triton":
        return mask_logits_by_state_triton_(logits, table, states)
    return mask_logits_by_state_torch_(logits, table, states)


def mask_logits_by_state_torch_(logits, table, states) -> torch.Tensor:
    """Reference implementation of :func:`mask_logits_by_state_` (arguments not validated)."""
    allowed = unpack_bitmask(rows_by_state(table, states), logits.shape[1])  # [B, V] bool
    allowed |= (states < 0).unsqueeze(1)  # unconstrained rows
    return logits.masked_fill_(~allowed, float("-inf"))


def mask_logits_by_state_triton_(logits, table, states) -> torch.Tensor:
    """Triton implementation of :func:`mask_logits_by_state_` (arguments not validated)."""
    n_rows, n_cols = logits.shape
    if n_rows == 0 or n_cols == 0:
        return logits
    k = _mask_kernels()
    grid = (n_rows, (n_cols + MASK_BLOCK - 1) // MASK_BLOCK)
    k.by_state[grid](
        logits, table, states, n_cols, table.shape[1], table.shape[0],
        logits.stride(0), table.stride(0), BLOCK=MASK_BLOCK,
    )
    return logits


def _mask_kernels():
    return B.kernel_module("structgen.kernels._triton_mask")
