"""Where one decode step's time goes: a torch.profiler table of the GraphDecoder step's kernels.

    python bench/decode_profile.py [--batch 1] [--model llama|smollm2]

Runs the step body eagerly (same kernels as the captured graph: Triton attention, compiled
element-wise ops, fused sampling) for a random-weight model, after a warm-up, and prints the
number of kernels per step and the kernels with the most device time, then the graph step time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.gpu_bench import LLAMA_1B, PROMPT, SMOLLM2_135M, build, prefill
from structgen.engine.gpu_decode import DecodeSeq, GraphDecoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--model", default="llama", choices=["llama", "smollm2"])
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    _, runner = build(LLAMA_1B if args.model == "llama" else SMOLLM2_135M)
    b, steps = args.batch, args.steps
    pool = runner.new_kv_pool(b * (PROMPT + 64) + 8)
    starts = prefill(runner, pool, torch.randint(0, runner.config.vocab_size, (b, PROMPT)).tolist(), PROMPT + 64)
    seqs = [DecodeSeq(t, p, s) for t, p, s in starts]
    dec = GraphDecoder(runner, pool, max_batch=b, max_context=PROMPT + 128, max_steps=64)
    dec.start(seqs)
    dec.run(3)
    torch.cuda.synchronize()
    dec.start(seqs)
    for _ in range(2):
        dec._body(b)  # eager warm-up of the same body
    torch.cuda.synchronize()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            dec._body(b)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    total_n = sum(e.count for e in events)
    total_us = sum(e.self_device_time_total for e in events)
    print(f"{args.model} batch {b}: {total_n / steps:.0f} kernels per step, {total_us / steps / 1000:.3f} ms of kernel time")
    print("| kernel | calls/step | µs/step | µs/call |")
    print("|---|---|---|---|")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:18]:
        print(f"| {e.key[:70]} | {e.count / steps:.0f} | {e.self_device_time_total / steps:.1f} | "
              f"{e.self_device_time_total / max(1, e.count):.1f} |")
    dec.start(seqs)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    dec.run(32)
    print(f"graph step: {(time.perf_counter() - t0) * 1000 / 32:.3f} ms")


if __name__ == "__main__":
    main()
