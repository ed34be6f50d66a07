"""GraphDecoder + DeviceTables on the CPU (torch reference kernels, no graphs) against the plain
forward with host-side masking: same tokens, same FSM states, lazily expanded automata included."""

from __future__ import annotations

import pytest
import torch

from structgen.constraints import Regex
from structgen.engine.device_tables import DEAD_KEY, DeviceTables
from structgen.engine.gpu_decode import DecodeSeq, GraphDecoder, bucket_for
from structgen.engine.kv_cache import KVPool
from structgen.engine.model_runner import ForwardBatch, ModelRunner
from structgen.engine.models.config import ModelConfig
from structgen.engine.models.decoder import DecoderModel
from structgen.engine.models.weights import random_weights
from structgen.errors import InvalidBatchError
from structgen.fsm.index import compile_token_fsm
from structgen.fsm.vocabulary import Vocabulary
from structgen.kernels import masked_sample

VOCAB = Vocabulary.byte_level()


def tiny_runner(seed: int = 0, vocab: int = VOCAB.size) -> ModelRunner:
    cfg = ModelConfig(architecture="LlamaForCausalLM", vocab_size=vocab, hidden_size=64, intermediate_size=96,
                      num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, rope_theta=10000.0)
    weights = random_weights(cfg, torch.device("cpu"), torch.float32, seed=seed)
    weights.embed.mul_(0.05)  # keep logits spread so that greedy choices differ by position
    return ModelRunner(cfg, DecoderModel(cfg, weights, torch.device("cpu"), torch.float32), None)


def prefill(runner, pool, prompts, max_new):
    """Prefill all but the last prompt token; returns DecodeSeq pieces (token, position, slots)."""
    out = []
    for p in prompts:
        slots = pool.alloc(len(p) + max_new)
        n = len(p) - 1
        runner.forward(ForwardBatch.build([(p[:-1], 0, slots[:n], slots[:n])]), pool)
        out.append((p[-1], n, slots))
    return out


def reference(runner, pool, starts, fsms, temps, seeds, steps):
    """Plain ``runner.forward`` decode + host masking with ``fsm.mask``/``fsm.next_state``."""
    toks = [[] for _ in starts]
    states = [None if f is None else f.initial_state for f in fsms]
    cur = [s[0] for s in starts]
    for step in range(steps):
        batch = [(
            [cur[b]], starts[b][1] + step, starts[b][2][starts[b][1] + step : starts[b][1] + step + 1],
            starts[b][2][: starts[b][1] + step + 1],
        ) for b in range(len(starts))]
        logits = runner.forward(ForwardBatch.build(batch), pool)  # [B, V]
        for b, fsm in enumerate(fsms):
            if fsm is not None:
                mask = torch.from_numpy(fsm.mask(states[b]).copy()).unsqueeze(0)
                table = mask
                t = masked_sample(logits[b : b + 1], table, torch.zeros(1, dtype=torch.long),
                                  torch.tensor([temps[b]]), torch.tensor([seeds[b]]), torch.tensor([step]),
                                  backend="torch")
            else:
                t = masked_sample(logits[b : b + 1], torch.zeros((1, 9), dtype=torch.int32), torch.tensor([-1]),
                                  torch.tensor([temps[b]]), torch.tensor([seeds[b]]), torch.tensor([step]),
                                  backend="torch")
            tok = int(t[0])
            toks[b].append(tok)
            cur[b] = tok
            if fsm is not None:
                states[b] = fsm.next_state(states[b], tok)
    return toks, states


