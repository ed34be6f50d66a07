"""Scheduler: continuous batching, chunked prefill, prefix reuse and preemption, driven through
the engine with the tiny fake model; outputs are compared with cache-free greedy decoding."""

from __future__ import annotations

import pytest

from fake_model import FakeRunner, greedy_reference
from structgen.engine.engine import Engine
from structgen.engine.request import SamplingParams
from structgen.errors import RequestError


@pytest.fixture(scope="module")
def runner():
    return FakeRunner()


def _prompts(runner, n):
    tok = runner.tokenizer
    return [tok.encode(f"request {i}: " + "abc " * (i % 4) + "x" * (i % 5)) for i in range(n)]


def _run(engine, prompts, max_tokens, check=True):
    seqs = [engine.add_request(p, SamplingParams(max_tokens=max_tokens)) for p in prompts]
    while engine.has_unfinished():
        engine.step()
        if check and engine.scheduler.radix is not None:
            engine.scheduler.radix.check()
    return seqs


@pytest.fixture(scope="module")
def alone(runner):
    """Greedy outputs of the 16 test prompts, each decoded alone without any cache."""
    return [greedy_reference(runner, p, 10) for p in _prompts(runner, 16)]


@pytest.mark.parametrize("radix,pool", [(True, 48), (False, 48), (True, 40), (False, 64)])
def test_tiny_pool_many_requests_same_output_as_alone_and_preempts(runner, radix, pool, alone):
    prompts = _prompts(runner, 16)
    engine = Engine(runner, kv_cache_tokens=pool, max_batch_size=16, chunked_prefill_size=24, radix_cache=radix)
    seqs = _run(engine, prompts, 10)
    assert [s.output_ids for s in seqs] == alone
    assert all(s.finish_reason == "length" for s in seqs)
    assert engine.stats()["preemptions"] > 0
    # every slot is either free or owned by the cache: nothing leaked
    cached = engine.scheduler.radix.total_size if radix else 0
    assert engine.pool.num_free + cached == engine.pool.num_slots


def test_requests_join_between_steps(runner):
    prompts = _prompts(runner, 6)
    engine = Engine(runner, kv_cache_tokens=1024, max_batch_size=8)
    first = engine.add_request(prompts[0], SamplingParams(max_tokens=12))
    engine.step()
    engine.step()
    later = [engine.add_request(p, SamplingParams(max_tokens=12)) for p in prompts[1:]]
    engine.step()
    assert len(engine.scheduler.running) == 6  # joined the running batch
    while engine.has_unfinished():
        engine.step()
    assert [s.output_ids for s in [first, *later]] == [greedy_reference(runner, p, 12) for p in prompts]


def test_chunked_prefill_bounds_tokens_per_step(runner):
    tok = runner.tokenizer
    long_prompt = tok.encode("z" * 100)
    engine = Engine(runner, kv_cache_tokens=1024, chunked_prefill_size=16)
    seen = []
    forward = runner.forward
    runner.forward = lambda batch, pool: (seen.append(batch.num_tokens), forward(batch, pool))[1]
    try:
        [seq] = _run(engine, [long_prompt], 3)
    finally:
        runner.forward = forward
    assert max(seen) <= 16 and seen[:6] == [16] * 6
    assert seq.output_ids == greedy_reference(runner, long_prompt, 3)


def test_shared_prefix_is_served_from_cache(runner):
    tok = runner.tokenizer
    prefix = "few-shot examples " * 8
    prompts = [tok.encode(prefix + f"question {i}") for i in range(5)]
    engine = Engine(runner, kv_cache_tokens=2048, chunked_prefill_size=4096)
    seqs = _run(engine, prompts, 4)
    shared = len(tok.encode(prefix))
    assert engine.stats()["cached_prompt_tokens"] >= 4 * (shared - 2)
    assert [s.output_ids for s in seqs] == [greedy_reference(runner, p, 4) for p in prompts]


def test_longest_cached_prefix_is_admitted_first(runner):
    tok = runner.tokenizer
    engine = Engine(runner, kv_cache_tokens=1024, max_batch_size=1)
    warm = tok.encode("a long shared warm-up prefix " * 3)
    _run(engine, [warm + [65]], 2)
    cold = engine.add_request(tok.encode("cold request"), SamplingParams(max_tokens=2))
    hot = engine.add_request(warm + [66], SamplingParams(max_tokens=2))
    engine.step()
    assert engine.scheduler.running == [hot] and cold in engine.scheduler.waiting


def test_request_that_can_never_fit_is_rejected(runner):
    engine = Engine(runner, kv_cache_tokens=32)
    with pytest.raises(RequestError, match="kv_cache_tokens"):
        engine.add_request(list(range(30)), SamplingParams(max_tokens=8))
    with pytest.raises(RequestError, match="empty"):
        engine.add_request([], SamplingParams(max_tokens=8))


def test_preempted_constrained_requests_resume_with_identical_output(runner):
    from fake_model import VOCAB
    from structgen import fsm as F
    from structgen.constraints import Regex

    fsm = F.compile(Regex(r'\{"id": [0-9]{2,4}, "tag": "[a-z]{3,6}"\}'), VOCAB, cache=False)
    prompts = _prompts(runner, 8)

    def outputs(kv):
        engine = Engine(runner, kv_cache_tokens=kv, max_batch_size=8, chunked_prefill_size=32)
        seqs = [engine.add_request(p, SamplingParams(max_tokens=40), fsm) for p in prompts]
        while engine.has_unfinished():
            engine.step()
            engine.scheduler.radix.check()
        return [s.text for s in seqs], engine.stats()["preemptions"]

    roomy, none = outputs(4096)
    tight, preempted = outputs(72)
    assert none == 0 and preempted > 0
    assert tight == roomy and all(fsm.matches(t) for t in tight)
