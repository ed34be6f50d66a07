"""Choosing the next token of every row: constraint mask, then greedy or filtered sampling.

``mask_logits_(logits, bitmask)`` applies packed bitmask rows in place (one batched op);
``sample(logits, params, generators)`` returns one token per row. Greedy rows are one batched
argmax; sampled rows each draw from their own ``torch.Generator`` so a seeded request gives the
same output whatever else shares its batch.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch

from .request import SamplingParams


def mask_logits_(logits: torch.Tensor, bitmask: torch.Tensor, rows: torch.Tensor | None = None) -> None:
    """Mask ``logits`` in place with packed allowed-token bitmasks, in one batched op.

    logits: ``[n, V]`` float; bitmask: ``[m, ceil(V/32)]`` int32, one row per masked logits row
    (bit ``t & 31`` of word ``t >> 5`` set = token ``t`` allowed; columns past ``32 * W`` are
    disallowed); rows: ``[m]`` distinct indices of the masked rows (None: every row, ``m == n``).
    """
    from ..kernels.mask import apply_token_bitmask_

    if logits.device.type == "cpu" and bitmask.device.type == "cpu":
        _mask_cpu_(logits, bitmask, rows)
        return
    bitmask = bitmask.to(logits.device, non_blocking=True)  # [m, W] int32
    if rows is not None:
        rows = rows.to(logits.device, non_blocking=True)  # [m]
    apply_token_bitmask_(logits, bitmask, rows)


def _mask_cpu_(logits: torch.Tensor, bitmask: torch.Tensor, rows: torch.Tensor | None) -> None:
    """``mask_logits_`` on the CPU: numpy's bit unpacking, then an in-place fill of each row."""
    n_cols = logits.shape[1]
    bits = np.unpackbits(bitmask.contiguous().numpy().view(np.uint8), axis=1, bitorder="little")  # [m, 32W]
    blocked = torch.from_numpy(bits[:, :n_cols] == 0)  # [m, <=V] bool
    targets = range(logits.shape[0]) if rows is None else rows.tolist()
    for k, r in enumerate(targets):
        row = logits[r]
        row[: blocked.shape[1]].masked_fill_(blocked[k], float("-inf"))
        row[blocked.shape[1] :] = float("-inf")  # columns past 32 * W are disallowed


class SampleOutput(NamedTuple):
    tokens: torch.Tensor  # [n] long, on the CPU
    logprobs: torch.Tensor  # [n] float32 on the CPU: log-probability of each chosen token


def sample(
    logits: torch.Tensor, params: Sequence[SamplingParams], generators: Sequence[torch.Generator | None],
    raw_lse: torch.Tensor | None = None, want_logprobs: bool = True,
) -> SampleOutput:
    """One token per row of ``logits [n, V]`` (already masked).

    raw_lse: ``[n]`` log-sum-exp of each row *before* masking; the returned log-probabilities
    are ``logits[i, token] - raw_lse[i]`` (the unmasked model's), or of the masked row when None.
    want_logprobs: False skips computing them (``logprobs`` is then all zeros).
    """
    logits = logits.float()
    n = logits.shape[0]
    tokens = logits.argmax(dim=-1)  # [n]
    for i in range(n):
        if not params[i].greedy:
            tokens[i] = _sample_row(logits[i], params[i], generators[i])
    if not want_logprobs:
        return SampleOutput(tokens.cpu(), torch.zeros(n))
    lse = raw_lse if raw_lse is not None else torch.logsumexp(logits, dim=-1)  # [n]
    chosen = logits.gather(1, tokens[:, None])[:, 0]  # [n]
    return SampleOutput(tokens.cpu(), (chosen - lse).cpu())


def _sample_row(row: torch.Tensor, p: SamplingParams, gen: torch.Generator | None) -> int:
    """Draw one token from ``row [V]`` with temperature, top-k, top-p and min-p filtering."""
    x = row / p.temperature  # [V]
    if p.top_k > 0 and p.top_k < x.numel():
        kth = torch.topk(x, p.top_k).values[-1]
        x = x.masked_fill(x < kth, float("-inf"))
    probs = torch.softmax(x, dim=-1)  # [V]
    if p.min_p > 0:
        probs = probs.masked_fill(probs < p.min_p * probs.max(), 0.0)
    if p.top_p < 1.0:
        probs = _top_p(probs, p.top_p)
    if not bool(torch.isfinite(probs).all()) or float(probs.sum()) <= 0:
        return int(row.argmax())
    if probs.device.type != "cpu":
        probs = probs.cpu()
    return int(torch.multinomial(probs, 1, generator=gen))


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest most-likely set whose mass reaches ``top_p`` (the top token always stays)."""
    sorted_p, order = torch.sort(probs, descending=True)  # [V]
    before = torch.cumsum(sorted_p, dim=0) - sorted_p  # mass strictly before each token
    drop = before >= top_p * float(sorted_p.sum())
    sorted_p = sorted_p.masked_fill(drop, 0.0)
    out = torch.zeros_like(probs)
    out[order] = sorted_p
    return out


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (a fresh random seed when None)."""
    g = torch.Generator(device="cpu")
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g
