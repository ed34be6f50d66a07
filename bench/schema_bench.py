"""Schema front-end benchmark: schema → expression time and time to first mask on MaskBench.

Uses the same seeded sample as ``bench/fsm_bench.py`` (``load_sample``). For every schema, in
this one process (as fsm_bench's worker does), it measures

  expr   ``schema_to_expr`` into a fresh ``ExprPool`` (the constraint front end alone);
  ttfm   ``compile_token_fsm(JsonSchema(schema), vocab, cache=False)`` and the initial mask:
         front end, byte DFA, token FSM and the first allowed-token mask (fsm_bench's "ttfm").

A schema is cut off after ``--timeout`` seconds (SIGALRM; counted as a timeout). Schemas that
structgen rejects (``SchemaError``/``CompileLimitError``) are counted apart and left out of the
percentiles. ``--profile FILE`` writes cProfile stats of the expr phase over the whole sample.

    python bench/schema_bench.py --n 500 --tokenizer llama3
"""

from __future__ import annotations

import argparse
import cProfile
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fsm_bench import load_sample, load_tokenizer


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def timed(fn, timeout: float, clock=time.perf_counter):
    """(seconds, outcome) of ``fn()``; outcome is "ok", "timeout" or the exception's type name."""
    signal.setitimer(signal.ITIMER_REAL, timeout)
    t0 = clock()
    try:
        fn()
        outcome = "ok"
    except Timeout:
        outcome = "timeout"
    except Exception as e:  # noqa: BLE001 - a refusal is recorded, not fatal
        outcome = type(e).__name__
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return clock() - t0, outcome


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", default="llama3", choices=["llama3", "smollm2"])
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per schema and phase")
    ap.add_argument("--cpu", action="store_true", help="CPU time of this process instead of wall time "
                    "(robust to other load on a shared machine; the timeout stays wall time)")
    ap.add_argument("--profile", default=None, help="write cProfile stats of the expr phase here")
    ap.add_argument("--slowest", type=int, default=0, help="list this many slowest schemas (ttfm)")
    args = ap.parse_args(argv)

    import logging
    import warnings

    from structgen.constraints import JsonSchema
    from structgen.fsm.index import compile_token_fsm
    from structgen.fsm.json_schema import schema_to_expr
    from structgen.fsm.rx import ExprPool
    from structgen.fsm.trie import trie_of

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    signal.signal(signal.SIGALRM, _alarm)
    sample = load_sample(args.n, args.seed, 1)
    _, vocab = load_tokenizer(args.tokenizer)
    trie_of(vocab)  # built once per vocabulary, not per schema

    clock = time.process_time if args.cpu else time.perf_counter
    prof = cProfile.Profile() if args.profile else None
    expr_t, ttfm_t, outcomes, per_schema = [], [], {}, []
    for sid, schema, _ in sample:
        if prof:
            prof.enable()
        te, oe = timed(lambda schema=schema: schema_to_expr(schema, ExprPool()), args.timeout, clock)
        if prof:
            prof.disable()

        def first_mask(schema=schema):
            fsm = compile_token_fsm(JsonSchema(schema), vocab, cache=False)
            fsm.mask(fsm.initial_state)

        tt, ot = timed(first_mask, args.timeout, clock)
        outcomes[ot] = outcomes.get(ot, 0) + 1
        if oe == "ok" and ot == "ok":
            expr_t.append(te)
            ttfm_t.append(tt)
            per_schema.append((tt, te, sid))
        elif ot == "timeout":
            per_schema.append((float("inf"), te, sid))

    e, t = np.asarray(expr_t) * 1e3, np.asarray(ttfm_t) * 1e3
    print(f"# {len(sample)} MaskBench schemas (seed {args.seed}), tokenizer {args.tokenizer}, "
          f"timeout {args.timeout}s; {'CPU' if args.cpu else 'wall'} time; outcomes {dict(sorted(outcomes.items()))}")
    print("| phase | p50 ms | p90 ms | p99 ms | max ms | mean ms |")
    print("|---|---|---|---|---|---|")
    for name, xs in (("schema->expr", e), ("first mask", t)):
        print(f"| {name} | {np.percentile(xs, 50):.2f} | {np.percentile(xs, 90):.1f} | "
              f"{np.percentile(xs, 99):.1f} | {xs.max():.1f} | {xs.mean():.2f} |")
    for tt, te, sid in sorted(per_schema, reverse=True)[: args.slowest]:
        print(f"  {sid}: ttfm {tt * 1e3:.1f} ms, expr {te * 1e3:.1f} ms")
    if prof:
        prof.dump_stats(args.profile)


if __name__ == "__main__":
    main()
