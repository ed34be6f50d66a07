"""Tensor-parallel check on GPUs: greedy tokens and logits of tp_size=2 (NCCL) vs tp_size=1.

    NCCL_NVLS_ENABLE=0 torchrun --nproc-per-node 2 bench/tp_check.py [--layers 16] [--dtype float32]

Random weights with the Llama-3.2-1B config (fp32 by default, so that only the order of sums
differs), 4 prompts of 128 tokens prefilled, then 32 greedy CUDA-graph decode steps
(``GraphDecoder``) on one GPU (rank 0, the full model) and on both ranks (sharded). Prints whether
the tokens are identical, the largest logit difference, and ms per decode step of each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("NCCL_NVLS_ENABLE", "0")

from bench.gpu_bench import LLAMA_1B
from structgen.engine.gpu_decode import DecodeSeq, GraphDecoder
from structgen.engine.model_runner import ForwardBatch, ModelRunner
from structgen.engine.models.config import ModelConfig
from structgen.engine.models.decoder import DecoderModel
from structgen.engine.models.weights import random_weights
from structgen.engine.parallel import shard_runner


def decode(runner, prompts, steps=32):
    pool = runner.new_kv_pool(len(prompts) * (len(prompts[0]) + steps + 4))
    seqs, last = [], []
    for p in prompts:
        s = pool.alloc(len(p) + steps)
        n = len(p) - 1
        runner.forward(ForwardBatch.build([(p[:-1], 0, s[:n], s[:n])]), pool)
        seqs.append(DecodeSeq(p[-1], n, s))
        last.append((p[-1:], n, s[n : n + 1], s[: n + 1]))
    logits = runner.forward(ForwardBatch.build(last), pool)  # writes the same K/V the first step writes
    dec = GraphDecoder(runner, pool, max_batch=len(prompts), max_context=len(prompts[0]) + steps + 64,
                       max_steps=steps + 4)
    try:
        dec.start(seqs)
    except Exception as exc:  # noqa: BLE001 - report and fall back to eager steps
        print(f"rank {dist.get_rank()}: CUDA graph capture failed ({type(exc).__name__}: {exc}); eager steps")
        dec = GraphDecoder(runner, pool, max_batch=len(prompts), max_context=len(prompts[0]) + steps + 64,
                           max_steps=steps + 4, use_graphs=False)
        dec.start(seqs)
    dec.run(steps)
    torch.cuda.synchronize()
    dec.start(seqs)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    toks = dec.run(steps)
    ms = (time.perf_counter() - t0) * 1000 / steps
    return toks, logits.cpu(), ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = ap.parse_args()
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device("cuda", rank)
    torch.cuda.set_device(dev)
    dtype = getattr(torch, args.dtype)
    cfg = ModelConfig.from_hf({**LLAMA_1B, "model_type": "llama", "num_hidden_layers": args.layers})
    weights = random_weights(cfg, dev, dtype, seed=0)  # same generator, same values on every GPU
    weights.embed.mul_(0.05)
    full = ModelRunner(cfg, DecoderModel(cfg, weights, dev, dtype), None)
    prompts = torch.randint(0, cfg.vocab_size, (4, 128), generator=torch.Generator().manual_seed(1)).tolist()
    ref = decode(full, prompts) if rank == 0 else None
    dist.barrier()
    sharded = shard_runner(full, rank, world)
    got = decode(sharded, prompts)
    if rank == 0:
        same = torch.equal(ref[0], got[0])
        diff = (ref[1] - got[1]).abs().max().item()
        scale = ref[1].abs().max().item()
        agree = (ref[0] == got[0]).float().mean().item()
        print(f"TP check ({args.dtype}, Llama-3.2-1B config with {args.layers} layers, random weights, "
              f"{torch.cuda.get_device_name()} x{world}):")
        print(f"  greedy tokens identical to tp_size=1: {same} ({agree:.1%} of {ref[0].numel()} tokens agree)")
        print(f"  max |logit diff| {diff:.3g} (max |logit| {scale:.3g})")
        print(f"  decode ms/step, batch 4: tp_size=1 {ref[2]:.3f}, tp_size={world} {got[2]:.3f}")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
