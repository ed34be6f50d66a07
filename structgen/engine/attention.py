"""Reference attention over the KV pool (plain torch, ``scaled_dot_product_attention``).

The batch's new tokens are rows of one ``[T, ...]`` tensor, sequence after sequence. Sequence
``i`` owns rows ``[start_i, start_i + n_i)`` and its context is ``kv_slots[i]`` (``L_i`` slots:
cached prefix first, its ``n_i`` new tokens last). New token ``r`` (0-based within its sequence)
sits at context index ``L_i - n_i + r`` and attends context indices ``j <= L_i - n_i + r`` (and
``j > L_i - n_i + r - window`` when the model has a sliding window).

``AttentionPlan`` is built once per forward (index tensors, masks) and reused by every layer:

* decode sequences (``n_i == 1``) are gathered into one padded batch and run as one SDPA call,
  padding with the pool's padding slot and masking it out;
* every other sequence (a prefill chunk) runs its own SDPA call, causal within its new tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .kv_cache import PAD_SLOT


@dataclass
class DecodeGroup:
    """Single-token sequences batched together: rows ``rows`` ``[B]`` (None if they are rows 0..B-1)."""

    rows: torch.Tensor | None  # [B] long, rows of the batch holding these tokens
    gather: torch.Tensor  # [B * Lmax] long, slot ids (padded with PAD_SLOT)
    mask: torch.Tensor | None  # [B, 1, 1, Lmax] bool, True = attend; None when nothing is masked
    batch: int
    max_len: int


@dataclass
class PrefillSeq:
    """One multi-token chunk: rows ``[start, stop)`` of the batch over context ``slots`` ``[L]``."""

    start: int
    stop: int
    slots: torch.Tensor  # [L] long
    mask: torch.Tensor | None  # [n, L] bool, True = attend; None means plain causal (no prefix)


@dataclass
class AttentionPlan:
    """What every layer needs to run attention for one ``ForwardBatch``."""

    num_tokens: int
    decode: DecodeGroup | None
    prefills: list[PrefillSeq]


def build_plan(
    seq_lens: list[int], kv_slots: list[torch.Tensor], device: torch.device, window: int | None = None
) -> AttentionPlan:
    """Group sequences into one padded decode batch and per-sequence prefill chunks."""
    starts, total = [], 0
    for n in seq_lens:
        starts.append(total)
        total += n
    dec = [i for i, n in enumerate(seq_lens) if n == 1]
    prefills = [
        _prefill(starts[i], seq_lens[i], kv_slots[i].to(device), device, window)
        for i, n in enumerate(seq_lens)
        if n > 1
    ]
    decode = _decode_group([starts[i] for i in dec], [kv_slots[i] for i in dec], device, window) if dec else None
    return AttentionPlan(num_tokens=total, decode=decode, prefills=prefills)


def _decode_group(
    rows: list[int], slots: list[torch.Tensor], device: torch.device, window: int | None
) -> DecodeGroup:
    lens = [int(s.numel()) for s in slots]
    max_len = max(lens)
    padded = torch.nn.utils.rnn.pad_sequence(slots, batch_first=True, padding_value=PAD_SLOT)  # [B, Lmax]
    mask = None
    if min(lens) != max_len or (window is not None and max_len > window):
        j = torch.arange(max_len)  # [Lmax]
        ln = torch.tensor(lens)[:, None]  # [B, 1]
        keep = j[None, :] < ln  # [B, Lmax]
        if window is not None:
            keep &= j[None, :] > ln - 1 - window
        mask = keep[:, None, None, :].to(device)  # [B, 1, 1, Lmax]
    identity = rows == list(range(len(rows)))
    return DecodeGroup(
        rows=None if identity else torch.tensor(rows, device=device),
        gather=padded.reshape(-1).to(device),
        mask=mask,
        batch=len(rows),
        max_len=max_len,
    )


def _prefill(start: int, n: int, slots: torch.Tensor, device: torch.device, window: int | None) -> PrefillSeq:
    length = int(slots.numel())
    mask = None
    if length != n or (window is not None and length > window):
        q_idx = torch.arange(length - n, length, device=device)[:, None]  # [n, 1]
        k_idx = torch.arange(length, device=device)[None, :]  # [1, L]
        mask = k_idx <= q_idx  # [n, L]
        if window is not None:
            mask &= k_idx > q_idx - window
    return PrefillSeq(start=start, stop=start + n, slots=slots, mask=mask)


def pool_attention(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, plan: AttentionPlan, scale: float
) -> torch.Tensor:
    """Attention of new-token queries ``q`` ``[T, H, D]`` over one layer's pool ``[S+1, KV, D]``.

    The new tokens' K/V must already be written to the pool. Returns ``[T, H, D]``. Grouped-query
    attention: query head ``h`` reads KV head ``h // (H // KV)``.
    """
    dec = plan.decode
    if dec is not None and not plan.prefills and dec.rows is None:
        return _decode(q, k_cache, v_cache, dec, scale)
    out = torch.empty_like(q)  # [T, H, D]
    if dec is not None:
        rows = dec.rows if dec.rows is not None else torch.arange(dec.batch, device=q.device)
        out.index_copy_(0, rows, _decode(q.index_select(0, rows), k_cache, v_cache, dec, scale))
    for p in plan.prefills:
        out[p.start : p.stop] = _prefill_attention(q[p.start : p.stop], k_cache, v_cache, p, scale)
    return out


def _decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, dec: DecodeGroup, scale: float):
    b, heads, dim = q.shape
    kv = k_cache.shape[1]
    k = k_cache.index_select(0, dec.gather).view(b, dec.max_len, kv, dim).transpose(1, 2)  # [B, KV, Lmax, D]
    v = v_cache.index_select(0, dec.gather).view(b, dec.max_len, kv, dim).transpose(1, 2)  # [B, KV, Lmax, D]
    qb = q.view(b, heads, 1, dim)  # [B, H, 1, D]
    o = F.scaled_dot_product_attention(qb, k, v, attn_mask=dec.mask, scale=scale, enable_gqa=kv != heads)
    return o.view(b, heads, dim)  # [B, H, D]


def _prefill_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, p: PrefillSeq, scale: float):
    k = k_cache.index_select(0, p.slots).transpose(0, 1)  # [KV, L, D]
    v = v_cache.index_select(0, p.slots).transpose(0, 1)  # [KV, L, D]
    qh = q.transpose(0, 1)  # [H, n, D]
    gqa = k.shape[0] != qh.shape[0]
    if p.mask is None:
        o = F.scaled_dot_product_attention(qh, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    else:
        o = F.scaled_dot_product_attention(qh, k, v, attn_mask=p.mask, scale=scale, enable_gqa=gqa)
    return o.transpose(0, 1)  # [n, H, D]
