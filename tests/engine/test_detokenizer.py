"""Incremental output text equals a full re-decode after every token: the decoders alone on
random token streams (multibyte characters split across tokens, special tokens, rewinds), and
the engine with the default model's tokenizer (jump-forward re-tokenising the boundary, stop
strings), against the full decode the engine used to do per token."""

from __future__ import annotations

import random

import pytest
import torch

from structgen import fsm as F
from structgen.constraints import Regex
from structgen.engine.detokenizer import ByteText, TokenizerText
from structgen.engine.engine import Engine
from structgen.engine.kv_cache import KVPool
from structgen.engine.request import SamplingParams

TEXTS = ["héllo wörld", "日本語のテキスト", "emoji 😀🎉 mix", "Ωμέγα — ok", "plain ascii text"]


def incomplete_tail(data: bytes) -> bool:
    """True when ``data`` ends inside a UTF-8 character that more bytes could still complete."""
    for n in range(1, min(3, len(data)) + 1):
        try:
            data[-n:].decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start == 0 and e.reason == "unexpected end of data":
                return True
    return False


def random_ids(rng: random.Random, tokenizer, vocab, n: int) -> list[int]:
    """Tokens of multilingual text, raw byte tokens (often half a character) and special tokens."""
    byte_ids = [i for i, t in enumerate(vocab.tokens) if t is not None and len(t) == 1 and t[0] >= 0x80]
    special = list(tokenizer.all_special_ids)
    ids: list[int] = []
    while len(ids) < n:
        kind = rng.random()
        if kind < 0.5:
            ids += tokenizer.encode(rng.choice(TEXTS), add_special_tokens=False)
        elif kind < 0.8:
            ids.append(rng.choice(byte_ids))
        elif kind < 0.9:
            ids.append(rng.choice(special))
        else:
            ids.append(rng.randrange(len(tokenizer)))
    return ids[:n]


@pytest.mark.parametrize("seed", range(6))
def test_byte_text_equals_full_decode_after_every_token(smollm2_tokenizer, smollm2_vocab, seed):
    rng = random.Random(seed)
    table = smollm2_vocab.tokens
    ids = random_ids(rng, smollm2_tokenizer, smollm2_vocab, 120)
    dec, kept = ByteText(table), []
    for i, t in enumerate(ids):
        if i % 17 == 16:  # drop a few tokens, as jump-forward does
            n = rng.randrange(len(kept) + 1)
            dec.rewind(n)
            del kept[n:]
        dec.extend([t])
        kept.append(t)
        data = b"".join(table[k] or b"" for k in kept)
        full = data.decode("utf-8", errors="replace")
        assert dec.final_text() == full
        assert dec.text == (full[:-1] if incomplete_tail(data) else full)


@pytest.mark.parametrize("seed", range(6))
def test_tokenizer_text_equals_full_decode_after_every_token(smollm2_tokenizer, smollm2_vocab, seed):
    rng = random.Random(100 + seed)
    tok = smollm2_tokenizer
    ids = random_ids(rng, tok, smollm2_vocab, 120)
    dec, kept = TokenizerText(tok), []
    for i, t in enumerate(ids):
        if i % 19 == 18:
            n = rng.randrange(len(kept) + 1)
            dec.rewind(n)
            del kept[n:]
        dec.extend([t])
        kept.append(t)
        full = tok.decode(kept, skip_special_tokens=True)
        assert dec.final_text() == full
        assert full.startswith(dec.text)
        if not full.endswith("\ufffd"):
            assert dec.text == full


class RandomRunner:
    """Seeded random logits over the default model's vocabulary (no attention): enough to drive
    the engine's text path with the real tokenizer. Partial-character byte tokens are favoured."""

    def __init__(self, tokenizer, vocab, seed: int = 0):
        self.tokenizer = tokenizer
        self.vocabulary = vocab
        self.eos_token_ids = vocab.eos_token_ids
        self.config = type("Config", (), {"vocab_size": len(vocab.tokens), "max_position_embeddings": 4096})()
        self._g = torch.Generator().manual_seed(seed)
        self._bias = torch.zeros(len(vocab.tokens))  # [V]
        for i, t in enumerate(vocab.tokens):
            if t is not None and any(b >= 0x80 for b in t):
                self._bias[i] = 4.0
        self._bias[list(self.eos_token_ids)] = -20.0

    def new_kv_pool(self, num_slots: int) -> KVPool:
        return KVPool(1, 1, 4, num_slots)

    def forward(self, batch, pool) -> torch.Tensor:
        n = len(batch.logits_rows)
        return torch.randn(n, len(self._bias), generator=self._g) * 2.0 + self._bias  # [n, V]


def old_full_text(seq, tokenizer, table) -> str:
    """The text as the engine computed it before: full decode of the output, cut at a stop string."""
    if table is not None:
        text = b"".join(table[t] or b"" for t in seq.output_ids).decode("utf-8", errors="replace")
    else:
        text = tokenizer.decode(seq.output_ids, skip_special_tokens=True)
    cuts = [at for at in (text.find(s) for s in seq.params.stop) if at >= 0]
    return text[: min(cuts)] if cuts else text


class CheckedEngine(Engine):
    """Checks the incremental text against a full decode after every text update."""

    checks = 0
    replaced = 0  # jumps that replaced generated tokens (re-tokenised boundary)

    def _jump(self, seq):
        before = list(seq.tokens)
        super()._jump(seq)
        self.replaced += seq.tokens[: len(before)] != before

    def _update_text(self, seq):
        super()._update_text(seq)
        table = self.runner.vocabulary.tokens if seq.fsm is not None else None
        full = old_full_text(seq, self.tokenizer, table)
        if seq.stop_string is not None:
            assert seq.text == full
        elif table is not None:  # exactly the incomplete trailing character is held back
            held = incomplete_tail(b"".join(table[t] or b"" for t in seq.output_ids))
            assert seq.text == (full[:-1] if held else full)
        else:  # text up to the last token that ended a character cleanly
            assert full.startswith(seq.text)
            if not full.endswith("\ufffd"):
                assert seq.text == full
        self.checks += 1


def test_engine_text_with_jump_forward_and_stop_strings(smollm2_tokenizer, smollm2_vocab):
    tok, vocab = smollm2_tokenizer, smollm2_vocab
    runner = RandomRunner(tok, vocab)
    rx = F.compile(Regex(r"(日本語|😀 ok|é|ß|[a-z]{1,3}| ){2,30} — fin"), vocab, cache=False)
    engine = CheckedEngine(runner, kv_cache_tokens=8192, max_batch_size=16)
    prompt = tok.encode("write:", add_special_tokens=False)
    requests = []
    for i in range(16):
        stop = (("本語", "ß") if i % 4 == 1 else ("e", "\n")) if i % 2 else ()
        params = SamplingParams(max_tokens=24 + 7 * (i % 5), temperature=1.0, seed=i, stop=stop)
        requests.append((params, rx if i % 3 else None))
    seqs = [engine.add_request(prompt, p, f) for p, f in requests]
    while engine.has_unfinished():
        engine.step()
    assert engine.checks > 200
    assert engine.replaced > 0  # jump-forward re-tokenised (rewound) some outputs
    assert any(s.stop_string for s in seqs) and any(s.stop_string is None for s in seqs)
    for s in seqs:
        table = vocab.tokens if s.fsm is not None else None
        assert s.text == old_full_text(s, tok, table)
