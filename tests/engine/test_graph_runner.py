"""DecodeGraphRunner: decode-only batches through the static-buffer path (eager on the CPU, CUDA
graphs on a GPU) give the logits of ``runner.forward`` and, in the engine, the same greedy
outputs; batches it cannot hold fall back to ``runner.forward``."""

from __future__ import annotations

import pytest
import torch
from fake_model import FakeTokenizer

from structgen.constraints import Regex
from structgen.engine.engine import Engine
from structgen.engine.graph_runner import DecodeGraphRunner, decode_buckets
from structgen.engine.model_runner import ForwardBatch, ModelRunner
from structgen.engine.models.config import ModelConfig
from structgen.engine.models.decoder import DecoderModel
from structgen.engine.models.weights import random_weights
from structgen.engine.request import GenerateRequest, SamplingParams
from structgen.engine.runtime import Runtime
from structgen.fsm import compile as compile_fsm
from structgen.fsm.vocabulary import Vocabulary

VOCAB = Vocabulary.byte_level()
# (device, dtype, max |logit difference| against runner.forward); logits of the tiny model are
# within +-0.7. On CUDA the two paths use different attention kernels (prefill vs decode).
CASES = [("cpu", torch.float32, 1e-4)]
if torch.cuda.is_available():
    CASES += [("cuda", torch.float32, 2e-3), ("cuda", torch.bfloat16, 3e-2)]


def tiny_runner(device: str = "cpu", dtype=torch.float32, window: int | None = None) -> ModelRunner:
    cfg = ModelConfig(architecture="LlamaForCausalLM", vocab_size=VOCAB.size, hidden_size=64, intermediate_size=96,
                      num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, rope_theta=10000.0,
                      max_position_embeddings=512, sliding_window=window)
    dev = torch.device(device)
    weights = random_weights(cfg, dev, dtype, seed=3)
    weights.embed.mul_(0.05)  # keep logits spread so that greedy choices differ by position
    runner = ModelRunner(cfg, DecoderModel(cfg, weights, dev, dtype), FakeTokenizer())
    runner.vocabulary = VOCAB
    return runner


def test_buckets_are_powers_of_two_then_the_maximum():
    assert decode_buckets(64) == (1, 2, 4, 8, 16, 32, 64)
    assert decode_buckets(48) == (1, 2, 4, 8, 16, 32, 48)
    assert decode_buckets(1) == (1,)


def _decode_batch(pool, contexts, shared, gen):
    """A decode-only batch: sequence i's context = (shared prefix if i is even) + its own slots."""
    items, ids = [], torch.randint(0, VOCAB.size, (len(contexts),), generator=gen)
    for i, n in enumerate(contexts):
        own = pool.alloc(n - (len(shared) if i % 2 == 0 else 0))
        ctx = torch.cat([shared, own]) if i % 2 == 0 else own
        items.append(([int(ids[i])], len(ctx) - 1, ctx[-1:], ctx))
    return ForwardBatch.build(items)


@pytest.mark.parametrize("device,dtype,atol", CASES)
@pytest.mark.parametrize("window", [None, 7])
def test_logits_equal_runner_forward_with_padding_and_shared_prefix(device, dtype, atol, window):
    runner = tiny_runner(device, dtype, window)
    pool = runner.new_kv_pool(8192)
    gen = torch.Generator().manual_seed(0)
    shared = pool.alloc(40)
    prefix_ids = torch.randint(0, VOCAB.size, (40,), generator=gen).tolist()
    runner.forward(ForwardBatch.build([(prefix_ids, 0, shared, shared)]), pool)  # K/V of the shared prefix
    graphs = DecodeGraphRunner(runner, pool, max_batch_size=16, max_context=256)
    for n in (1, 3, 5, 12, 16):  # 3, 5, 12 run padded to the buckets 4, 8, 16
        lengths = torch.randint(41, 200, (n,), generator=gen).tolist()
        batch = _decode_batch(pool, lengths, shared, gen)
        # give every context slot but the new token's real K/V (fresh slots are uninitialised)
        for kv in batch.kv_slots:
            fill = torch.randint(0, VOCAB.size, (kv.numel() - 1,), generator=gen).tolist()
            runner.forward(ForwardBatch.build([(fill, 0, kv[:-1], kv[:-1])]), pool)
        got = graphs.forward(batch, pool).float().clone()  # [n, V]
        want = runner.forward(batch, pool)  # [n, V], rewrites the same new K/V
        assert got.shape == want.shape == (n, VOCAB.size)
        assert (got - want).abs().max().item() <= atol
    assert graphs.replays == 5
    if device == "cuda":
        assert set(graphs._graphs) == {1, 4, 8, 16}


