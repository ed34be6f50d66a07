"""Microseconds per call of the structgen kernels, on whatever device is present.

    python bench/kernel_bench.py            # CUDA if available (torch vs triton), else CPU (torch, small)
    python bench/kernel_bench.py --small    # small sizes, few iterations
    python bench/kernel_bench.py --groups attn,rope_kv   # a subset of the tables
    python bench/kernel_bench.py --groups gemv --gemv-configs   # gemv, also under other launch configs
    python bench/kernel_bench.py --groups gemv_norm --gemv-configs   # the norm-fused gemv, likewise

Prints one table: masking (V = 128256, fp32) against "one read of the logits" (``logits.max(-1)``)
and a copy, fused masked sampling (greedy and temperature 1), the FSM advance, and decode /
extend attention over a shuffled KV pool (bf16, 32 query heads, 8 KV heads, head_dim 128),
with the KV bytes read per second (decode with both ``merge`` modes, and the fused one with
16-, 32- and 64-row KV tiles: ``block_n``), and the fused RoPE + KV
write (Llama-3.2-1B heads), and the skinny projections (``gemv``, batch 1, 2 and 4, the five
Llama-3.2-1B shapes, bf16) against ``F.linear`` (cuBLAS), each call on another copy of the weight
so that L2 holds none of it (as in a decode step, where every layer has its own), and the
projections that follow a norm (``gemv_norm``: residual add + RMSNorm fused in, batch 1 and 2)
against the compiled add + RMSNorm kernel followed by ``gemv``. xgrammar's ``apply_token_bitmask_inplace`` is timed too when
it imports (CUDA only). The Triton interpreter is never timed: on the CPU only torch runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from structgen.kernels import (  # noqa: E402
    advance_states,
    apply_token_bitmask_,
    decode_attention,
    extend_attention,
    gemv,
    gemv_norm,
    mask_logits_by_state_,
    masked_sample,
    rope_kv_write,
)
from structgen.engine.graph_runner import capture_graph  # noqa: E402
from structgen.kernels.attention import MERGES
from structgen.kernels.gemv import (
    GemvConfig,
    gemv_config,
    gemv_norm_triton,
    gemv_triton,
)

VOCAB = 128256
GROUPS = ("mask", "sample", "fsm", "attn", "rope_kv", "gemv", "gemv_norm")
GEMV_SHAPES = {"qkv": (3072, 2048), "o": (2048, 2048), "gate_up": (16384, 2048), "down": (2048, 8192),
               "lm_head": (128256, 2048)}  # Llama-3.2-1B projections [out, in]
GEMV_CONFIGS = [GemvConfig(*c) for c in [(8, 512, 1, 4, 1), (4, 512, 1, 4, 1), (4, 512, 2, 4, 1), (8, 1024, 1, 8, 1),
                                         (8, 1024, 1, 8, 2), (4, 1024, 1, 4, 2), (2, 1024, 1, 4, 1), (2, 1024, 1, 4, 2),
                                         (4, 512, 1, 4, 2), (8, 512, 1, 4, 2), (2, 512, 1, 2, 2), (1, 1024, 1, 4, 2)]]


def timer(device: torch.device, iters: int, warmup: int = 3, repeats: int = 3):
    """Return ``measure(fn, graph=True) -> (eager µs, graph µs or None)`` per call.

    Eager: best of ``repeats`` means over ``iters`` back-to-back calls (includes Python and
    launch overhead). Graph (CUDA only, when ``graph``): the same calls captured once in a CUDA
    graph and replayed, i.e. device time alone, as in a graph-captured decode step.
    """

    def eager(fn) -> float:
        results = []
        for _ in range(repeats):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                for _ in range(iters):
                    fn()
                end.record()
                torch.cuda.synchronize()
                results.append(start.elapsed_time(end) * 1e3 / iters)
            else:
                t0 = time.perf_counter()
                for _ in range(iters):
                    fn()
                results.append((time.perf_counter() - t0) * 1e6 / iters)
        return min(results)

    def in_graph(fn) -> float:
        graph, _ = capture_graph(lambda: [fn() for _ in range(iters)], torch.device("cuda"), warmup=1)
        graph.replay()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        results = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            start.record()
            graph.replay()
            end.record()
            torch.cuda.synchronize()
            results.append(start.elapsed_time(end) * 1e3 / iters)
        return min(results)

    def measure(fn, graph: bool = True) -> tuple[float, float | None]:
        for _ in range(warmup):
            fn()
        return eager(fn), in_graph(fn) if graph and device.type == "cuda" else None

    return measure


def backends(device: torch.device) -> list[str]:
    return ["torch", "triton"] if device.type == "cuda" else ["torch"]


def random_table(n_states: int, vocab: int, device, gen) -> torch.Tensor:
    words = (vocab + 31) // 32
    return torch.randint(-(2**31), 2**31 - 1, (n_states, words), dtype=torch.int32, generator=gen).to(device)


def add(rows, group, case, kernel, times, read=None, note=""):
    """Append a row; ``read`` (the one-read timing) adds a "x read" note, graph times preferred."""
    if read is not None:
        mine, ref = (times[1], read[1]) if times[1] is not None and read[1] is not None else (times[0], read[0])
        note = f"{mine / ref:.2f}x read"
    rows.append((group, case, kernel, times, note))


def bench_mask(rows, measure, device, batches, gen):
    for b in batches:
        case = f"B={b} V={VOCAB} fp32"
        logits = torch.randn(b, VOCAB, generator=gen).to(device)
        copy_dst = torch.empty_like(logits)
        table = random_table(64, VOCAB, device, gen)
        states = torch.randint(0, 64, (b,), generator=gen).to(device)
        bitmask = table[states]
        read = measure(lambda: logits.max(dim=-1))
        add(rows, "mask", case, "logits.max(-1) (one read)", read)
        add(rows, "mask", case, "copy_ (read + write)", measure(lambda: copy_dst.copy_(logits)))
        for be in backends(device):
            add(rows, "mask", case, f"apply_token_bitmask_ [{be}]",
                measure(lambda: apply_token_bitmask_(logits, bitmask, backend=be)), read)
            add(rows, "mask", case, f"mask_logits_by_state_ [{be}]",
                measure(lambda: mask_logits_by_state_(logits, table, states, backend=be)), read)
        xgr = xgrammar_mask(device)
        if xgr is not None:
            add(rows, "mask", case, "xgrammar apply_token_bitmask_inplace", measure(lambda: xgr(logits, bitmask)), read)


def xgrammar_mask(device):
    if device.type != "cuda":
        return None
    try:
        import xgrammar
    except Exception:  # noqa: BLE001 - optional comparison only
        return None
    return xgrammar.apply_token_bitmask_inplace


def bench_sampling(rows, measure, device, batches, gen):
    for b in batches:
        case = f"B={b} V={VOCAB} fp32"
        logits = torch.randn(b, VOCAB, generator=gen).to(device)
        table = random_table(64, VOCAB, device, gen)
        states = torch.randint(0, 64, (b,), generator=gen).to(device)
        seeds = torch.arange(b, dtype=torch.int64, device=device)
        offsets = torch.zeros(b, dtype=torch.int64, device=device)
        read = measure(lambda: logits.max(dim=-1))
        add(rows, "sample", case, "logits.max(-1) (one read)", read)
        for temp in (0.0, 1.0):
            t = torch.full((b,), temp, device=device)
            kind = "greedy" if temp == 0 else "T=1 gumbel"
            for be in backends(device):
                fn = lambda: masked_sample(logits, table, states, t, seeds, offsets, backend=be)
                add(rows, "sample", case, f"masked_sample {kind} [{be}]", measure(fn, graph=be == "triton"), read)


def bench_fsm(rows, measure, device, batches, gen):
    n_states, per_row = 1000, 1000
    tokens = torch.stack([torch.randperm(VOCAB, generator=gen)[:per_row].sort().values for _ in range(n_states)])
    indptr = torch.arange(0, n_states * per_row + 1, per_row, dtype=torch.int32).to(device)
    tokens = tokens.reshape(-1).to(torch.int32).to(device)
    nexts = torch.randint(0, n_states, (tokens.numel(),), dtype=torch.int32, generator=gen).to(device)
    for b in batches:
        states = torch.randint(0, n_states, (b,), generator=gen).to(device)
        sampled = tokens.view(n_states, per_row)[states, 0].long()
        for be in backends(device):
            add(rows, "fsm", f"B={b} S={n_states} nnz={tokens.numel()}", f"advance_states [{be}]",
                measure(lambda: advance_states(indptr, tokens, nexts, states, sampled, backend=be)))


def bench_attention(rows, measure, device, cases, heads, gen):
    n_q_heads, n_kv_heads, head_dim = heads
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for b, ctx in cases:
        n_slots = b * ctx
        k_pool = torch.randn(n_slots, n_kv_heads, head_dim, dtype=dtype, device=device)
        v_pool = torch.randn_like(k_pool)
        indices = torch.randperm(n_slots, device=device).to(torch.int32)
        indptr = torch.arange(0, n_slots + 1, ctx, device=device)
        q = torch.randn(b, n_q_heads, head_dim, dtype=dtype, device=device)
        kv_bytes = 2 * n_slots * n_kv_heads * head_dim * k_pool.element_size()
        variants = [("torch", "fused", None)] + [("triton", merge, None) for merge in MERGES if device.type == "cuda"]
        variants += [("triton", "fused", n) for n in (16, 32, 64) if device.type == "cuda"]
        for be, merge, block_n in variants:
            if be == "torch" and b * ctx > 64 * 1024 and device.type == "cuda":
                continue  # the per-sequence reference loop is not worth timing at this size
            fn = lambda block_n=block_n: decode_attention(q, k_pool, v_pool, indptr, indices, merge=merge,
                                                          block_n=block_n, backend=be)
            times = measure(fn, graph=be == "triton")
            best = times[1] if times[1] is not None else times[0]
            label = f"decode_attention [{be}]" if be == "torch" else f"decode_attention merge={merge} [{be}]"
            label += f" block_n={block_n}" if block_n else ""
            add(rows, "attn", f"decode B={b} ctx={ctx} {str(dtype)[6:]}", label, times,
                note=f"{kv_bytes / best / 1e3:.0f} GB/s KV")
    b, prefix, new = cases[0][0], cases[0][1] // 2, cases[0][1] // 2
    n_slots = b * (prefix + new)
    k_pool = torch.randn(n_slots, n_kv_heads, head_dim, dtype=dtype, device=device)
    v_pool = torch.randn_like(k_pool)
    indices = torch.randperm(n_slots, device=device).to(torch.int32)
    kv_indptr = torch.arange(0, n_slots + 1, prefix + new, device=device)
    qo_indptr = torch.arange(0, b * new + 1, new, device=device)
    q = torch.randn(b * new, n_q_heads, head_dim, dtype=dtype, device=device)
    for be in backends(device):
        fn = lambda: extend_attention(q, k_pool, v_pool, qo_indptr, kv_indptr, indices, max_q_len=new,
                                      backend=be)
        add(rows, "attn", f"extend B={b} prefix={prefix} new={new}", f"extend_attention [{be}]",
            measure(fn, graph=be == "triton"))


def bench_rope_kv(rows, measure, device, batches, heads, gen):
    """RoPE of q/k + both KV-pool writes: the fused kernel against the reference's separate ops."""
    n_q_heads, n_kv_heads, head_dim = heads
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    table = torch.randn(4096, head_dim, generator=gen).to(dtype).to(device)
    for b in batches:
        qkv = torch.randn(b, (n_q_heads + 2 * n_kv_heads) * head_dim, generator=gen).to(dtype).to(device)
        q, k, v = qkv.split((n_q_heads * head_dim, n_kv_heads * head_dim, n_kv_heads * head_dim), dim=1)
        q, k, v = q.view(b, n_q_heads, head_dim), k.view(b, n_kv_heads, head_dim), v.view(b, n_kv_heads, head_dim)
        k_pool = torch.zeros(b * 64, n_kv_heads, head_dim, dtype=dtype, device=device)
        v_pool = torch.zeros_like(k_pool)
        pos = torch.randint(0, 4096, (b,), generator=gen).to(device)
        slots = torch.randperm(b * 64, generator=gen)[:b].to(device)
        for be in backends(device):
            fn = lambda: rope_kv_write(q, k, v, table, table, pos, slots, k_pool, v_pool, backend=be)
            add(rows, "rope_kv", f"B={b} Hq={n_q_heads} Hkv={n_kv_heads} D={head_dim}", f"rope_kv_write [{be}]",
                measure(fn))


