"""Decode-step and prefill latency of our forward pass vs transformers' forward, default model.

    python bench/forward_bench.py [--batch 1 8] [--context 128] [--steps 20] [--dtype float32]

For each batch size B: B sequences with ``--context`` cached tokens each take one decode step
(one new token each). Ours: ``ModelRunner.forward`` over the KV pool. Transformers: the same
weights (read from the same GGUF) with a ``DynamicCache`` prefilled to the same length, one
``model(input_ids[B, 1], past_key_values=...)`` call, the cache cropped back after each step so
every step sees the same context. Prints median milliseconds per step and tokens/s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _median_ms(fn, steps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_ours(runner, batch: int, context: int, steps: int) -> float:
    from structgen.engine.model_runner import ForwardBatch

    pool = runner.new_kv_pool(batch * (context + 1) + 1)
    g = torch.Generator().manual_seed(0)
    ctx = [pool.alloc(context) for _ in range(batch)]
    prompts = [torch.randint(0, runner.config.vocab_size, (context,), generator=g).tolist() for _ in range(batch)]
    with torch.inference_mode():
        runner.forward(ForwardBatch.build([(p, 0, s, s) for p, s in zip(prompts, ctx)]), pool)
    new = [pool.alloc(1) for _ in range(batch)]
    seqs = [([7], context, n, torch.cat([c, n])) for c, n in zip(ctx, new)]
    return _median_ms(lambda: runner.forward(ForwardBatch.build(seqs), pool), steps)


def bench_hf(hf, batch: int, context: int, steps: int) -> float:
    from transformers import DynamicCache

    ids = torch.randint(0, hf.config.vocab_size, (batch, context), generator=torch.Generator().manual_seed(0))
    cache = DynamicCache(config=hf.config)
    with torch.inference_mode():
        hf(ids, past_key_values=cache, use_cache=True)

    def step():
        with torch.inference_mode():
            hf(torch.full((batch, 1), 7), past_key_values=cache, use_cache=True, logits_to_keep=1)
        if cache.get_seq_length() > context:
            _crop_last(cache)

    return _median_ms(step, steps)


def _crop_last(cache) -> None:
    """Drop the token the step appended (the crop argument's sign changed across transformers)."""
    try:
        cache.crop(-1)
    except ValueError:
        cache.crop(cache.get_seq_length() - 1)


def bench_prefill(runner, length: int, steps: int) -> float:
    from structgen.engine.model_runner import ForwardBatch

    pool = runner.new_kv_pool(length + 1)
    s = pool.alloc(length)
    batch = ForwardBatch.build([(list(range(100, 100 + length)), 0, s, s)])
    return _median_ms(lambda: runner.forward(batch, pool), steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prefill", type=int, default=256, help="prefill length to time (0 to skip)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers baseline")
    args = ap.parse_args()

    from structgen import assets
    from structgen.engine.loader import load_model

    runner = load_model(device="cpu", dtype=args.dtype)
    hf = None
    if not args.no_hf:
        from transformers import AutoModelForCausalLM

        gguf = assets.default_model_file()
        hf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=runner.dtype).eval()
    print(f"model {assets.DEFAULT_MODEL_NAME}, {runner.dtype}, cpu threads {torch.get_num_threads()}, "
          f"context {args.context}, median of {args.steps} steps")  # fmt: skip
    print(f"{'batch':>5} | {'ours ms/step':>12} | {'ours tok/s':>10} | {'hf ms/step':>10} | {'hf tok/s':>8} | speedup")
    for b in args.batch:
        ours = bench_ours(runner, b, args.context, args.steps)
        ref = bench_hf(hf, b, args.context, args.steps) if hf is not None else float("nan")
        print(f"{b:>5} | {ours:>12.2f} | {b * 1e3 / ours:>10.1f} | {ref:>10.2f} | {b * 1e3 / ref:>8.1f} | {ref / ours:.2f}x")
    if args.prefill:
        ms = bench_prefill(runner, args.prefill, max(3, args.steps // 4))
        print(f"prefill {args.prefill} tokens: {ms:.1f} ms ({args.prefill * 1e3 / ms:.0f} tok/s)")


if __name__ == "__main__":
    main()
