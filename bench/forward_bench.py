"""Our forward pass vs transformers on the default model's shapes: decode steps, prefill, generation.

    python bench/forward_bench.py [--source default|random] [--batch 1 8] [--context 128]
                                  [--steps 20] [--generate 32] [--dtype float32] [--device cpu]

``--source default`` uses the embedded SmolLM2-135M-Instruct weights (transformers reads the
same GGUF); ``random`` builds a randomly initialised model of the same shapes (no download,
same cost per step). Tables:

* decode step: B sequences with ``--context`` cached tokens take one step (one token each).
  Ours: ``ModelRunner.forward`` over the KV pool. Transformers: ``model(ids[B, 1],
  past_key_values=DynamicCache)`` with ``logits_to_keep=1``, the cache cropped back each step.
* generation: B prompts of ``--context`` tokens, ``--generate`` greedy tokens each; ours is a
  plain prefill-then-decode loop over the pool, transformers is ``generate(do_sample=False)``.
  Wall time includes the prefill. Tokens/s counts generated tokens.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

SMOLLM2_SHAPES = {
    "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
}  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


PROFILE: list[str] = []  # set by --profile: names of the runs whose first timed step is profiled


def _median_ms(fn, steps: int, device: torch.device, name: str = "") -> float:
    fn()  # warm-up
    if name in PROFILE:
        from torch.profiler import profile

        with profile() as prof:
            for _ in range(3):
                fn()
        print(f"--- profile of 3 steps: {name}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _prompts(vocab: int, batch: int, length: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(100, vocab, (length,), generator=g).tolist() for _ in range(batch)]


def bench_ours_step(runner, batch: int, context: int, steps: int) -> float:
    from structgen.engine.model_runner import ForwardBatch

    pool = runner.new_kv_pool(batch * (context + 1) + 1)
    ctx = [pool.alloc(context) for _ in range(batch)]
    prompts = _prompts(runner.config.vocab_size, batch, context)
    runner.forward(ForwardBatch.build([(p, 0, s, s) for p, s in zip(prompts, ctx)]), pool)
    new = [pool.alloc(1) for _ in range(batch)]
    seqs = [([7], context, n, torch.cat([c, n])) for c, n in zip(ctx, new)]
    return _median_ms(lambda: runner.forward(ForwardBatch.build(seqs), pool), steps, runner.device, f"ours{batch}")


def bench_hf_step(hf, batch: int, context: int, steps: int) -> float:
    from transformers import DynamicCache

    dev = hf.device
    ids = torch.tensor(_prompts(hf.config.vocab_size, batch, context), device=dev)
    cache = DynamicCache(config=hf.config)
    with torch.inference_mode():
        hf(ids, past_key_values=cache, use_cache=True)

    def step():
        with torch.inference_mode():
            hf(torch.full((batch, 1), 7, device=dev), past_key_values=cache, use_cache=True, logits_to_keep=1)
        try:  # drop the appended token (the argument's sign changed across transformers versions)
            cache.crop(-1)
        except ValueError:
            cache.crop(context)

    return _median_ms(step, steps, dev, f"hf{batch}")


def ours_generate(runner, prompts: list[list[int]], max_new: int) -> list[list[int]]:
    """Greedy decoding through the pool: one prefill batch, then one decode batch per token."""
    from structgen.engine.model_runner import ForwardBatch

    pool = runner.new_kv_pool(sum(map(len, prompts)) + len(prompts) * max_new + 1)
    ctx = [pool.alloc(len(p)) for p in prompts]
    logits = runner.forward(ForwardBatch.build([(p, 0, s, s) for p, s in zip(prompts, ctx)]), pool)
    out: list[list[int]] = [[] for _ in prompts]
    for step in range(max_new):
        nxt = logits.argmax(-1).tolist()
        seqs = []
        for i, tok in enumerate(nxt):
            out[i].append(tok)
            new = pool.alloc(1)
            ctx[i] = torch.cat([ctx[i], new])
            seqs.append(([tok], len(prompts[i]) + step, new, ctx[i]))
        if step + 1 < max_new:
            logits = runner.forward(ForwardBatch.build(seqs), pool)
    return out


def bench_generate(runner, hf, batch: int, context: int, max_new: int) -> tuple[float, float, bool]:
    """(ours ms, transformers ms, identical tokens) for a greedy batch generation."""
    prompts = _prompts(runner.config.vocab_size, batch, context)
    ours_generate(runner, prompts, 2)  # warm-up
    _sync(runner.device)
    t0 = time.perf_counter()
    ours = ours_generate(runner, prompts, max_new)
    _sync(runner.device)
    ours_ms = (time.perf_counter() - t0) * 1e3
    if hf is None:
        return ours_ms, float("nan"), True
    ids = torch.tensor(prompts, device=hf.device)
    kw = {"do_sample": False, "max_new_tokens": max_new, "min_new_tokens": max_new, "pad_token_id": 0}
    with torch.inference_mode():
        hf.generate(ids, **{**kw, "max_new_tokens": 2, "min_new_tokens": 2})  # warm-up
        _sync(hf.device)
        t0 = time.perf_counter()
        ref = hf.generate(ids, **kw)[:, context:].tolist()
        _sync(hf.device)
    return ours_ms, (time.perf_counter() - t0) * 1e3, ref == ours


def _load(source: str, device: str, dtype: str, with_hf: bool):
    from structgen.engine.loader import load_model

    if source == "default":
        from structgen import assets

        runner = load_model(device=device, dtype=dtype)
        if not with_hf:
            return runner, None
        from transformers import AutoModelForCausalLM

        gguf = assets.default_model_file()
        hf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=runner.dtype)
        return runner, hf.to(runner.device).eval()
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    hf = LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPES)).eval()
    folder = tempfile.mkdtemp(prefix="structgen-bench-")
    hf.save_pretrained(folder)
    runner = load_model(folder, device=device, dtype=dtype)
    return runner, (hf.to(device=runner.device, dtype=runner.dtype) if with_hf else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=["default", "random"], default="default")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--generate", type=int, default=32, help="greedy tokens per sequence (0 to skip)")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--profile", nargs="*", default=[], help="profile decode steps, e.g. ours8 hf8")
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers baseline")
    args = ap.parse_args()
    PROFILE.extend(args.profile)
    if args.threads:
        torch.set_num_threads(args.threads)
    runner, hf = _load(args.source, args.device, args.dtype, not args.no_hf)
    print(f"model SmolLM2-135M shapes ({args.source} weights), {runner.device}, {runner.dtype}, "
          f"cpu threads {torch.get_num_threads()}, context {args.context}")  # fmt: skip
    print(f"\ndecode step, median of {args.steps}")
    print(f"{'batch':>5} | {'ours ms':>8} | {'ours tok/s':>10} | {'hf ms':>8} | {'hf tok/s':>8} | speedup")
    for b in args.batch:
        ours = bench_ours_step(runner, b, args.context, args.steps)
        ref = bench_hf_step(hf, b, args.context, args.steps) if hf is not None else float("nan")
        print(f"{b:>5} | {ours:>8.2f} | {b * 1e3 / ours:>10.1f} | {ref:>8.2f} | {b * 1e3 / ref:>8.1f} | {ref / ours:.2f}x")
    if args.generate:
        print(f"\ngreedy generation of {args.generate} tokens per sequence (prefill included)")
        print(f"{'batch':>5} | {'ours tok/s':>10} | {'hf generate tok/s':>17} | speedup | same tokens")
        for b in args.batch:
            ours_ms, hf_ms, same = bench_generate(runner, hf, b, args.context, args.generate)
            n = b * args.generate
            print(f"{b:>5} | {n * 1e3 / ours_ms:>10.1f} | {n * 1e3 / hf_ms:>17.1f} | {hf_ms / ours_ms:>6.2f}x | {same}")


if __name__ == "__main__":
    with torch.inference_mode():
        main()
