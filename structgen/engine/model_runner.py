"""``ForwardBatch`` → logits over a ``KVPool``: the model runner the scheduler drives.

    pool = runner.new_kv_pool(4096)
    slots = pool.alloc(len(prompt))
    batch = ForwardBatch.build([(prompt_ids, 0, slots, slots)])       # one prefill, no cached prefix
    logits = runner.forward(batch, pool)                               # [1, vocab] float32, last token

``load_model`` (in ``loader.py``) builds a ``ModelRunner`` from a folder, a GGUF file or a hub id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import InvalidBatchError
from .attention import build_plan
from .kv_cache import KVPool
from .models.config import ModelConfig
from .models.decoder import DecoderModel


@dataclass
class ForwardBatch:
    """New tokens of several sequences, concatenated sequence after sequence.

    ``input_ids``/``positions``/``out_slots`` are ``LongTensor [T]``: token ids, their absolute
    positions (for RoPE), and the pool slot each token's K/V is written to. ``seq_lens[i]`` new
    tokens belong to sequence ``i`` (``sum(seq_lens) == T``; 1 for a decode step, more for a
    prefill chunk). ``kv_slots[i]`` ``LongTensor [L_i]`` is sequence ``i``'s whole context after
    this step: its cached prefix's slots followed by its new tokens' slots (so the last
    ``seq_lens[i]`` entries equal its part of ``out_slots``). Sequences may share prefix slots.
    ``logits_rows`` ``LongTensor [n]`` picks the rows (indices into ``T``) whose logits are wanted.
    """

    input_ids: torch.Tensor
    positions: torch.Tensor
    out_slots: torch.Tensor
    seq_lens: list[int]
    kv_slots: list[torch.Tensor]
    logits_rows: torch.Tensor

    @classmethod
    def build(cls, seqs: Sequence[tuple[Sequence[int], int, torch.Tensor, torch.Tensor]], all_logits: bool = False):
        """From ``(new_token_ids, start_position, out_slots, kv_slots)`` per sequence.

        Logits are kept for each sequence's last new token, or for every row when ``all_logits``.
        """
        ids, pos, outs, lens, ctx, rows, total = [], [], [], [], [], [], 0
        for tokens, start, out, kv in seqs:
            n = len(tokens)
            ids.extend(int(t) for t in tokens)
            pos.extend(range(start, start + n))
            outs.append(torch.as_tensor(out, dtype=torch.long).reshape(-1))
            ctx.append(torch.as_tensor(kv, dtype=torch.long).reshape(-1))
            lens.append(n)
            rows.extend(range(total, total + n) if all_logits else [total + n - 1])
            total += n
        return cls(
            input_ids=torch.tensor(ids, dtype=torch.long),
            positions=torch.tensor(pos, dtype=torch.long),
            out_slots=torch.cat(outs) if outs else torch.empty(0, dtype=torch.long),
            seq_lens=lens,
            kv_slots=ctx,
            logits_rows=torch.tensor(rows, dtype=torch.long),
        )

    @property
    def num_tokens(self) -> int:
        """``T``, the number of new tokens in the batch."""
        return int(self.input_ids.numel())

    def validate(self) -> None:
        """Raise ``InvalidBatchError`` when shapes or lengths disagree (cheap, no tensor scans)."""
        t = self.num_tokens
        if self.positions.numel() != t or self.out_slots.numel() != t:
            raise InvalidBatchError(f"input_ids, positions and out_slots must all have {t} entries")
        if sum(self.seq_lens) != t or len(self.kv_slots) != len(self.seq_lens):
            raise InvalidBatchError("seq_lens must sum to len(input_ids) and match len(kv_slots)")
        for i, (n, kv) in enumerate(zip(self.seq_lens, self.kv_slots)):
            if n < 1 or kv.numel() < n:
                raise InvalidBatchError(f"sequence {i}: needs >= 1 new token and >= {n} context slots")
        if self.logits_rows.numel() and int(self.logits_rows.max()) >= t:
            raise InvalidBatchError(f"logits_rows must index the {t} new tokens")


class ModelRunner:
    """A loaded model: ``config``, ``tokenizer``, ``device``, ``dtype``, ``forward``, ``new_kv_pool``.

    ``forward`` is not thread-safe (it writes the pool); drive it from one thread.
    """

    def __init__(self, config: ModelConfig, model: DecoderModel, tokenizer, name: str = ""):
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.device = model.device
        self.dtype = model.dtype
        self.name = name

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """End-of-sequence ids from the config, plus the tokenizer's ``eos_token_id``."""
        ids = list(self.config.eos_token_ids)
        tok_eos = getattr(self.tokenizer, "eos_token_id", None)
        if tok_eos is not None and tok_eos not in ids:
            ids.append(int(tok_eos))
        return tuple(ids)

    def new_kv_pool(self, num_slots: int) -> KVPool:
        """A pool of ``num_slots`` allocatable slots shaped for this model, on its device and dtype."""
        c = self.config
        return KVPool(c.num_layers, c.num_kv_heads, c.head_dim, num_slots, self.dtype, self.device)

    def kv_bytes_per_slot(self) -> int:
        """Bytes of K and V one slot takes across all layers (to size a pool from a memory budget)."""
        c = self.config
        return 2 * c.num_layers * c.num_kv_heads * c.head_dim * torch.empty(0, dtype=self.dtype).element_size()

    @torch.inference_mode()
    def forward(self, batch: ForwardBatch, pool: KVPool) -> torch.Tensor:
        """Run the batch's new tokens; returns float32 logits ``[n, vocab_size]`` for ``logits_rows``.

        Side effect: writes every new token's K/V into ``pool`` at its ``out_slots`` entry, in every
        layer. Reads only the slots listed in ``kv_slots``. Allocates and frees nothing.
        """
        batch.validate()
        self._check_pool(pool)
        if batch.num_tokens and int(batch.input_ids.max()) >= self.config.vocab_size:
            raise InvalidBatchError(f"token id {int(batch.input_ids.max())} >= vocab_size {self.config.vocab_size}")
        dev = self.device
        plan = build_plan(batch.seq_lens, batch.kv_slots, dev, self.config.sliding_window)
        positions = batch.positions.to(dev, non_blocking=True)  # [T]
        max_pos = int(batch.positions.max()) if batch.num_tokens else 0
        hidden = self.model.hidden_states(
            batch.input_ids.to(dev, non_blocking=True),
            positions,
            batch.out_slots.to(dev, non_blocking=True),
            plan,
            pool,
            max_pos,
        )  # [T, hidden]
        rows = batch.logits_rows.to(dev, non_blocking=True)  # [n]
        return self.model.logits(hidden.index_select(0, rows))  # [n, vocab] float32

    def _check_pool(self, pool: KVPool) -> None:
        c = self.config
        if (pool.num_layers, pool.num_kv_heads, pool.head_dim) != (c.num_layers, c.num_kv_heads, c.head_dim):
            raise InvalidBatchError("the KV pool was built for another model; use runner.new_kv_pool()")
        if pool.dtype != self.dtype or pool.device.type != self.device.type:
            raise InvalidBatchError(f"the KV pool must be {self.dtype} on {self.device}; use runner.new_kv_pool()")

    def __repr__(self) -> str:
        return f"ModelRunner({self.name or self.config.architecture}, device={self.device}, dtype={self.dtype})"
