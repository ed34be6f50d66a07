"""GPU decode benchmark: structgen's GraphDecoder vs Hugging Face ``generate()``, in one run.

    python bench/gpu_bench.py --tokenizer .carry/llama3-tokenizer.json [--quick] [--write docs/benchmarks-gpu.md]

Models use RANDOM weights with the exact Llama-3.2-1B and SmolLM2-135M configs (nothing can be
downloaded on the benchmark machine; decode speed does not depend on the weights' values), bf16,
128-token prompts. Both systems run the same weights (ours are built from the HF model's tensors).

* decode ms/step and tokens/s at batch 1, 16, 64, 256: structgen (CUDA-graph decode step with
  device-side sampling) vs HF ``generate()`` (dynamic cache, warmed up) vs HF
  ``generate(cache_implementation="static")`` (torch.compile; skipped with the reason on failure);
  HF time per step = (time for 1 + n tokens - time for 1 token) / n, so the prefill is excluded;
* constrained (a JSON schema, Llama-3 tokenizer) vs unconstrained decode at batch 64;
* masking cost: fused masked sampling vs one read of the logits (``logits.max(-1)``);
* engine decode ms/step through ``Runtime`` (scheduling, forward, sampling, detokenisation) at
  batch 1 and 64, decode-only steps replayed from CUDA graphs vs eager;
* shared prefix through ``Runtime`` (2,000 tokens, 64 requests, 16-token distinct suffixes, 32 new
  tokens each): radix cache on vs off.

    python bench/gpu_bench.py --smoke --tokenizer .carry/llama3-tokenizer.json   # the engine-level
                                                                                  # sections, tiny, on the CPU
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from structgen.engine.gpu_decode import DecodeSeq, GraphDecoder
from structgen.engine.model_runner import ForwardBatch, ModelRunner
from structgen.engine.models.config import ModelConfig
from structgen.engine.models.decoder import DecoderModel
from structgen.engine.models.weights import build_weights

PROMPT = 128
LLAMA_1B = dict(  # noqa: C408
    vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
    num_key_value_heads=8, head_dim=64, max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True,
    bos_token_id=128000, eos_token_id=128001,
    rope_parameters={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_theta": 500000.0},
)
SMOLLM2_135M = dict(  # noqa: C408
    vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
    num_key_value_heads=3, head_dim=64, max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=True,
    bos_token_id=0, eos_token_id=0, rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
)
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "format": "email"},
        "role": {"enum": ["admin", "user", "guest"]},
        "active": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 4},
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string", "maxLength": 32}, "city": {"type": "string", "maxLength": 20},
                           "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
            "required": ["street", "city", "zip"], "additionalProperties": False,
        },
    },
    "required": ["name", "age", "email", "role", "active", "tags", "address"],
    "additionalProperties": False,
}
LINES: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def sync() -> None:
    torch.cuda.synchronize()


def build(cfg_dict: dict):
    """(HF model, our runner) on the same random bf16 weights, on CUDA."""
    import transformers

    cfg = transformers.LlamaConfig(**cfg_dict)
    torch.manual_seed(0)
    with torch.device("cuda"):
        hf = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    sd = dict(hf.state_dict())
    config = ModelConfig.from_hf({**cfg.to_dict(), "architectures": ["LlamaForCausalLM"]})
    dev = torch.device("cuda")
    weights = build_weights(config, sd.__getitem__, set(sd), dev, torch.bfloat16)
    return hf, ModelRunner(config, DecoderModel(config, weights, dev, torch.bfloat16), None)


def prefill(runner, pool, prompts, slots_each: int, chunk: int = 32):
    """Prefill all but the last token of each prompt; returns ``(token, position, slots)`` per prompt."""
    out = []
    for i in range(0, len(prompts), chunk):
        part, seqs = prompts[i : i + chunk], []
        for p in part:
            slots = pool.alloc(slots_each)
            n = len(p) - 1
            seqs.append((p[:-1], 0, slots[:n], slots[:n]))
            out.append((p[-1], n, slots))
        runner.forward(ForwardBatch.build(seqs), pool)
    return out


def time_decoder(dec: GraphDecoder, seqs: list[DecodeSeq], steps: int, warmup: int = 4) -> float:
    """Milliseconds per graph decode step (median of 3 timed runs of ``steps`` steps)."""
    dec.start(seqs)
    dec.run(warmup)
    sync()
    runs = []
    for _ in range(3):
        dec.start(seqs)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            dec.step()
        sync()
        runs.append((time.perf_counter() - t0) * 1000 / steps)
    return sorted(runs)[1]


def hf_ms_per_step(hf, batch: int, steps: int, vocab: int, **kw) -> float:
    """HF generate(): (time for 1 + steps new tokens - time for 1) / steps, after a warm-up."""
    ids = torch.randint(0, vocab, (batch, PROMPT), device="cuda")
    mask = torch.ones_like(ids)

    def gen(n):
        sync()
        t0 = time.perf_counter()
        hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                    pad_token_id=0, **kw)
        sync()
        return time.perf_counter() - t0

    gen(2), gen(steps + 1)  # warm-up (compiles for the static cache)
    one, full = min(gen(1) for _ in range(2)), gen(steps + 1)
    return (full - one) * 1000 / steps


def decode_table(name, hf, runner, batches, steps, hf_steps, args) -> dict:
    vocab = runner.config.vocab_size
    say(f"\n### {name} (random weights), bf16, {PROMPT}-token prompt, {steps} decode steps")
    say("| batch | structgen ms/step | structgen tok/s | HF generate ms/step | HF tok/s | HF static+compile ms/step "
        "| speed-up vs HF | vs static |")
    say("|---|---|---|---|---|---|---|---|")
    results, static_budget = {}, time.perf_counter() + args.compile_budget
    for b in batches:
        pool = runner.new_kv_pool(b * (PROMPT + steps + 8) + 8)
        prompts = torch.randint(0, vocab, (b, PROMPT)).tolist()
        starts = prefill(runner, pool, prompts, PROMPT + steps + 8)
        dec = GraphDecoder(runner, pool, max_batch=b, max_context=PROMPT + steps + 64, max_steps=steps + 16)
        ours = time_decoder(dec, [DecodeSeq(t, p, s) for t, p, s in starts], steps)
        del dec, pool
        hf_ms = hf_ms_per_step(hf, b, hf_steps, vocab)
        static = "skipped"
        if args.skip_compile:
            static = "skipped (--skip-compile)"
        elif time.perf_counter() > static_budget:
            static = "skipped (compile time budget spent)"
        else:
            try:
                static_ms = hf_ms_per_step(hf, b, hf_steps, vocab, cache_implementation="static")
                static = f"{static_ms:.2f}"
            except Exception as exc:  # noqa: BLE001 - report any failure of the baseline
                static = f"failed: {type(exc).__name__}: {str(exc)[:60]}"
        sp_static = f"{float(static) / ours:.1f}x" if static.replace(".", "").isdigit() else "-"
        say(f"| {b} | {ours:.3f} | {b * 1000 / ours:,.0f} | {hf_ms:.2f} | {b * 1000 / hf_ms:,.0f} | {static} "
            f"| {hf_ms / ours:.1f}x | {sp_static} |")
        results[b] = ours
        torch.cuda.empty_cache()
    return results


def constrained(runner, tokenizer_file, steps, batch=64):
    from transformers import PreTrainedTokenizerFast

    from structgen.constraints import JsonSchema
    from structgen.fsm.index import compile_token_fsm

    tok = PreTrainedTokenizerFast(tokenizer_file=tokenizer_file)
    t0 = time.perf_counter()
    fsm = compile_token_fsm(JsonSchema(SCHEMA), tok, cache=False, eager=True)
    compile_s = time.perf_counter() - t0
    vocab = runner.config.vocab_size
    pool = runner.new_kv_pool(batch * (PROMPT + steps + 8) + 8)
    starts = prefill(runner, pool, torch.randint(0, vocab, (batch, PROMPT)).tolist(), PROMPT + steps + 8)
    dec = GraphDecoder(runner, pool, max_batch=batch, max_context=PROMPT + steps + 64, max_steps=steps + 16)
    free = time_decoder(dec, [DecodeSeq(t, p, s) for t, p, s in starts], steps)
    cons_seqs = [DecodeSeq(t, p, s, fsm=fsm) for t, p, s in starts]
    dec.tables.key_of(fsm, fsm.initial_state)
    dec.tables.expand_closure()  # all states are known: put every row on the device before timing
    cons = time_decoder(dec, cons_seqs, steps)
    dec.start(cons_seqs)
    toks = dec.run(steps)[:, 0].tolist()
    text = tok.decode([t for t in toks if t >= 0])
    say(f"\n### Constrained vs unconstrained, Llama-3.2-1B config, batch {batch}")
    say(f"JSON schema: {len(SCHEMA['properties'])} properties; compile + expand all states: {compile_s:.1f} s, "
        f"{fsm.num_states_expanded} token states, device table rows {dec.tables.num_rows}")
    say("| mode | ms/step | tok/s |")
    say("|---|---|---|")
    say(f"| unconstrained | {free:.3f} | {batch * 1000 / free:,.0f} |")
    say(f"| JSON schema | {cons:.3f} | {batch * 1000 / cons:,.0f} |")
    say(f"throughput loss: {(cons / free - 1) * 100:+.1f}%   (sample output of row 0: {text[:100]!r})")
    return fsm, dec


def masking_cost(runner, fsm, tables):
    import triton.testing

    from structgen.kernels import masked_sample

    say("\n### Masking cost (128,256-token vocab, fp32 logits, CUDA-graph-free kernel time, median)")
    say("| batch | one read (logits.max) µs | masked sample, JSON states µs | sample, unconstrained µs | ratio |")
    say("|---|---|---|---|---|")
    v = runner.config.vocab_size
    rows = torch.arange(1, tables.num_rows, device="cuda")
    for b in (64, 256):
        logits = torch.randn(b, v, device="cuda")
        states = rows[torch.randint(0, rows.numel(), (b,), device="cuda")]
        free = torch.full((b,), -1, device="cuda", dtype=torch.long)
        temp, seeds, offs = (torch.zeros(b, device="cuda"), torch.arange(b, device="cuda"),
                             torch.zeros(b, dtype=torch.long, device="cuda"))
        read = triton.testing.do_bench(lambda: logits.max(-1), return_mode="median") * 1000  # noqa: B023
        ms = triton.testing.do_bench(lambda: masked_sample(logits, tables.bitmask, states, temp, seeds, offs),  # noqa: B023
                                     return_mode="median") * 1000
        mu = triton.testing.do_bench(lambda: masked_sample(logits, tables.bitmask, free, temp, seeds, offs),  # noqa: B023
                                     return_mode="median") * 1000
        say(f"| {b} | {read:.1f} | {ms:.1f} | {mu:.1f} | {ms / read:.2f}x |")


def runtime_prompts(vocab: int, n: int, length: int) -> list[list[int]]:
    return torch.randint(0, vocab, (n, length)).tolist()


def runtime_decode(runner, batches, steps, prompt_len=PROMPT):
    """Engine-level decode ms/step through ``Runtime``, CUDA graphs on vs off (greedy, ignore_eos).

    ms/step = (wall time of 1 + steps new tokens - wall time of 1 new token) / steps, fresh
    random prompts each call (radix cache off, so no call reuses another's prefill), after a
    warm-up that captures the graphs.
    """
    from structgen.engine.request import GenerateRequest
    from structgen.engine.runtime import Runtime

    vocab = runner.config.vocab_size
    say(f"\n### Engine decode through Runtime, {prompt_len}-token prompts, {steps} new tokens, greedy, ignore_eos")
    say("(the whole engine step: scheduling, forward, sampling, detokenisation; element-wise ops eager)")
    say("| batch | CUDA graphs ms/step | tok/s | no graphs ms/step | tok/s | speed-up |")
    say("|---|---|---|---|---|---|")
    kv = max(batches) * (prompt_len + steps + 8) + 64
    rts = {g: Runtime(runner=runner, kv_cache_tokens=kv, max_batch_size=max(batches), radix_cache=False, cuda_graphs=g)
           for g in (True, False)}

    def gen(rt, b, n):
        prompts = runtime_prompts(vocab, b, prompt_len)
        t0 = time.perf_counter()
        handles = [rt.submit(GenerateRequest(p, max_tokens=n, ignore_eos=True)) for p in prompts]
        assert all(h.result().completion_tokens == n for h in handles)
        return time.perf_counter() - t0

    for b in batches:
        ms = {}
        for g, rt in rts.items():
            gen(rt, b, 2), gen(rt, b, steps + 1)  # warm-up: graph capture, kernels
            one = min(gen(rt, b, 1) for _ in range(2))
            ms[g] = (min(gen(rt, b, steps + 1) for _ in range(2)) - one) * 1000 / steps
        say(f"| {b} | {ms[True]:.3f} | {b * 1000 / ms[True]:,.0f} | {ms[False]:.3f} | {b * 1000 / ms[False]:,.0f} "
            f"| {ms[False] / ms[True]:.2f}x |")
    for rt in rts.values():
        rt.shutdown()


def shared_prefix(runner, n_req=64, prefix_len=2000, suffix=16, new=32):
    """The real ``Runtime`` with its radix cache on vs off: ``n_req`` requests sharing a prefix."""
    from structgen.engine.request import GenerateRequest
    from structgen.engine.runtime import Runtime

    vocab = runner.config.vocab_size
    say(f"\n### Shared prefix through Runtime: {prefix_len}-token prefix, {n_req} requests x ({suffix}-token "
        f"distinct suffix + {new} new tokens), greedy, ignore_eos")
    say("(all requests submitted at once; wall time from submit to the last result; a warm-up run with "
        "another prefix first)")
    say("| radix cache | wall s | generated tok/s | cached_prompt_tokens | forward tokens |")
    say("|---|---|---|---|---|")
    out = {}
    for radix in (True, False):
        kv = n_req * (prefix_len + suffix + new + 8) + 64
        with Runtime(runner=runner, kv_cache_tokens=kv, max_batch_size=n_req, radix_cache=radix) as rt:
            for timed in (False, True):
                prefix = runtime_prompts(vocab, 1, prefix_len)[0]
                prompts = [prefix + sfx for sfx in runtime_prompts(vocab, n_req, suffix)]
                before = rt.stats()
                t0 = time.perf_counter()
                handles = [rt.submit(GenerateRequest(p, max_tokens=new, ignore_eos=True)) for p in prompts]
                assert all(h.result().completion_tokens == new for h in handles)
                wall = time.perf_counter() - t0
            after = rt.stats()
        cached = after["cached_prompt_tokens"] - before["cached_prompt_tokens"]
        fwd = after["forward_tokens"] - before["forward_tokens"]
        out[radix] = wall
        say(f"| {'on' if radix else 'off'} | {wall:.3f} | {n_req * new / wall:,.0f} | {cached:,} | {fwd:,} |")
    say(f"speed-up with the radix cache: {out[False] / out[True]:.1f}x")


def smoke(args) -> None:
    """Every engine-level section, tiny, on the CPU (checks the code paths, not speed)."""
    from transformers import PreTrainedTokenizerFast

    from structgen.engine.models.weights import random_weights

    tiny = dict(LLAMA_1B, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, max_position_embeddings=512)
    config = ModelConfig.from_hf({**tiny, "architectures": ["LlamaForCausalLM"]})
    dev = torch.device("cpu")
    runner = ModelRunner(config, DecoderModel(config, random_weights(config, dev, torch.float32), dev, torch.float32),
                         PreTrainedTokenizerFast(tokenizer_file=args.tokenizer))
    say("## smoke run: tiny Llama-shaped model on the CPU (figures mean nothing)")
    runtime_decode(runner, (1, 4), 4, prompt_len=8)
    shared_prefix(runner, n_req=4, prefix_len=40, suffix=4, new=4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", help="Llama-3 tokenizer.json for the constrained run (skipped without)")
    ap.add_argument("--quick", action="store_true", help="batch 1 and 64 only, fewer steps, no torch.compile")
    ap.add_argument("--skip-compile", action="store_true", help="skip the HF static-cache + torch.compile baseline")
    ap.add_argument("--compile-budget", type=float, default=150.0, help="seconds to spend on the compiled baseline")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--hf-steps", type=int, default=32)
    ap.add_argument("--write", help="append the tables to this markdown file")
    ap.add_argument("--smoke", action="store_true", help="the engine-level sections, tiny, on the CPU (needs --tokenizer)")
    args = ap.parse_args()
    if args.smoke:
        if not args.tokenizer:
            ap.error("--smoke needs --tokenizer (a Llama-3 tokenizer.json)")
        return smoke(args)
    if args.quick:
        args.skip_compile, args.steps, args.hf_steps = True, 32, 16
    torch.backends.cuda.matmul.allow_tf32 = True
    card = torch.cuda.get_device_name()
    say(f"## GPU decode benchmark — {card}, torch {torch.__version__}")
    say("All models use RANDOM weights with the published configs (no downloads on this machine).")
    batches = (1, 64) if args.quick else (1, 16, 64, 256)
    t_start = time.perf_counter()
    hf, runner = build(LLAMA_1B)
    decode_table("Llama-3.2-1B config", hf, runner, batches, args.steps, args.hf_steps, args)
    if args.tokenizer:
        from transformers import PreTrainedTokenizerFast

        from structgen.engine.models.decoder import EAGER_OPS

        runner.tokenizer = PreTrainedTokenizerFast(tokenizer_file=args.tokenizer)
        runner.model.decode_ops = EAGER_OPS  # the engine does not compile them (GraphDecoder did above)
        runtime_decode(runner, batches, args.steps)
        shared_prefix(runner)
        try:
            fsm, dec = constrained(runner, args.tokenizer, args.steps)
        except ModuleNotFoundError as exc:  # e.g. jsonschema (schema checks) missing on this machine
            say(f"\n(constrained run skipped: {exc})")
        else:
            masking_cost(runner, fsm, dec.tables)
            del dec
    else:
        say("\n(constrained and engine-level runs skipped: pass --tokenizer PATH/tokenizer.json of Llama 3)")
    del hf, runner
    torch.cuda.empty_cache()
    hf, runner = build(SMOLLM2_135M)
    args.compile_budget = 0 if args.quick else args.compile_budget / 2
    decode_table("SmolLM2-135M config", hf, runner, batches, args.steps, args.hf_steps, args)
    say(f"\n(total benchmark time {time.perf_counter() - t_start:.0f} s)")
    if args.write:
        with open(args.write, "a", encoding="utf-8") as f:
            f.write("\n".join(LINES) + "\n")


if __name__ == "__main__":
    main()
