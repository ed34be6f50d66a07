"""Constraint-engine benchmark on MaskBench: structgen vs outlines-core vs xgrammar vs llguidance.

For a fixed, seeded sample of MaskBench schemas that have at least one valid instance, and for
each tokenizer, every engine:
  1. compiles the schema and computes the first mask (time to first mask, "ttfm");
  2. walks the tokenizer's own encoding of each valid instance (``json.dumps(v,
     ensure_ascii=False)``): per token, compute the mask of the current state and advance
     with the token (one "step"); at the end, one more mask and the check that EOS is allowed;
  3. counts an error when a valid instance is rejected (a token not allowed, or no EOS at the end);
  4. walks the encoding of each invalid instance the same way (not timed) and counts an error
     when the engine accepts it whole.
"schema total" is what one schema costs an engine in all: its time to first mask plus every step of
its instances (an engine that precomputes at compile time pays there, a lazy one in its steps).

Each engine runs in its own worker process; a schema that takes longer than ``--timeout``
seconds is recorded as a timeout and the worker is restarted. Run from the repo root:

    python bench/fsm_bench.py --n 500 --tokenizer smollm2 --engines structgen,outlines,xgrammar,llguidance
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = Path("/work/shared/data/maskbench")
WHITESPACE = {
    "structgen": 'JsonSchema whitespace="default" (json.dumps and indent=2 forms, bounded runs)',
    "outlines": "build_regex_from_schema default whitespace pattern",
    "xgrammar": "any_whitespace=True, strict_mode=False",
    "llguidance": "whitespace_flexible (default)",
}


# ---------------------------------------------------------------------------------- engines
class StructgenEngine:
    def __init__(self, tok, vocab, strict: bool):
        self.vocab, self.strict = vocab, strict
        from structgen.fsm.trie import trie_of

        trie_of(vocab)  # built once per vocabulary, not per schema

    def compile(self, schema):
        from structgen.constraints import JsonSchema
        from structgen.fsm.index import compile_token_fsm

        fsm = compile_token_fsm(JsonSchema(schema, strict=self.strict), self.vocab, cache=False)
        fsm.mask(fsm.initial_state)
        return fsm

    def walk(self, fsm, ids):
        times, s = [], fsm.initial_state
        for t in ids:
            t0 = time.perf_counter()
            fsm.mask(s)
            s = fsm.next_state(s, t)
            times.append(time.perf_counter() - t0)
            if s < 0:
                return times, False
        t0 = time.perf_counter()
        allowed = fsm.allowed_tokens(s)
        times.append(time.perf_counter() - t0)
        return times, all(e in allowed for e in self.vocab.eos_token_ids[:1])


class OutlinesEngine:
    def __init__(self, tok, vocab, strict: bool):
        import outlines_core

        self.oc = outlines_core
        self.eos = tok.eos_token_id
        by_bytes: dict[bytes, list[int]] = {}
        for i, b in enumerate(vocab.tokens):
            if b:
                by_bytes.setdefault(b, []).append(i)
        self.ovocab = outlines_core.Vocabulary(self.eos, by_bytes)
        self.words = (vocab.size + 31) // 32

    def compile(self, schema):
        from outlines_core.json_schema import build_regex_from_schema

        regex = build_regex_from_schema(json.dumps(schema))
        index = self.oc.Index(regex, self.ovocab)
        guide = self.oc.Guide(index)
        mask = np.zeros(self.words, dtype=np.int32)
        guide.write_mask_into(mask.ctypes.data, mask.size, 4)
        return index

    def walk(self, index, ids):
        guide = self.oc.Guide(index)
        mask = np.zeros(self.words, dtype=np.int32)
        times = []
        for t in ids:
            t0 = time.perf_counter()
            guide.write_mask_into(mask.ctypes.data, mask.size, 4)
            ok = (mask[t >> 5] >> (t & 31)) & 1
            if ok:
                guide.advance(t, return_tokens=False)
            times.append(time.perf_counter() - t0)
            if not ok:
                return times, False
        t0 = time.perf_counter()
        guide.write_mask_into(mask.ctypes.data, mask.size, 4)
        times.append(time.perf_counter() - t0)
        return times, bool((mask[self.eos >> 5] >> (self.eos & 31)) & 1)


class XGrammarEngine:
    def __init__(self, tok, vocab, strict: bool):
        import xgrammar as xgr

        self.xgr = xgr
        self.eos = list(vocab.eos_token_ids)
        info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab.size, stop_token_ids=self.eos)
        self.compiler = xgr.GrammarCompiler(info, max_threads=2, cache_enabled=False)
        self.size = vocab.size

    def compile(self, schema):
        compiled = self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=True, strict_mode=False)
        m = self.xgr.GrammarMatcher(compiled)
        m.fill_next_token_bitmask(self.xgr.allocate_token_bitmask(1, self.size))
        return compiled

    def walk(self, compiled, ids):
        m = self.xgr.GrammarMatcher(compiled)
        bitmask = self.xgr.allocate_token_bitmask(1, self.size)
        times = []
        for t in ids:
            t0 = time.perf_counter()
            m.fill_next_token_bitmask(bitmask)
            ok = m.accept_token(t)
            times.append(time.perf_counter() - t0)
            if not ok:
                return times, False
        t0 = time.perf_counter()
        m.fill_next_token_bitmask(bitmask)
        times.append(time.perf_counter() - t0)
        return times, m.accept_token(self.eos[0])


class LLGuidanceEngine:
    def __init__(self, tok, vocab, strict: bool):
        import llguidance
        import llguidance.hf
        import llguidance.numpy as lnp

        self.ll, self.lnp = llguidance, lnp
        self.lltok = llguidance.hf.from_tokenizer(tok, n_vocab=vocab.size)
        self.size = vocab.size

    def compile(self, schema):
        grammar = self.ll.grammar_from("json_schema", json.dumps(schema))
        m = self.ll.LLMatcher(self.lltok, grammar)
        if m.is_error():
            raise RuntimeError(m.get_error())
        self.lnp.fill_next_token_bitmask(m, self.lnp.allocate_token_bitmask(1, self.size), 0)
        return grammar

    def walk(self, grammar, ids):
        m = self.ll.LLMatcher(self.lltok, grammar)
        bitmask = self.lnp.allocate_token_bitmask(1, self.size)
        times = []
        for t in ids:
            t0 = time.perf_counter()
            self.lnp.fill_next_token_bitmask(m, bitmask, 0)
            ok = m.consume_token(t)
            times.append(time.perf_counter() - t0)
            if not ok:
                return times, False
        t0 = time.perf_counter()
        self.lnp.fill_next_token_bitmask(m, bitmask, 0)
        times.append(time.perf_counter() - t0)
        return times, m.is_accepting()


ENGINES = {"structgen": StructgenEngine, "outlines": OutlinesEngine, "xgrammar": XGrammarEngine,
           "llguidance": LLGuidanceEngine}


# ---------------------------------------------------------------------------------- worker
def _worker(conn, engine_name, tok, vocab, strict):
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    engine = ENGINES[engine_name](tok, vocab, strict)
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        schema, instances, invalid = job
        try:
            t0 = time.perf_counter()
            handle = engine.compile(schema)
            ttfm = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - an engine's refusal is a coverage miss, not a crash
            conn.send({"ok": False, "error": f"{type(e).__name__}: {str(e)[:200]}".replace("\n", " ")})
            continue
        steps, rejected = [], 0
        for ids in instances:
            try:
                times, accepted = engine.walk(handle, ids)
            except Exception as e:  # noqa: BLE001 - counted as a rejection, reported on stderr
                print(f"{engine_name}: walk failed: {type(e).__name__}: {e}", file=sys.stderr)
                times, accepted = [], False
            steps.extend(times)
            rejected += not accepted
        wrongly = 0  # invalid instances accepted (their steps are not timed)
        for ids in invalid:
            try:
                wrongly += engine.walk(handle, ids)[1]
            except Exception as e:  # noqa: BLE001 - an engine that fails on a wrong token rejects it
                print(f"{engine_name}: walk failed: {type(e).__name__}: {e}", file=sys.stderr)
        conn.send({"ok": True, "ttfm": ttfm, "steps": steps, "rejected": rejected, "invalid_accepted": wrongly})


class Worker:
    """An engine in a child process, restarted after a timeout."""

    def __init__(self, engine, tok, vocab, strict):
        self.args = (engine, tok, vocab, strict)
        self.proc = None
        self._start()

    def _start(self):
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, *self.args), daemon=True)
        self.proc.start()
        if not self.conn.poll(600) or self.conn.recv() != "ready":
            raise RuntimeError(f"{self.args[0]} worker failed to start")

    def run(self, schema, instances, invalid, timeout):
        self.conn.send((schema, instances, invalid))
        if self.conn.poll(timeout):
            try:
                return self.conn.recv()
            except EOFError:
                pass
        self.proc.kill()
        self.proc.join()
        self._start()
        return {"ok": False, "error": "timeout", "timeout": True}

    def close(self):
        self.conn.send(None)
        self.proc.join(5)


# ---------------------------------------------------------------------------------- driver
def load_sample(n: int, seed: int, max_instances: int, with_invalid: bool = False):
    """``n`` seeded MaskBench schemas with a valid instance: ``(id, schema, valid[:max_instances])``,
    plus ``invalid[:max_instances]`` as a fourth item with ``with_invalid`` (same sample either way)."""
    items = []
    for f in sorted(DATA.glob("*.jsonl")):
        for line in f.open():
            d = json.loads(line)
            if d["valid"]:
                extra = (d.get("invalid", [])[:max_instances],) if with_invalid else ()
                items.append((d["id"], d["schema"], d["valid"][:max_instances], *extra))
    random.Random(seed).shuffle(items)
    return items[:n]


def load_tokenizer(name):
    from structgen import assets
    from structgen.fsm.vocabulary import Vocabulary

    tok = assets.load_default_tokenizer() if name == "smollm2" else assets.load_llama3_tokenizer()
    return tok, Vocabulary.from_tokenizer(tok)


def pct(xs, q):
    return float(np.percentile(xs, q)) if len(xs) else float("nan")


def bench_engine(engine, tok, vocab, sample, timeout, strict):
    """Run ``engine`` on the sample: per compiled schema ``(ttfm, step times, valid rejected, valid
    instances, invalid accepted, invalid instances)``, plus the timeouts and the compile failures."""
    worker = Worker(engine, tok, vocab, strict)
    timeouts, fails, per = 0, {}, {}
    for k, (sid, schema, instances, invalid) in enumerate(sample):
        if k and k % 100 == 0:
            print(f"    {engine}: {k}/{len(sample)} schemas", file=sys.stderr, flush=True)
        ids = [tok.encode(json.dumps(v, ensure_ascii=False), add_special_tokens=False) for v in instances]
        bad = [tok.encode(json.dumps(v, ensure_ascii=False), add_special_tokens=False) for v in invalid]
        r = worker.run(schema, ids, bad, timeout)
        if not r["ok"]:
            timeouts += bool(r.get("timeout"))
            fails[sid] = r["error"]
            continue
        per[sid] = (r["ttfm"], r["steps"], r["rejected"], len(ids), r["invalid_accepted"], len(bad))
    worker.close()
    return {"engine": engine, "timeouts": timeouts, "fails": fails, "per_schema": per}


def print_table(tokenizer, n, results):
    print(f"\n## tokenizer={tokenizer}  schemas={n}")
    _table(results, n, lambda r: r["per_schema"], True)
    if len(results) > 1:  # the same comparison restricted to what every engine compiled
        common = set.intersection(*(set(r["per_schema"]) for r in results))
        print(f"\nOn the {len(common)} schemas every engine above compiled:")
        _table(results, len(common), lambda r: {k: v for k, v in r["per_schema"].items() if k in common}, False)
    print("\nwhitespace: " + "; ".join(f"{r['engine']}: {WHITESPACE[r['engine']]}" for r in results))


def _table(results, n, schemas_of, timeouts):
    head = ("engine", "compiled", "timeouts", "ttfm p50 ms", "ttfm p99 ms", "step mean us", "step p50 us",
            "step p99 us", "schema total mean ms", "schema total p50 ms", "steps", "valid rejected",
            "invalid accepted")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        per = schemas_of(r)
        st = np.asarray([x for v in per.values() for x in v[1]]) * 1e6
        tt = np.asarray([v[0] for v in per.values()]) * 1e3
        total = np.asarray([v[0] + sum(v[1]) for v in per.values()]) * 1e3  # first mask + every step, per schema
        rejected, instances = sum(v[2] for v in per.values()), sum(v[3] for v in per.values())
        accepted, invalid = sum(v[4] for v in per.values()), sum(v[5] for v in per.values())
        row = (r["engine"], f"{len(per)}/{n}", str(r["timeouts"]) if timeouts else "-", f"{pct(tt, 50):.2f}", f"{pct(tt, 99):.1f}",
               f"{st.mean() if len(st) else float('nan'):.1f}", f"{pct(st, 50):.1f}", f"{pct(st, 99):.1f}",
               f"{total.mean() if len(total) else float('nan'):.2f}", f"{pct(total, 50):.2f}", str(len(st)), f"{rejected}/{instances}",
               f"{accepted}/{invalid}")
        print("| " + " | ".join(row) + " |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="number of schemas in the sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-instances", type=int, default=3, help="valid (timed) and invalid (checked) instances walked per schema")
    ap.add_argument("--tokenizer", default="smollm2,llama3", help="comma list of smollm2, llama3")
    ap.add_argument("--engines", default="structgen,outlines,xgrammar,llguidance")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per schema and engine")
    ap.add_argument("--lenient", action="store_true", help="structgen strict=False (drop unsupported keywords)")
    ap.add_argument("--show-failures", type=int, default=0, help="print this many compile failures per engine")
    args = ap.parse_args(argv)
    sample = load_sample(args.n, args.seed, args.max_instances, with_invalid=True)
    print(f"# MaskBench sample: {len(sample)} schemas (seed {args.seed}), up to {args.max_instances} valid "
          f"and {args.max_instances} invalid instances each; timeout {args.timeout}s; {os.cpu_count()} CPUs")
    for tname in args.tokenizer.split(","):
        tok, vocab = load_tokenizer(tname)
        results = []
        for engine in args.engines.split(","):
            t0 = time.time()
            results.append(bench_engine(engine, tok, vocab, sample, args.timeout, not args.lenient))
            print(f"  {engine} on {tname}: {time.time() - t0:.0f}s", flush=True)
            for sid, err in list(results[-1]["fails"].items())[: args.show_failures]:
                print(f"    {sid}: {err}")
        print_table(tname, len(sample), results)


if __name__ == "__main__":
    main()