@pytest.mark.parametrize("max_prefetch", [4096, 0])
def test_graph_decoder_matches_forward_with_host_masking(max_prefetch):
    runner = tiny_runner()
    email = compile_token_fsm(Regex(r"[a-z]{2,5}@[a-z]{1,4}\.(com|org)"), VOCAB, cache=False)
    digits = compile_token_fsm(Regex(r"(0|[1-9][0-9]{0,6})(\.[0-9]{1,3})?"), VOCAB, cache=False)
    assert email.num_states_expanded < 10  # lazy: states get expanded as decoding reaches them
    prompts = [[72, 101, 108, 108, 111], [87, 111, 114], [65, 66, 67, 68, 69, 70, 71], [50, 51]]
    fsms = [email, None, digits, email]
    temps, seeds, steps = [0.0, 0.0, 0.0, 0.8], [1, 2, 3, 4], 12

    pool_a, pool_b = runner.new_kv_pool(256), runner.new_kv_pool(256)
    starts_a = prefill(runner, pool_a, prompts, steps)
    starts_b = prefill(runner, pool_b, prompts, steps)
    ref_tokens, ref_states = reference(runner, pool_a, starts_a, fsms, temps, seeds, steps)

    dec = GraphDecoder(runner, pool_b, max_batch=8, max_context=64, max_steps=32, max_prefetch=max_prefetch)
    assert not dec.use_graphs
    dec.start([DecodeSeq(t, p, s, fsm=f, temperature=tp, seed=sd)
               for (t, p, s), f, tp, sd in zip(starts_b, fsms, temps, seeds)])
    assert dec.bucket == bucket_for(4) == 4
    got = dec.run(steps)  # [steps, B]
    assert got.T.tolist() == ref_tokens
    assert dec.states() == [-1 if s is None else s for s in ref_states]
    assert len({tuple(t) for t in ref_tokens}) == 4  # the rows really differ
    for b in (0, 3):  # constrained outputs stay inside the language's prefixes
        s = email.initial_state
        for t in ref_tokens[b]:
            s = email.next_state(s, t)
            assert s >= 0 or t in VOCAB.eos_token_ids


def test_device_tables_grow_and_keep_rows():
    fsm = compile_token_fsm(Regex(r"[ab]{1,40}c"), VOCAB, cache=False)
    tables = DeviceTables(VOCAB.size, "cpu", row_capacity=2, nnz_capacity=4, key_capacity=2)
    k0 = tables.key_of(fsm, fsm.initial_state)
    while tables.pending:
        tables.expand_pending()
    assert tables.version > 0  # capacities were doubled
    row = int(tables.row_of_key[k0])
    start, stop = int(tables.indptr[row]), int(tables.indptr[row + 1])
    assert tables.tokens[start:stop].tolist() == list(fsm.allowed_tokens(fsm.initial_state))
    assert torch.equal(tables.bitmask[row], torch.from_numpy(fsm.mask(fsm.initial_state).copy()))
    nxt = int(tables.next_keys[start + tables.tokens[start:stop].tolist().index(ord("a"))])
    assert tables.state_of(nxt) == fsm.next_state(fsm.initial_state, ord("a"))
    assert tables.key_of(fsm, -1) == DEAD_KEY and int(tables.row_of_key[DEAD_KEY]) == 0


def test_graph_decoder_rejects_oversized_batches():
    runner = tiny_runner()
    dec = GraphDecoder(runner, runner.new_kv_pool(16), max_batch=2, max_context=8)
    slots = torch.arange(1, 3)
    with pytest.raises(InvalidBatchError):
        dec.start([DecodeSeq(1, 0, slots)] * 3)
    with pytest.raises(InvalidBatchError):
        dec.start([DecodeSeq(1, 4, slots)])  # fewer slots than cached tokens + 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_decode_matches_eager_torch_path():
    """On CUDA: captured graphs with the Triton kernels give the tokens of the eager torch path."""
    dev = torch.device("cuda")
    cpu_runner = tiny_runner(seed=3)
    w = cpu_runner.model.weights
    from structgen.engine.models.weights import random_weights as rw

    weights = rw(cpu_runner.config, dev, torch.float32, seed=3)
    weights.embed.mul_(0.05)
    runner = ModelRunner(cpu_runner.config, DecoderModel(cpu_runner.config, weights, dev, torch.float32), None)
    del w
    fsm = compile_token_fsm(Regex(r"[a-z]{2,5}@[a-z]{1,4}\.(com|org)"), VOCAB, cache=False)
    prompts = [[72, 101, 108, 108, 111], [87, 111, 114], [65, 66, 67]]
    outs = []
    for graphs in (True, False):
        pool = runner.new_kv_pool(128)
        starts = prefill(runner, pool, prompts, 10)
        dec = GraphDecoder(runner, pool, max_batch=4, max_context=32, max_steps=16, use_graphs=graphs,
                           backend="auto" if graphs else "torch")
        dec.start([DecodeSeq(t, p, s, fsm=f) for (t, p, s), f in zip(starts, [fsm, None, fsm])])
        outs.append((dec.run(9).tolist(), dec.states()))
    assert outs[0] == outs[1]