def test_batches_it_cannot_hold_are_refused():
    runner = tiny_runner()
    pool = runner.new_kv_pool(1024)
    graphs = DecodeGraphRunner(runner, pool, max_batch_size=4, max_context=64)
    s = pool.alloc(100)

    def decode(token, ctx):  # one new token whose context is s[:ctx]
        return ([token], ctx - 1, s[ctx - 1 : ctx], s[:ctx])

    assert graphs.forward(ForwardBatch.build([decode(1, 10)]), pool) is not None
    prefill = ForwardBatch.build([([1, 2, 3], 0, s[:3], s[:3])])
    too_many = ForwardBatch.build([decode(1, 10)] * 5)
    too_long = ForwardBatch.build([decode(1, 80)])
    swapped = ForwardBatch.build([decode(1, 10), decode(2, 12)])
    swapped.logits_rows = torch.tensor([1, 0])
    for batch in (prefill, too_many, too_long, swapped):
        assert graphs.forward(batch, pool) is None
    assert graphs.forward(ForwardBatch.build([decode(1, 10)]), runner.new_kv_pool(8)) is None


def _requests(tok):
    digits = compile_fsm(Regex(r"[0-9]{3}(-[a-z]{2,5}){1,3}"), VOCAB, cache=False)
    prompts = [tok.encode(f"request {i}: " + "abc " * (i % 5)) for i in range(11)]
    return [(p, SamplingParams(max_tokens=14 + i % 4, ignore_eos=i % 3 == 0), digits if i % 2 else None)
            for i, p in enumerate(prompts)]


def _run(engine, requests):
    seqs = [engine.add_request(p, params, fsm) for p, params, fsm in requests]
    while engine.has_unfinished():
        engine.step()
    return [(s.output_ids, s.text, s.finish_reason) for s in seqs]


def test_engine_greedy_outputs_equal_with_and_without_the_graph_path():
    runner = tiny_runner()
    requests = _requests(runner.tokenizer)
    plain = Engine(runner, kv_cache_tokens=2048, max_batch_size=8, cuda_graphs=False)
    assert plain.graph_runner is None  # no CUDA graphs for a CPU model
    graphed = Engine(runner, kv_cache_tokens=2048, max_batch_size=8)
    graphed.graph_runner = DecodeGraphRunner(runner, graphed.pool, max_batch_size=8, max_context=512, use_graphs=False)
    assert _run(graphed, requests) == _run(plain, requests)
    assert graphed.graph_runner.replays >= 16  # most steps were decode-only and took the graph path
    assert graphed.graph_runner.replays < graphed.counters.steps  # prefill steps did not


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_runtime_greedy_outputs_equal_with_graphs_captured_and_the_same_path_eager():
    """Captured graphs replay exactly the eager decode path (same kernels, so equal tokens)."""
    outs = []
    for captured in (True, False):
        runner = tiny_runner("cuda", torch.float32)
        with Runtime(runner=runner, kv_cache_tokens=4096, max_batch_size=8, cuda_graphs=captured) as rt:
            if captured:
                assert rt.engine.graph_runner.use_graphs
            else:  # assigned before any request reaches the engine thread
                assert rt.engine.graph_runner is None
                rt.engine.graph_runner = DecodeGraphRunner(runner, rt.engine.pool, max_batch_size=8, max_context=512,
                                                           use_graphs=False)
            handles = [rt.submit(GenerateRequest(p, constraint=fsm, max_tokens=params.max_tokens,
                                                 ignore_eos=params.ignore_eos))
                       for p, params, fsm in _requests(runner.tokenizer)]
            outs.append([(r.token_ids, r.text) for r in (h.result(timeout=300) for h in handles)])
            assert rt.engine.graph_runner.replays >= 16
            if captured:
                assert len(rt.engine.graph_runner._graphs) >= 2  # several buckets were captured and replayed
    assert outs[0] == outs[1]
