"""Reference attention over the KV pool (plain torch, ``scaled_dot_product_attention``).

The batch's new tokens are rows of one ``[T, ...]`` tensor, sequence after sequence. Sequence
``i`` owns rows ``[start_i, start_i + n_i)`` and its context is ``kv_slots[i]`` (``L_i`` slots:
cached prefix first, its ``n_i`` new tokens last). New token ``r`` (0-based within its sequence)
sits at context index ``L_i - n_i + r`` and attends context indices ``j <= L_i - n_i + r`` (and
``j > L_i - n_i + r - window`` when the model has a sliding window).

``AttentionPlan`` is built once per forward (index tensors, masks) and reused by every layer:

* decode sequences (``n_i == 1``) are gathered into one padded batch, one SDPA call;
* short chunks (``2 <= n_i <= SHORT_CHUNK``, e.g. jump-forward insertions) form a second padded
  batch, queries padded to the longest chunk;
* every longer chunk (a prefill) runs its own SDPA call, causal within its new tokens.

Padding uses the pool's padding slot for keys and masks it out; padded query rows are dropped.
On CUDA the padded key length is rounded up to a multiple of ``CUDA_LEN_BUCKET``: SDPA backends
plan per shape, and a decode batch whose context grows by one each step would otherwise hit a
new shape (and a slow first call) every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .kv_cache import PAD_SLOT

SHORT_CHUNK = 16
CUDA_LEN_BUCKET = 64  # on CUDA, padded key lengths are rounded up to a multiple of this


@dataclass
class PaddedGroup:
    """Sequences run as one ``[B, H, N, D]`` x ``[B, KV, L, D]`` SDPA call (N, L padded)."""

    batch: int
    n_max: int
    max_len: int
    q_rows: torch.Tensor  # [B * N] long, batch row of each padded query (padding repeats a real row)
    identity: bool  # q_rows is 0..B-1 (decodes only, in row order)
    gather: torch.Tensor  # [B * L] long, slot ids (padded with PAD_SLOT)
    mask: torch.Tensor | None  # [B, 1, N, L] bool, True = attend; None when nothing is masked
    keep: torch.Tensor | None  # [t] long, padded query positions that are real (None: all are)
    dst_rows: torch.Tensor | None  # [t] long, batch rows receiving them (None: same as q_rows)


@dataclass
class PrefillSeq:
    """One long chunk: rows ``[start, stop)`` of the batch over context ``slots`` ``[L]``."""

    start: int
    stop: int
    slots: torch.Tensor  # [L] long
    mask: torch.Tensor | None  # [n, L] bool, True = attend; None means plain causal (no prefix)


@dataclass
class AttentionPlan:
    """What every layer needs to run attention for one ``ForwardBatch``."""

    num_tokens: int
    groups: list[PaddedGroup]
    prefills: list[PrefillSeq]

    @property
    def is_plain_decode(self) -> bool:
        """True when the batch is only decodes in row order (attention output needs no scatter)."""
        return not self.prefills and len(self.groups) == 1 and self.groups[0].identity


def build_plan(
    seq_lens: list[int], kv_slots: list[torch.Tensor], device: torch.device, window: int | None = None
) -> AttentionPlan:
    """Group the batch's sequences: padded decodes, padded short chunks, per-sequence prefills."""
    starts, total = [], 0
    for n in seq_lens:
        starts.append(total)
        total += n
    decode = [i for i, n in enumerate(seq_lens) if n == 1]
    short = [i for i, n in enumerate(seq_lens) if 1 < n <= SHORT_CHUNK]
    groups = [
        _padded([starts[i] for i in idx], [seq_lens[i] for i in idx], [kv_slots[i] for i in idx], device, window)
        for idx in (decode, short)
        if idx
    ]
    prefills = [
        _prefill(starts[i], n, kv_slots[i].to(device), device, window)
        for i, n in enumerate(seq_lens)
        if n > SHORT_CHUNK
    ]
    return AttentionPlan(num_tokens=total, groups=groups, prefills=prefills)