@pytest.mark.parametrize("architecture", ["LlamaForCausalLM", "Qwen3ForCausalLM"])
@pytest.mark.parametrize(("rope_kv", "merge"),
                         [("attention", "fused"), ("attention", "kernel"), ("kernel", "fused"), ("unfused", "kernel")])
def test_decode_hidden_fused_kernels_match_the_torch_path(monkeypatch, architecture, rope_kv, merge):
    """decode_hidden with the Triton kernels (each fusion on or off) = the torch path: hidden states and KV pool."""
    import importlib.util

    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    cfg = ModelConfig.from_hf({"architectures": [architecture], "vocab_size": 300, "hidden_size": 64,
                               "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
                               "num_key_value_heads": 2, "head_dim": 32, "rope_theta": 10000.0,
                               "max_position_embeddings": 512, "rms_norm_eps": 1e-6})
    model = DecoderModel(cfg, random_weights(cfg, dev, torch.float32, seed=5), dev, torch.float32)
    model.decode_kernels.rope_kv, model.decode_kernels.attention_merge = rope_kv, merge
    lens = [3, 70, 1, 120]  # context lengths, the new token last
    ctx = torch.randperm(200)[: sum(lens)].to(torch.int32).to(dev)  # [nnz] slots
    indptr = torch.tensor([0, *lens]).cumsum(0).to(torch.int32).to(dev)  # [B + 1]
    out_slots = ctx[indptr[1:].long() - 1].long()  # [B]
    positions = torch.tensor(lens, device=dev) - 1  # [B]
    ids = torch.tensor([5, 17, 260, 99], device=dev)
    results = []
    for backend in ("torch", "triton"):
        pool = runner_pool(cfg, dev)
        for cache in (*pool.k, *pool.v):
            cache[out_slots] = float("nan")  # stale rows: reading one instead of the new token's K/V shows
        hidden = model.decode_hidden(ids, positions, out_slots, indptr, ctx, pool, backend)  # [B, hidden]
        results.append((hidden, pool))
    (want, want_pool), (got, got_pool) = results
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert not got.isnan().any()
    assert torch.equal(got_pool.v[0], want_pool.v[0])  # layer 0's values are copied from the same projection
    for layer in range(cfg.num_layers):
        torch.testing.assert_close(got_pool.k[layer], want_pool.k[layer], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got_pool.v[layer], want_pool.v[layer], atol=1e-4, rtol=1e-4)


def runner_pool(cfg, dev) -> KVPool:
    """A 200-slot pool whose cached rows hold the same random values on every call."""
    pool = KVPool(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, 200, torch.float32, dev)
    gen = torch.Generator().manual_seed(9)
    for cache in (*pool.k, *pool.v):
        cache.copy_(torch.randn(cache.shape, generator=gen))
    return pool


def test_expand_closure_leaves_nothing_pending():
    fsm = compile_token_fsm(Regex(r"(ab|cd){1,3}"), VOCAB, cache=False, eager=True)
    tables = DeviceTables(VOCAB.size, "cpu")
    tables.key_of(fsm, fsm.initial_state)
    tables.expand_closure()
    assert not tables.pending and tables.num_rows == fsm.num_states_expanded + 1  # + the dead row
