"""Sampler: greedy, filtering (top-k/top-p/min-p), seeds, logprobs, bitmask masking, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from structgen.engine.request import GenerateRequest, SamplingParams
from structgen.engine.sampler import make_generator, mask_logits_, sample
from structgen.errors import RequestError


def _logits(n=4, v=50, seed=0):
    return torch.randn(n, v, generator=torch.Generator().manual_seed(seed)) * 3


def test_greedy_is_argmax_and_logprob_is_the_models():
    x = _logits()
    out = sample(x.clone(), [SamplingParams()] * 4, [None] * 4)
    assert out.tokens.tolist() == x.argmax(-1).tolist()
    expect = torch.log_softmax(x, -1).gather(1, out.tokens[:, None])[:, 0]
    assert torch.allclose(out.logprobs, expect, atol=1e-5)


def test_top_k_1_and_tiny_top_p_and_high_min_p_reduce_to_argmax():
    x = _logits(v=200)
    for p in (SamplingParams(temperature=1.5, top_k=1), SamplingParams(temperature=1.5, top_p=1e-6),
              SamplingParams(temperature=1.5, min_p=0.999)):
        for seed in range(5):
            out = sample(x.clone(), [p] * 4, [make_generator(seed) for _ in range(4)])
            assert out.tokens.tolist() == x.argmax(-1).tolist()


def test_top_k_restricts_to_the_k_most_likely():
    x = _logits(n=1, v=100)
    top3 = set(torch.topk(x[0], 3).indices.tolist())
    g = make_generator(0)
    drawn = {int(sample(x.clone(), [SamplingParams(temperature=5.0, top_k=3)], [g]).tokens[0]) for _ in range(60)}
    assert drawn <= top3 and len(drawn) > 1


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    g = make_generator(1)
    drawn = {int(sample(probs.log(), [SamplingParams(temperature=1.0, top_p=0.8)], [g]).tokens[0]) for _ in range(80)}
    assert drawn == {0, 1}


def test_same_seed_same_tokens_whatever_the_batch():
    x = _logits(n=6, v=500)
    p = SamplingParams(temperature=1.0, seed=7)
    alone = [int(sample(x[3:4].clone(), [p], [make_generator(7)]).tokens[0]) for _ in range(1)]
    others = [SamplingParams(temperature=0.7)] * 3 + [p] + [SamplingParams()] * 2
    gens = [make_generator(s) for s in (1, 2, 3)] + [make_generator(7), None, None]
    batched = sample(x.clone(), others, gens).tokens.tolist()
    assert batched[3] == alone[0]
    seqs = [[int(sample(x[3:4].clone(), [p], [g]).tokens[0]) for _ in range(10)] for g in (make_generator(7), make_generator(7))]
    assert seqs[0] == seqs[1] and len(set(seqs[0])) > 1


def test_mask_allows_only_set_bits_in_one_batched_op():
    x = _logits(n=3, v=70)
    allowed = [[5, 40], [69], [0, 31, 32, 33]]
    bits = np.zeros((2, 3), dtype=np.int64)  # rows 0 and 2 are masked, row 1 is not
    for r, toks in zip((0, 1), (allowed[0], allowed[2])):
        for t in toks:
            bits[r, t >> 5] |= 1 << (t & 31)
    bitmask = torch.from_numpy(bits.astype(np.uint32).view(np.int32))
    y = x.clone()
    mask_logits_(y, bitmask, torch.tensor([0, 2]))
    assert torch.isfinite(y[0]).nonzero().flatten().tolist() == allowed[0]
    assert torch.isfinite(y[2]).nonzero().flatten().tolist() == allowed[2]
    assert torch.equal(y[1], x[1])
    out = sample(y, [SamplingParams(temperature=2.0)] * 3, [make_generator(i) for i in range(3)])
    assert int(out.tokens[0]) in allowed[0] and int(out.tokens[2]) in allowed[2]


@pytest.mark.parametrize(
    "bad",
    [dict(temperature=-1), dict(temperature=math.nan), dict(top_p=0), dict(top_p=1.5), dict(top_k=-2),
     dict(min_p=2.0), dict(max_tokens=-1), dict(seed=-3), dict(stop=[""]), dict(stop=5), dict(max_tokens=1.5)],
)
def test_bad_options_raise_request_error(bad):
    with pytest.raises(RequestError):
        GenerateRequest("hi", **bad).sampling()


@pytest.mark.parametrize("vocab,words", [(96, 3), (100, 4), (100, 3), (49152, 1536)])
def test_cpu_mask_path_equals_the_kernel_reference(vocab, words):
    from structgen.kernels.mask import apply_token_bitmask_

    rng = np.random.default_rng(vocab + words)
    logits = torch.randn(5, vocab)
    for rows in (None, torch.tensor([4, 0, 2])):
        m = 5 if rows is None else len(rows)
        bitmask = torch.from_numpy(rng.integers(-(2**31), 2**31, size=(m, words), dtype=np.int64).astype(np.int32))
        ours, ref = logits.clone(), logits.clone()
        mask_logits_(ours, bitmask, rows)
        apply_token_bitmask_(ref, bitmask, rows)
        assert torch.equal(ours, ref)
        assert torch.isinf(ours).any() and torch.isfinite(ours).any()
