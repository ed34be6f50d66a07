"""Programs with a long shared prefix and fork(8): radix cache on vs off.

Workload: one program per input (``run_batch``), each starting with the same long system
instruction, then the input, then ``fork(8)``; every branch asks for a 1-5 rating of one aspect
(``gen(regex="[1-5]")``). Prefill dominates, so reusing the shared prefix's KV is what matters.

    python bench/program_bench.py            # 32 inputs x fork(8)
    python bench/program_bench.py --quick    # 4 inputs x fork(8), shorter instruction

Prints wall time, prompt tokens and cached prompt tokens for each setting and the speed-up.
"""

from __future__ import annotations

import argparse
import time

import structgen.frontend as sg

ASPECTS = ["price", "quality", "design", "battery", "screen", "sound", "support", "shipping"]
PRODUCTS = ["phone", "laptop", "tablet", "watch", "camera", "speaker", "headphones", "monitor",
            "keyboard", "mouse", "printer", "router", "console", "drone", "e-reader", "projector"]

RULES = [
    "Read the product review request carefully before answering.",
    "Rate every aspect on a scale from 1 (very poor) to 5 (excellent).",
    "Answer with a single digit and nothing else.",
    "Do not explain your rating and do not add punctuation.",
    "Judge the aspect only, never the product as a whole.",
    "When you are unsure, prefer the middle of the scale.",
    "Consider what a typical customer would expect for the price.",
    "Be consistent: the same facts must always give the same rating.",
]


def instruction(repeats: int) -> str:
    """The shared system instruction: the rules, numbered, repeated ``repeats`` times."""
    lines = [f"{i + 1}. {rule}" for i, rule in enumerate(RULES * repeats)]
    return "You are a product rating assistant. Follow these rules.\n" + "\n".join(lines)


@sg.function
def rate(s, instructions, product, n_forks):
    s += sg.system(instructions)
    s += sg.user(f"The product is a {product}. I will ask about one aspect at a time.")
    s += sg.assistant("Understood.")
    forks = s.fork(n_forks)
    for aspect, f in zip(ASPECTS, forks):
        f += sg.user(f"Rate the {aspect}.")
        f += sg.assistant(sg.gen("rating", regex="[1-5]", max_tokens=2))
    s["ratings"] = [f["rating"] for f in forks]


def run(radix: bool, inputs: list, n_forks: int) -> dict:
    """Load a fresh Runtime, run the batch once, return wall time and token counters."""
    rt = sg_runtime(radix)
    try:
        rate.run(instructions=inputs[0]["instructions"], product="warm-up", n_forks=1, runtime=rt)  # compile + warm
        before = rt.stats()
        t0 = time.perf_counter()
        states = rate.run_batch(inputs, runtime=rt, n_forks=n_forks)
        wall = time.perf_counter() - t0
        after = rt.stats()
    finally:
        rt.shutdown()
    assert all(len(s["ratings"]) == n_forks for s in states)
    return {"wall": wall, "prompt": after["prompt_tokens"] - before["prompt_tokens"],
            "cached": after["cached_prompt_tokens"] - before["cached_prompt_tokens"]}


def sg_runtime(radix: bool):
    from structgen.engine import Runtime

    return Runtime(radix_cache=radix)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 inputs and a shorter instruction")
    ap.add_argument("--inputs", type=int, default=None, help="number of programs (default 32, quick 4)")
    ap.add_argument("--forks", type=int, default=8)
    args = ap.parse_args()
    n_inputs = args.inputs or (4 if args.quick else 32)
    text = instruction(2 if args.quick else 4)
    inputs = [{"instructions": text, "product": PRODUCTS[i % len(PRODUCTS)] + f" #{i}"} for i in range(n_inputs)]
    print(f"{n_inputs} programs x fork({args.forks}), shared instruction of {len(text)} chars")
    rows = {radix: run(radix, inputs, args.forks) for radix in (True, False)}
    print(f"{'radix cache':<12} {'wall s':>8} {'prompt tok':>11} {'cached tok':>11} {'cached %':>9}")
    for radix, r in rows.items():
        pct = 100.0 * r["cached"] / max(1, r["prompt"])
        print(f"{'on' if radix else 'off':<12} {r['wall']:>8.2f} {r['prompt']:>11} {r['cached']:>11} {pct:>8.1f}%")
    print(f"speed-up with the radix cache: {rows[False]['wall'] / rows[True]['wall']:.2f}x")


if __name__ == "__main__":
    main()
