"""A tiny deterministic model and tokenizer implementing the model-runner contract, for fast
engine tests without the default model.

``FakeRunner.forward`` really attends over the K/V it wrote into the pool through each
sequence's ``kv_slots`` (one attention layer), so a wrong slot, a stale K/V entry or a wrong
position changes the logits. ``reference_logits(tokens)`` recomputes the same function from
scratch without any cache, for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from structgen.engine.kv_cache import KVPool
from structgen.fsm.vocabulary import Vocabulary

VOCAB = Vocabulary.byte_level()  # ids 0-255 bytes, 256-264 multi-byte tokens, 265 EOS, 266 padding
EOS = VOCAB.eos_token_ids[0]


class FakeTokenizer:
    """Greedy longest-match tokenizer over ``Vocabulary.byte_level()``; no chat template."""

    chat_template = None
    eos_token_id = EOS
    bos_token_id = None

    def __init__(self):
        self._by_bytes = {t: i for i, t in enumerate(VOCAB.tokens) if t is not None and i >= 256}
        self._longest = max(len(t) for t in self._by_bytes)

    def __len__(self) -> int:
        return VOCAB.size

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        data, out, i = text.encode("utf-8"), [], 0
        while i < len(data):
            for n in range(min(self._longest, len(data) - i), 1, -1):
                tid = self._by_bytes.get(data[i : i + n])
                if tid is not None:
                    out.append(tid)
                    i += n
                    break
            else:
                out.append(data[i])
                i += 1
        return out

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        parts = [VOCAB.tokens[int(i)] for i in ids]
        return b"".join(p for p in parts if p is not None).decode("utf-8", errors="replace")

    def get_vocab(self) -> dict[str, int]:  # pragma: no cover - not used by the engine
        return {repr(t): i for i, t in enumerate(VOCAB.tokens)}


@dataclass
class FakeConfig:
    vocab_size: int = VOCAB.size
    num_layers: int = 1
    num_kv_heads: int = 1
    head_dim: int = 16
    max_position_embeddings: int = 4096


class FakeRunner:
    """One attention layer over the KV pool; weights from a fixed seed."""

    def __init__(self, seed: int = 0, eos_bias: float = -4.0, bias: dict[int, float] | None = None):
        g = torch.Generator().manual_seed(seed)
        self.config = FakeConfig()
        self.tokenizer = FakeTokenizer()
        v, d = self.config.vocab_size, self.config.head_dim
        self.emb = torch.randn(v, d, generator=g)
        self.pos = torch.randn(4096, d, generator=g) * 0.5
        self.wq, self.wk, self.wv = (torch.randn(d, d, generator=g) / d**0.5 for _ in range(3))
        self.out = torch.randn(d, v, generator=g) * 2.0
        self.out[:, EOS] = 0.0
        self.eos_bias = eos_bias
        self.bias = torch.zeros(v)  # [V] added to every row's logits
        for t, b in (bias or {}).items():
            self.bias[t] = b
        self.eos_token_ids = (EOS,)
        self.vocabulary = VOCAB
        self.forward_calls = 0

    def new_kv_pool(self, num_slots: int) -> KVPool:
        return KVPool(1, 1, self.config.head_dim, num_slots)

    def _hidden(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.emb[ids] + self.pos[positions]  # [T, D]

    def _head(self, h: torch.Tensor, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        logits = (h + x) @ self.out + self.bias  # [T, V]
        logits[:, EOS] = self.eos_bias + positions.float() * 0.02
        return logits

    def forward(self, batch, pool: KVPool) -> torch.Tensor:
        batch.validate()
        self.forward_calls += 1
        x = self._hidden(batch.input_ids, batch.positions)  # [T, D]
        pool.k[0][batch.out_slots, 0] = x @ self.wk
        pool.v[0][batch.out_slots, 0] = x @ self.wv
        outs, t0 = [], 0
        for n, ctx in zip(batch.seq_lens, batch.kv_slots):
            q = x[t0 : t0 + n] @ self.wq  # [n, D]
            k, v = pool.k[0][ctx, 0], pool.v[0][ctx, 0]  # [L, D]
            outs.append(_causal(q, k, v, len(ctx) - n))
            t0 += n
        h = torch.cat(outs)  # [T, D]
        logits = self._head(h, x, batch.positions)  # [T, V]
        return logits[batch.logits_rows]

    def reference_logits(self, tokens: list[int]) -> torch.Tensor:
        """Logits of every position of ``tokens`` computed without a cache: [len, V]."""
        n = len(tokens)
        padded = -(-n // 64) * 64  # few distinct shapes keep CPU matmuls fast; causal rows < n are unaffected
        ids = torch.tensor(list(tokens) + [0] * (padded - n))
        pos = torch.arange(padded)
        x = self._hidden(ids, pos)
        h = _causal(x @ self.wq, x @ self.wk, x @ self.wv, 0)
        return self._head(h, x, pos)[:n]


def _causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offset: int) -> torch.Tensor:
    """Attention of ``q [n, D]`` (positions offset..offset+n-1) over ``k, v [L, D]``, causal."""
    scores = q @ k.T / k.shape[1] ** 0.5  # [n, L]
    n, length = scores.shape
    allowed = torch.arange(length)[None, :] <= (torch.arange(n)[:, None] + offset)  # [n, L]
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # [n, D]


def greedy_reference(runner: FakeRunner, prompt: list[int], max_tokens: int, eos: bool = True) -> list[int]:
    """Greedy decoding without any cache (the ground truth for engine tests)."""
    tokens = list(prompt)
    out = []
    for _ in range(max_tokens):
        t = int(runner.reference_logits(tokens)[-1].argmax())
        if eos and t == EOS:
            break
        out.append(t)
        tokens.append(t)
    return out
