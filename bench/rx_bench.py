"""Derivative-core throughput: how fast ``ByteDFA`` expands states of representative expressions.

Prints one table row per workload: time to build the expression, states expanded (breadth
first, up to ``--max-states``), µs per expansion and expansions per second (the traversal's own
cost, measured by a second pass over the expanded DFA, is subtracted), and expression-pool size.
Times are CPU time of this process (robust to other load on shared machines), best of
``--repeat`` fresh runs. Workloads mirror what JSON Schema compilation produces.

    python bench/rx_bench.py [--max-states N] [--only NAME]
"""

from __future__ import annotations

import argparse
import random
import string
import time
from collections import deque

from structgen.fsm import utf8
from structgen.fsm.dfa import ByteDFA
from structgen.fsm.rx import INF, ExprPool


def json_char(pool: ExprPool) -> int:
    """One JSON string character: unescaped (no quote, backslash, control) or an escape."""
    plain = utf8.any_char(pool, exclude=[(0, 0x1F), (ord('"'), ord('"')), (ord("\\"), ord("\\"))])
    hexd = pool.byteset(sum(1 << b for b in b"0123456789abcdefABCDEF"))
    esc = pool.concat(
        pool.literal("\\"),
        pool.alt(pool.byteset(sum(1 << b for b in b'"\\/bfnrt')), pool.concat(pool.literal("u"), pool.repeat(hexd, 4, 4))),
    )
    return pool.alt(plain, esc)


def json_string(pool: ExprPool, lo: int = 0, hi: int = INF) -> int:
    q = pool.literal('"')
    return pool.concat(q, pool.repeat(json_char(pool), lo, hi), q)


def enum_5000(pool: ExprPool) -> int:
    rnd = random.Random(0)
    words = {"".join(rnd.choice(string.ascii_lowercase) for _ in range(rnd.randint(3, 14))) for _ in range(5000)}
    return pool.alt_of(pool.literal(f'"{w}"') for w in sorted(words))


def object_40(pool: ExprPool) -> int:
    """A 40-property object, fixed key order, flexible whitespace, mixed value types."""
    ws = pool.repeat(pool.byteset(sum(1 << b for b in b" \t\n\r")), 0, 20)
    digit = pool.byte_range(ord("0"), ord("9"))
    integer = pool.concat(
        pool.optional(pool.literal("-")),
        pool.alt(pool.literal("0"), pool.concat(pool.byte_range(ord("1"), ord("9")), pool.repeat(digit, 0, 15))),
    )
    boolean = pool.alt(pool.literal("true"), pool.literal("false"))
    values = [json_string(pool, 0, 100), integer, boolean, pool.alt(json_string(pool), pool.literal("null"))]
    fields = []
    for i in range(40):
        key = pool.literal(f'"field_{i}"')
        fields.append(pool.concat(ws, key, ws, pool.literal(":"), ws, values[i % len(values)], ws))
    return pool.concat(pool.literal("{"), pool.join(fields, pool.literal(",")), pool.literal("}"))


def other_keys(pool: ExprPool) -> int:
    """"Any key other than these 200": a JSON string minus an enum of literals (and/not)."""
    keys = pool.alt_of(pool.literal(f'"key_{i}"') for i in range(200))
    return pool.repeat(pool.concat(pool.diff(json_string(pool, 0, 40), keys), pool.literal(",")), 0, 5)


def nested_repeats(pool: ExprPool) -> int:
    a, b = pool.literal("a"), pool.literal("b")
    inner = pool.star(pool.alt(a, pool.literal("aa")))
    return pool.alt(pool.concat(inner, b), pool.star(pool.star(a)), pool.concat(pool.repeat(pool.repeat(a, 2, 7), 3, 50), b))


WORKLOADS = {
    "enum 5000 strings": enum_5000,
    "json string maxLength 1000": lambda p: json_string(p, 0, 1000),
    "[a-z]{0,2000}": lambda p: p.repeat(p.byte_range(ord("a"), ord("z")), 0, 2000),
    "object 40 fields": object_40,
    "string not in 200 keys": other_keys,
    "nested repeats": nested_repeats,
    "([a-z]+ ?){0,300}": lambda p: p.repeat(
        p.concat(p.plus(p.byte_range(ord("a"), ord("z"))), p.optional(p.literal(" "))), 0, 300
    ),
}


def explore(dfa: ByteDFA, max_states: int) -> int:
    """Breadth-first expansion of every reachable state (up to ``max_states``); returns count."""
    seen = {dfa.initial}
    queue = deque([dfa.initial])
    n = 0
    while queue and n < max_states:
        s = queue.popleft()
        row = dfa.expand(s)
        n += 1
        for t in set(row.tolist()):
            if t >= 0 and t not in seen:
                seen.add(t)
                queue.append(t)
    return n


def measure(build, max_states: int) -> tuple[float, int, float, int]:
    """One fresh run: (build seconds, states expanded, seconds per expansion, pool size)."""
    pool = ExprPool()
    t0 = time.process_time()
    root = build(pool)
    t1 = time.process_time()
    dfa = ByteDFA(pool, root, max_states=10 * max_states)
    n = explore(dfa, max_states)
    t2 = time.process_time()
    explore(dfa, max_states)  # again, all expanded: the traversal's own cost
    t3 = time.process_time()
    return t1 - t0, n, max((t2 - t1) - (t3 - t2), 1e-9) / max(n, 1), len(pool)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-states", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="fresh runs per workload; the fastest is shown")
    ap.add_argument("--only", default=None, help="run workloads whose name contains this")
    args = ap.parse_args()
    print(f"{'workload':30} {'build ms':>9} {'states':>7} {'µs/state':>9} {'states/s':>9} {'pool':>8}")
    for name, build in WORKLOADS.items():
        if args.only and args.only not in name:
            continue
        runs = [measure(build, args.max_states) for _ in range(args.repeat)]
        build_s = min(r[0] for r in runs)
        _, n, per, size = min(runs, key=lambda r: r[2])
        print(f"{name:30} {build_s * 1e3:9.1f} {n:7d} {per * 1e6:9.1f} {1 / per:9.0f} {size:8d}")


if __name__ == "__main__":
    main()