def _padded(
    starts: list[int], ns: list[int], slots: list[torch.Tensor], device: torch.device, window: int | None
) -> PaddedGroup:
    b, n_max = len(ns), max(ns)
    lens = [int(s.numel()) for s in slots]
    max_len = max(lens)
    if device.type == "cuda":
        max_len = -(-max_len // CUDA_LEN_BUCKET) * CUDA_LEN_BUCKET
    padded = torch.nn.utils.rnn.pad_sequence(slots, batch_first=True, padding_value=PAD_SLOT)  # [B, L0]
    padded = F.pad(padded, (0, max_len - padded.shape[1]), value=PAD_SLOT)  # [B, L]
    mask = _padded_mask(ns, lens, n_max, max_len, window)
    r = torch.arange(n_max)  # [N]
    st, nt = torch.tensor(starts)[:, None], torch.tensor(ns)[:, None]  # [B, 1] x2
    q_rows = (st + torch.minimum(r[None, :], nt - 1)).reshape(-1)  # [B*N], padding repeats a real row
    real = (r[None, :] < nt).reshape(-1)  # [B*N]
    all_real = bool(real.all())
    identity = n_max == 1 and starts == list(range(b))
    return PaddedGroup(
        batch=b,
        n_max=n_max,
        max_len=max_len,
        q_rows=q_rows.to(device),
        identity=identity,
        gather=padded.reshape(-1).to(device),
        mask=None if mask is None else mask.to(device),
        keep=None if all_real else real.nonzero()[:, 0].to(device),
        dst_rows=None if all_real else q_rows[real].to(device),
    )


def _padded_mask(ns: list[int], lens: list[int], n_max: int, max_len: int, window: int | None):
    """``[B, 1, N, L]`` bool mask (causal, padding, window), or None when nothing needs masking."""
    if n_max == 1 and min(lens) == max_len and (window is None or max_len <= window):
        return None
    j = torch.arange(max_len)[None, None, :]  # [1, 1, L]
    ln = torch.tensor(lens)[:, None, None]  # [B, 1, 1]
    q_pos = ln - torch.tensor(ns)[:, None, None] + torch.arange(n_max)[None, :, None]  # [B, N, 1]
    keep = (j < ln) & (j <= q_pos)  # [B, N, L]
    if window is not None:
        keep &= j > q_pos - window
    return keep[:, None]  # [B, 1, N, L]


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
    if plan.is_plain_decode:
        return _group_attention(q, k_cache, v_cache, plan.groups[0], scale)
    out = torch.empty_like(q)  # [T, H, D]
    for g in plan.groups:
        o = _group_attention(q.index_select(0, g.q_rows), k_cache, v_cache, g, scale)  # [B*N, H, D]
        if g.keep is None:
            out.index_copy_(0, g.q_rows, o)
        else:
            out.index_copy_(0, g.dst_rows, o.index_select(0, g.keep))
    for p in plan.prefills:
        out[p.start : p.stop] = _prefill_attention(q[p.start : p.stop], k_cache, v_cache, p, scale)
    return out


def _group_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, g: PaddedGroup, scale: float):
    """``q`` ``[B*N, H, D]`` (padded queries, sequence-major) → ``[B*N, H, D]``."""
    _, heads, dim = q.shape
    kv = k_cache.shape[1]
    k = k_cache.index_select(0, g.gather).view(g.batch, g.max_len, kv, dim).transpose(1, 2)  # [B, KV, L, D]
    v = v_cache.index_select(0, g.gather).view(g.batch, g.max_len, kv, dim).transpose(1, 2)  # [B, KV, L, D]
    qb = q.view(g.batch, g.n_max, heads, dim).transpose(1, 2)  # [B, H, N, D]
    qb, k, v = _cpu_float32(qb, k, v)
    o = F.scaled_dot_product_attention(qb, k, v, attn_mask=g.mask, scale=scale, enable_gqa=kv != heads)
    return o.transpose(1, 2).reshape(g.batch * g.n_max, heads, dim).to(q.dtype)  # [B*N, H, D]


def _prefill_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, p: PrefillSeq, scale: float):
    k = k_cache.index_select(0, p.slots).transpose(0, 1)  # [KV, L, D]
    v = v_cache.index_select(0, p.slots).transpose(0, 1)  # [KV, L, D]
    qh = q.transpose(0, 1)  # [H, n, D]
    gqa = k.shape[0] != qh.shape[0]
    qh, k, v = _cpu_float32(qh, k, v)
    if p.mask is None:
        o = F.scaled_dot_product_attention(qh, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    else:
        o = F.scaled_dot_product_attention(qh, k, v, attn_mask=p.mask, scale=scale, enable_gqa=gqa)
    return o.transpose(0, 1).to(q.dtype)  # [n, H, D]


def _cpu_float32(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """On the CPU, bf16/fp16 attention inputs as float32: CPU SDPA is faster in float32 there."""
    if xs[0].device.type == "cpu" and xs[0].dtype != torch.float32:
        return tuple(x.float() for x in xs)
    return xs
