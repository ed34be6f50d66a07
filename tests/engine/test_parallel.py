"""Tensor parallelism on the CPU: 2 gloo ranks give the logits and greedy tokens of tp_size=1."""

from __future__ import annotations

import os

import pytest
import torch
import torch.multiprocessing as mp

from structgen.engine.gpu_decode import DecodeSeq, GraphDecoder
from structgen.engine.model_runner import ForwardBatch, ModelRunner
from structgen.engine.models.config import ModelConfig
from structgen.engine.models.decoder import DecoderModel
from structgen.engine.models.weights import random_weights
from structgen.engine.parallel import shard_config
from structgen.errors import ModelLoadError


def make_runner(vocab: int, bias: bool) -> ModelRunner:
    cfg = ModelConfig(architecture="LlamaForCausalLM", vocab_size=vocab, hidden_size=64, intermediate_size=96,
                      num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, qkv_bias=bias, o_bias=bias,
                      mlp_bias=bias, tie_word_embeddings=not bias)
    weights = random_weights(cfg, torch.device("cpu"), torch.float32, seed=7)
    weights.embed.mul_(0.05)
    return ModelRunner(cfg, DecoderModel(cfg, weights, torch.device("cpu"), torch.float32), None)


PROMPTS = [[5, 9, 2, 7, 1, 3], [4, 4, 8]]


def run_model(runner) -> tuple[torch.Tensor, list[list[int]]]:
    """Prefill logits of both prompts and 6 greedy GraphDecoder tokens each."""
    pool = runner.new_kv_pool(64)
    slots = [pool.alloc(len(p) + 6) for p in PROMPTS]
    batch = ForwardBatch.build([(p, 0, s[: len(p)], s[: len(p)]) for p, s in zip(PROMPTS, slots)], all_logits=True)
    logits = runner.forward(batch, pool)
    pool2 = runner.new_kv_pool(64)
    seqs = []
    for p, s in zip(PROMPTS, slots):
        n = len(p) - 1
        runner.forward(ForwardBatch.build([(p[:-1], 0, s[:n], s[:n])]), pool2)
        seqs.append(DecodeSeq(p[-1], n, s))
    dec = GraphDecoder(runner, pool2, max_batch=2, max_context=16, max_steps=8)
    dec.start(seqs)
    return logits, dec.run(6).T.tolist()


def _worker(rank: int, world: int, init_file: str, vocab: int, bias: bool, out_file: str) -> None:
    import torch.distributed as dist

    from structgen.engine.parallel import shard_runner

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        runner = shard_runner(make_runner(vocab, bias), rank, world)
        assert runner.new_kv_pool(4).num_kv_heads == 1
        logits, tokens = run_model(runner)
        if rank == 0:
            torch.save({"logits": logits, "tokens": tokens}, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("vocab,bias", [(256, False), (267, True)])  # vocab-parallel head / replicated head
def test_two_gloo_ranks_match_single_process(tmp_path, vocab, bias):
    ref_logits, ref_tokens = run_model(make_runner(vocab, bias))
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), vocab, bias, str(out)), nprocs=2, join=True)
    got = torch.load(out)
    torch.testing.assert_close(got["logits"], ref_logits, rtol=1e-4, atol=1e-4)
    assert got["tokens"] == ref_tokens


def test_shard_config_rejects_uneven_heads():
    cfg = make_runner(256, False).config
    assert shard_config(cfg, 2).num_heads == 2
    with pytest.raises(ModelLoadError, match="tp_size=3"):
        shard_config(cfg, 3)


def test_load_model_tp_needs_a_process_group(monkeypatch):
    from structgen.engine.parallel import init_tensor_parallel

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("NCCL_NVLS_ENABLE", raising=False)
    with pytest.raises(ModelLoadError, match="torchrun"):
        init_tensor_parallel(2, "cpu")
    assert os.environ.get("NCCL_NVLS_ENABLE") == "0"
