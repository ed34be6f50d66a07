"""CPU benchmark of the embedded default model (SmolLM2-135M-Instruct), printed as tables.

    python bench/cpu_bench.py [--tokens 64] [--threads N] [--skip-hf]

1. Decode throughput, structgen vs Hugging Face ``generate()`` on the same weights (the
   transformers model is loaded from the same GGUF file), batch 1 and 8, fixed output length
   (``ignore_eos`` / ``min_new_tokens``), greedy. structgen runs its default (bfloat16, with the
   GGUF's 4-bit projection weights kept 4-bit, on CPUs with native bfloat16) and float32; Hugging
   Face runs float32 (its default for a GGUF file) and bfloat16. Ratios are the default's.
2. Constrained vs unconstrained, same output lengths (``ignore_eos``; on constrained rows it
   masks EOS out), batch 8: a one-state regex (steady-state masking cost) and a counting regex
   that visits a new automaton state every token (first-visit expansion cost included).
3. Shared prefix: 32 requests sharing a ~1,000-token few-shot prefix, radix cache on vs off
   (wall time and prompt tokens served from the cache).

On the CPU, ``Runtime.generate`` called from the main thread runs the engine's steps in that thread
(``runtime.py``: a second thread running torch ops makes a second OpenMP pool, and with more pool
threads than cores every parallel region of the process pays a thread wake-up, Hugging Face's
included); ``--engine-thread`` measures the previous arrangement, every step in the Runtime's
background thread.

Targets: >= 2x HF throughput at batch 8; constrained <= 5% slower; shared prefix >= 90% of the
prefix tokens from the cache and >= 3x faster with the cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "List some facts about the moon.",
    "Describe your favourite meal.",
    "What is the history of the printing press?",
    "Write a poem about autumn leaves.",
    "How do bees make honey?",
    "Give advice to a new programmer.",
]


ENGINE_THREAD = False  # --engine-thread: every step in the Runtime's background thread


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def structgen_throughput(rt, prompts, n_tokens, constraint=None):
    kwargs = dict(max_tokens=n_tokens, ignore_eos=True)
    rt.generate(prompts[:1], constraint, max_tokens=4, ignore_eos=True)  # warm-up
    results, dt = timed(lambda: rt.generate(prompts, constraint, **kwargs))
    produced = sum(r.completion_tokens for r in results)
    return produced / dt, produced, dt


def hf_throughput(model, tok, prompts, n_tokens):
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    gen = dict(max_new_tokens=n_tokens, min_new_tokens=n_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.inference_mode():
        model.generate(**tok(texts[:1], return_tensors="pt", add_special_tokens=False), max_new_tokens=4, do_sample=False,
                       pad_token_id=tok.pad_token_id)  # warm-up
        out, dt = timed(lambda: model.generate(**enc, **gen))
    produced = (out.shape[1] - enc["input_ids"].shape[1]) * len(prompts)
    return produced / dt, produced, dt


def few_shot_prefix(tok, target_tokens=1000):
    shots, i = [], 0
    while len(tok.encode("\n".join(shots))) < target_tokens:
        shots.append(f"Example {i}: the {['red', 'blue', 'green', 'amber'][i % 4]} box number {i} holds "
                     f"{i * 7 % 13} marbles and weighs {i * 3 % 11} kilograms; label it as category {chr(65 + i % 5)}.")
        i += 1
    return "You label boxes.\n" + "\n".join(shots) + "\n"


def shared_prefix(model_path, radix, n_req=32, out_tokens=8, **opts):
    from structgen.engine.prompts import encode_prompt
    from structgen.engine.runtime import Runtime

    rt = Runtime(model_path, device="cpu", radix_cache=radix, **opts)
    rt._caller_steps = not ENGINE_THREAD
    try:
        prefix = few_shot_prefix(rt.tokenizer)
        prompts = [prefix + f"Now label box number {100 + i}." for i in range(n_req)]
        ids = [encode_prompt(rt.tokenizer, p) for p in prompts]
        shared = min(_common_len(ids[0], x) for x in ids[1:])  # chat-template header + few-shot prefix
        rt.generate("warm-up", max_tokens=2)
        results, dt = timed(lambda: rt.generate(prompts, max_tokens=out_tokens, ignore_eos=True))
        cached = sum(r.cached_tokens for r in results)
        cached_shared = sum(min(r.cached_tokens, shared) for r in results)
        prompt = sum(r.prompt_tokens for r in results)
        return dt, cached, prompt, cached_shared / (shared * n_req), shared
    finally:
        rt.shutdown()


def _common_len(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def weights_label(rt) -> str:
    """``bfloat16 + int4`` / ``bfloat16`` / ``float32``: how a runtime's model computes."""
    from structgen.engine.models.quant import Int4Weight

    dt = str(rt.runner.dtype).removeprefix("torch.")
    return dt + (" + int4 weights" if isinstance(rt.runner.model.weights.layers[0].w_qkv, Int4Weight) else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=64, help="generated tokens per request")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--skip-hf", action="store_true", help="skip the Hugging Face baseline")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the best of each is reported")
    ap.add_argument("--skip-prefix", action="store_true", help="skip the shared-prefix workload")
    ap.add_argument("--dtypes", default="auto,float32",
                    help="structgen dtypes to run (auto = the default: bfloat16 with 4-bit weights on CPUs "
                         "with native bfloat16, else float32)")
    ap.add_argument("--hf-dtypes", default="float32,bfloat16", help="Hugging Face dtypes to run")
    ap.add_argument("--engine-thread", action="store_true",
                    help="run structgen's steps in the Runtime's background thread (the pre-caller-stepping path)")
    args = ap.parse_args()
    global ENGINE_THREAD
    ENGINE_THREAD = args.engine_thread
    if args.threads:
        torch.set_num_threads(args.threads)
    from structgen import Regex, assets
    from structgen.engine.runtime import Runtime

    gguf = assets.default_model_file()
    print(f"model: {assets.DEFAULT_MODEL_NAME} ({gguf.name}), CPU: {platform.processor() or platform.machine()}, "
          f"torch threads: {torch.get_num_threads()}, torch {torch.__version__}, load average "
          f"{os.getloadavg()[0]:.1f}")
    engines = {}  # label -> (throughput fn, model)
    for dt in args.dtypes.split(","):
        rt = Runtime(device="cpu", max_batch_size=64, dtype=None if dt == "auto" else dt)
        rt._caller_steps = not ENGINE_THREAD
        engines[f"structgen ({'default: ' if dt == 'auto' else ''}{weights_label(rt)})"] = (structgen_throughput, rt)
    default_rt = next(iter(engines.values()))[1]
    if not args.skip_hf:
        from transformers import AutoModelForCausalLM

        for dt in args.hf_dtypes.split(","):
            hf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
            hf = hf.to(getattr(torch, dt)).eval()
            engines[f"HF generate ({dt})"] = (lambda m, p, n: hf_throughput(m, default_rt.tokenizer, p, n), hf)
    # Interleaved rounds, best of each: the CPU may be shared, so compare under the same load.
    best: dict[tuple[str, int], tuple[float, int, float]] = {}
    for _ in range(args.rounds):
        for b in (1, 8):
            for name, (fn, model) in engines.items():
                res = fn(model, PROMPTS[:b], args.tokens)
                if (name, b) not in best or res[0] > best[(name, b)][0]:
                    best[(name, b)] = res
    names = list(engines)
    rows = []
    for b in (1, 8):
        for name in names:
            tps, n, dt = best[(name, b)]
            ratio = f"{best[(names[0], b)][0] / tps:.2f}x" if name != names[0] else ""
            rows.append([name, b, n, f"{dt:.2f}", f"{tps:.1f}", ratio])
    table(f"1. decode throughput, greedy, {args.tokens} new tokens per request (best of {args.rounds} interleaved "
          f"rounds, load average now {os.getloadavg()[0]:.1f})",
          ["engine", "batch", "tokens", "s", "tok/s", f"{names[0].split(' (')[0]} default is"], rows)
    for name, (_, model) in list(engines.items())[1:]:
        if isinstance(model, Runtime):
            model.shutdown()
    engines.clear()
    rt = default_rt

    work = {"free text": None, "regex [ -~]* (one FSM state: steady-state mask cost)": Regex(r"[ -~]*"),
            "regex [ -~]{4000} (a new FSM state every token)": Regex(r"[ -~]{4000}")}
    tps = {name: 0.0 for name in work}
    for _ in range(args.rounds):
        for name, c in work.items():
            tps[name] = max(tps[name], structgen_throughput(rt, PROMPTS, args.tokens, c)[0])
    free = tps["free text"]
    table(f"2. constrained vs unconstrained (batch 8, same lengths: ignore_eos; best of {args.rounds} interleaved rounds)",
          ["workload", "tok/s", "slowdown"],
          [[name, f"{v:.1f}", "" if name == "free text" else f"{(1 - v / free) * 100:+.1f}%"] for name, v in tps.items()])
    rt.shutdown()

    if not args.skip_prefix:
        on = shared_prefix(None, True)
        off = shared_prefix(None, False)
        table(f"3. shared prefix: 32 requests sharing a {on[4]}-token prefix (chat header + few-shot), 8 new tokens each",
              ["radix cache", "s", "prompt tokens", "from cache", "shared prefix from cache", "speed-up"],
              [["on", f"{on[0]:.2f}", on[2], on[1], f"{on[3] * 100:.1f}%", f"{off[0] / on[0]:.2f}x"],
               ["off", f"{off[0]:.2f}", off[2], off[1], f"{off[3] * 100:.1f}%", "1.00x"]])

if __name__ == "__main__":
    main()
