"""Where one decode step's time goes: a torch.profiler table of the GraphDecoder step's kernels.

    python bench/decode_profile.py [--batch 1 [64 ...]] [--model llama|smollm2] [--kernels fused,unfused] [--gemv]
        [--top 18]

Runs the step body eagerly (same kernels as the captured graph: Triton attention, compiled
element-wise ops, fused sampling) for a random-weight model, after a warm-up, and prints the
number of kernels per step and the kernels with the most device time, then the graph step time.
``--kernels`` lists settings of ``DecoderModel.decode_kernels`` (default: the first six): ``fused``
(RoPE + KV write + decode attention + split merge in one launch), ``fused_reduce`` (the same
with a separate reduce kernel), ``rope_kv`` (a RoPE + KV kernel, then split + reduce attention),
``unfused`` (rotary, two ``index_copy_``, split + reduce attention); each of these runs the
projections and LM head of batches up to ``decoder.GEMV_DECODE_ROWS`` rows through
``kernels.gemv`` (the MLP activation fused into the down projection, the residual add + RMSNorm
fused into the qkv, gate/up and LM-head projections: ``kernels.gemv_norm``); ``norm_apart`` is
``fused`` with the add + RMSNorm kernels kept separate (``DecodeKernels(fused_norm=False)``) and
``cublas`` is ``fused`` with every projection through cuBLAS (``DecodeKernels(gemv=False)``);
``attn64`` / ``attn32`` are ``fused`` with that decode-attention tile of KV rows instead of
``attention.decode_tile``'s choice by split count, ``no_prefetch`` is ``fused`` with
``gemv_norm(prefetch=False)``, and ``previous`` both the 64-row tile and no prefetch (these four
are timed only when named); at
larger batches both run the same kernels as ``fused``: ``--kernels cublas,fused`` times the gemv
kernels, ``--kernels norm_apart,fused`` the norm fusion. One decoder is captured per
setting in the same process; they are profiled one after the other, their graph steps timed
interleaved (median of rounds), and their greedy tokens
compared with the first setting's (random weights: near-ties can flip under other rounding).
A table of every batch and setting's step time comes last. ``--gemv`` adds a table of each
projection's time in the stored and the transposed weight layout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.gpu_bench import LLAMA_1B, PROMPT, SMOLLM2_135M, build, prefill
from structgen.engine.gpu_decode import DecodeSeq, GraphDecoder
from structgen.engine.graph_runner import capture_graph
from structgen.engine.models.decoder import DecodeKernels

SETTINGS = {
    "fused": DecodeKernels(),
    "fused_reduce": DecodeKernels(rope_kv="attention", attention_merge="kernel"),
    "rope_kv": DecodeKernels(rope_kv="kernel", attention_merge="kernel"),
    "unfused": DecodeKernels(rope_kv="unfused", attention_merge="kernel"),
    "norm_apart": DecodeKernels(fused_norm=False),
    "cublas": DecodeKernels(gemv=False),
    "attn64": DecodeKernels(attention_block_n=64),
    "attn32": DecodeKernels(attention_block_n=32),
    "no_prefetch": DecodeKernels(norm_prefetch=False),
    "previous": DecodeKernels(attention_block_n=64, norm_prefetch=False),
}
DEFAULT_SETTINGS = ("fused", "fused_reduce", "rope_kv", "unfused", "norm_apart", "cublas")


def profile_body(dec: GraphDecoder, seqs, b: int, steps: int, label: str, top: int = 18) -> None:
    """Profile ``steps`` eager step bodies of ``dec``; print the kernel count and the top kernels."""
    from torch.profiler import ProfilerActivity, profile

    dec.start(seqs)
    for _ in range(2):
        dec._body(b)  # eager warm-up of the same body
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            dec._body(b)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    total_n = sum(e.count for e in events)
    total_us = sum(e.self_device_time_total for e in events)
    print(f"[{label}] batch {b}: {total_n / steps:.0f} kernels per step, "
          f"{total_us / steps / 1000:.3f} ms of kernel time")
    print("| kernel | calls/step | µs/step | µs/call |")
    print("|---|---|---|---|")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:top]:
        print(f"| {e.key[:70]} | {e.count / steps:.0f} | {e.self_device_time_total / steps:.1f} | "
              f"{e.self_device_time_total / max(1, e.count):.1f} |")


def graph_step_ms(dec: GraphDecoder, seqs, n: int = 32) -> float:
    """Milliseconds per replayed graph step over ``n`` steps (host clock around synchronised runs)."""
    dec.start(seqs)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    dec.run(n)  # .tokens() at the end synchronises
    return (time.perf_counter() - t0) * 1000 / n


def gemv_table(runner, batches: list[int], reps: int = 20) -> None:
    """Device µs per projection call in both weight layouts: the model's and the transposed one.

    Each case runs the projection of all layers (different weights, so L2 holds none of them)
    inside one CUDA graph; the time per call is the replay time over the number of calls.
    """
    from structgen.engine.models.weights import linear

    model = runner.model
    layers = model.weights.layers
    stored = "[in, out]" if model.t else "[out, in]"
    print(f"| projection | batch | weights {stored} µs/call | weights transposed µs/call |")
    print("|---|---|---|---|")
    for name in ("w_qkv", "w_o", "w_gate_up", "w_down"):
        ws = [getattr(lw, name) for lw in layers]
        flipped = [w.t().contiguous() for w in ws]
        for b in batches:
            x = torch.randn(b, ws[0].shape[0 if model.t else 1], dtype=ws[0].dtype, device=ws[0].device)
            cells = [_graph_us(lambda x=x, ws=ws: [linear(x, w, None, model.t) for w in ws], len(ws), reps),
                     _graph_us(lambda x=x, ws=flipped: [linear(x, w, None, not model.t) for w in ws], len(ws), reps)]
            print(f"| {name} {tuple(ws[0].shape)} | {b} | {cells[0]:.1f} | {cells[1]:.1f} |")


def _graph_us(fn, calls: int, reps: int) -> float:
    """Median µs per call of ``fn`` (``calls`` launches) captured in a CUDA graph and replayed."""
    graph, _ = capture_graph(fn, torch.device("cuda"), warmup=1)
    graph.replay()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / calls)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[1], help="one or more batch sizes, e.g. --batch 1 64")
    ap.add_argument("--model", default="llama", choices=["llama", "smollm2"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--kernels", default=",".join(DEFAULT_SETTINGS),
                    help=f"comma-separated subset of {','.join(SETTINGS)}")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--gemv", action="store_true", help="also time each projection in both weight layouts")
    ap.add_argument("--top", type=int, default=18, help="kernels listed per profile")
    args = ap.parse_args()
    if not set(args.kernels.split(",")) <= set(SETTINGS):
        ap.error(f"--kernels takes a comma-separated subset of {','.join(SETTINGS)}")
    _, runner = build(LLAMA_1B if args.model == "llama" else SMOLLM2_135M)
    print(f"{args.model}, {torch.cuda.get_device_name()}")
    summary = [compare(runner, b, args) for b in args.batch]
    if args.gemv:
        gemv_table(runner, args.batch)
    labels = args.kernels.split(",")
    print(f"\ngraph step ms, median of {args.rounds} interleaved rounds of 32 steps ({args.model}, "
          f"{torch.cuda.get_device_name()})")
    print("| batch | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for b, medians in zip(args.batch, summary):
        print(f"| {b} | " + " | ".join(f"{medians[label]:.3f}" for label in labels) + " |")


def compare(runner, b: int, args) -> dict[str, float]:
    """Profile and time the decode step at batch ``b`` under each setting of ``args.kernels``; returns
    each setting's median graph step ms."""
    pool = runner.new_kv_pool(b * (PROMPT + 64) + 8)
    starts = prefill(runner, pool, torch.randint(0, runner.config.vocab_size, (b, PROMPT)).tolist(), PROMPT + 64)
    seqs = [DecodeSeq(t, p, s) for t, p, s in starts]
    labels = args.kernels.split(",")
    decoders = {}
    for label in labels:  # each decoder captures its graph under its own setting
        runner.model.decode_kernels = SETTINGS[label]
        decoders[label] = GraphDecoder(runner, pool, max_batch=b, max_context=PROMPT + 128, max_steps=64)
        decoders[label].start(seqs)
        decoders[label].run(3)
        torch.cuda.synchronize()
    for label in labels:
        runner.model.decode_kernels = SETTINGS[label]
        profile_body(decoders[label], seqs, b, args.steps, label, args.top)
    times = {label: [] for label in labels}
    for _ in range(args.rounds):  # interleaved, so that clock or load drift hits every setting alike
        for label in labels:
            times[label].append(graph_step_ms(decoders[label], seqs))
    for label in labels:
        t = times[label]
        print(f"[{label}] batch {b} graph step: {statistics.median(t):.3f} ms (median of {len(t)} rounds of "
              f"32 steps, min {min(t):.3f}, max {max(t):.3f})")
    first = decoders[labels[0]].run(0)[:, :b]  # [32, b] tokens of the last timed run
    for label in labels[1:]:
        same = (decoders[label].run(0)[:, :b] == first).float().mean().item()
        print(f"batch {b}: greedy tokens of [{label}] equal to [{labels[0]}]: {same:.1%} of {first.numel()}")
    runner.model.decode_kernels = DecodeKernels()
    return {label: statistics.median(times[label]) for label in labels}


if __name__ == "__main__":
    main()