def bench_gemv(rows, measure, device, batches, shapes, gen, configs=()):
    """Per call: ``F.linear`` (cuBLAS) vs ``gemv`` (Triton), weight GB/s in the note; ``down`` also
    with the MLP activation fused (``gated``: its input is the gate/up output); ``configs``: the
    Triton kernel under other launch parameters too."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for name, (n, k) in shapes.items():
        size = n * k * torch.finfo(dtype).bits // 8
        copies = max(1, -(-128 * 2**20 // size))  # > L2: each call reads its weight from memory
        ws = [(torch.randn(n, k, generator=gen) / k**0.5).to(dtype).to(device) for _ in range(copies)]
        for b in batches:
            x = torch.randn(b, k, generator=gen).to(dtype).to(device)
            xg = torch.randn(b, 2 * k, generator=gen).to(dtype).to(device)
            case = f"{name} B={b} N={n} K={k}"
            cands = [("F.linear [torch]", lambda w: torch.nn.functional.linear(x, w))]
            for be in backends(device)[1:]:
                cfg = gemv_config(b, n, k, x.element_size())
                cands.append((f"gemv [{be}] {tuple(cfg)}", lambda w: gemv(x, w, backend=be)))
                if name == "down":
                    cands.append((f"gemv gated [{be}]", lambda w: gemv(xg, w, gated=True, backend=be)))
                cands += [(f"gemv_triton {tuple(c)}", lambda w, c=c: gemv_triton(x, w, config=c))
                          for c in configs if c != cfg]
            for label, fn in cands:
                t = measure(lambda fn=fn: [fn(w) for w in ws])
                t = (t[0] / copies, None if t[1] is None else t[1] / copies)
                best = t[1] if t[1] is not None else t[0]
                add(rows, "gemv", case, label, t, note=f"{size / best / 1e3:.0f} GB/s")


def bench_gemv_norm(rows, measure, device, batches, shapes, gen, configs=()):
    """Per call: the add + RMSNorm kernel then ``gemv`` (as ``DecodeKernels(fused_norm=False)`` runs
    them; torch.compile'd on CUDA) vs ``gemv_norm``; weight GB/s in the note; ``configs``: the
    Triton kernel under other launch parameters too."""
    from structgen.engine.models.decoder import ElementwiseOps

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    add_norm = ElementwiseOps.compiled().add_norm if device.type == "cuda" else ElementwiseOps().add_norm
    for name, (n, k) in shapes.items():
        size = n * k * torch.finfo(dtype).bits // 8
        copies = max(1, -(-128 * 2**20 // size))  # > L2: each call reads its weight from memory
        ws = [(torch.randn(n, k, generator=gen) / k**0.5).to(dtype).to(device) for _ in range(copies)]
        ln = (1 + 0.1 * torch.randn(k, generator=gen)).to(dtype).to(device)
        for b in batches:
            x, d = (torch.randn(b, k, generator=gen).to(dtype).to(device) for _ in range(2))
            case = f"{name} B={b} N={n} K={k}"
            cands = [("add_norm + gemv", lambda w: gemv(add_norm(x, d, ln, 1e-5)[1], w))]
            cfg = gemv_config(b, n, k, x.element_size())
            cands.append((f"gemv_norm {tuple(cfg)}", lambda w: gemv_norm(x, w, ln=ln, eps=1e-5, delta=d)))
            cands += [(f"gemv_norm_triton {tuple(c)}",
                       lambda w, c=c: gemv_norm_triton(x, w, ln=ln, eps=1e-5, delta=d, config=c))
                      for c in configs if c != cfg and device.type == "cuda"]
            for label, fn in cands:
                t = measure(lambda fn=fn: [fn(w) for w in ws])
                t = (t[0] / copies, None if t[1] is None else t[1] / copies)
                best = t[1] if t[1] is not None else t[0]
                add(rows, "gemv_norm", case, label, t, note=f"{size / best / 1e3:.0f} GB/s")


def print_table(rows, device):
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}   torch {torch.__version__}")
    print("eager: back-to-back calls from Python; graph: the same calls replayed from a CUDA graph (device time)")
    header = ("group", "case", "kernel [backend]", "eager µs", "graph µs", "note")
    cells = [(g, c, k, f"{t[0]:.1f}", "-" if t[1] is None else f"{t[1]:.1f}", n) for g, c, k, t, n in rows]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(6)]
    fmt = "  ".join(f"{{:{'>' if i in (3, 4) else '<'}{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for cell in cells:
        print(fmt.format(*cell))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small sizes and few iterations (default on CPU)")
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated subset of {','.join(GROUPS)}")
    parser.add_argument("--gemv-configs", action="store_true", help="gemv: also time other launch configs")
    args = parser.parse_args()
    groups = set(args.groups.split(","))
    if not groups <= set(GROUPS):
        parser.error(f"unknown groups {sorted(groups - set(GROUPS))}; use a subset of {','.join(GROUPS)}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    small = args.small or device.type != "cuda"
    measure = timer(device, args.iters or (3 if small else 50), warmup=1 if small else 5)
    gen = torch.Generator().manual_seed(0)
    batches = [1, 8] if small else [1, 64, 256]
    rows: list[tuple] = []
    if "mask" in groups:
        bench_mask(rows, measure, device, batches, gen)
    if "sample" in groups:
        bench_sampling(rows, measure, device, batches, gen)
    if "fsm" in groups:
        bench_fsm(rows, measure, device, batches, gen)
    if "attn" in groups and small:
        bench_attention(rows, measure, device, [(1, 256), (4, 512)], (8, 2, 64), gen)
    elif "attn" in groups:
        bench_attention(rows, measure, device, [(1, 256), (64, 256), (1, 4096), (32, 1024), (64, 4096), (256, 2048)],
                        (32, 8, 128), gen)
    if "rope_kv" in groups:
        bench_rope_kv(rows, measure, device, batches, (32, 8, 64), gen)
    if "gemv" in groups:
        shapes = {"small": (300, 256), "down": (64, 512)} if small else GEMV_SHAPES
        bench_gemv(rows, measure, device, [1, 2, 4], shapes, gen, GEMV_CONFIGS if args.gemv_configs else ())
    if "gemv_norm" in groups:
        shapes = {"small": (300, 256)} if small else {n: GEMV_SHAPES[n] for n in ("qkv", "gate_up", "lm_head")}
        bench_gemv_norm(rows, measure, device, [1, 2], shapes, gen, GEMV_CONFIGS if args.gemv_configs else ())
    print_table(rows, device)


if __name__ == "__main__":
    main()
