"""Engine: constrained decoding, EOS rules, jump-forward with correct K/V, stop strings, length
finishes, logprobs, seeds; and the Runtime around it (submit, stream, cancel, score) — all with
the tiny fake model and real TokenFSMs over the toy byte vocabulary."""

from __future__ import annotations

import re
import threading

import pytest
import torch

from fake_model import VOCAB, FakeRunner, greedy_reference
from structgen import fsm as F
from structgen.constraints import Choice, Regex
from structgen.engine.engine import Engine
from structgen.engine.request import GenerateRequest, SamplingParams
from structgen.engine.runtime import Runtime

NO_MERGES = {t: -100.0 for t in range(256, 265)}  # the fake model never picks multi-byte tokens itself


def compile_(constraint):
    return F.compile(constraint, VOCAB, cache=False)


def run(engine, requests):
    seqs = [engine.add_request(ids, params, fsm) for ids, params, fsm in requests]
    while engine.has_unfinished():
        engine.step()
        engine.scheduler.radix.check()
    return seqs


def masked_greedy(runner, prompt, fsm, max_tokens):
    """Cache-free reference: mask with the FSM's allowed tokens, argmax, stop on EOS."""
    tokens, state, out = list(prompt), fsm.initial_state, []
    for _ in range(max_tokens):
        logits = runner.reference_logits(tokens)[-1]
        allowed = torch.tensor(fsm.allowed_tokens(state).tolist(), dtype=torch.long)
        t = int(allowed[logits[allowed].argmax()])
        if t in fsm.eos_token_ids:
            break
        state = fsm.next_state(state, t)
        out.append(t)
        tokens.append(t)
    return out


@pytest.fixture(scope="module")
def runner():
    return FakeRunner()


def test_constrained_and_free_rows_share_a_batch(runner):
    tok = runner.tokenizer
    choice, rx = compile_(Choice(["apple pie", "banana split", "cherry"])), compile_(Regex(r"[0-9]{3}-[a-z]{2}"))
    engine = Engine(runner, kv_cache_tokens=1024, jump_forward=False)
    p = tok.encode("pick: ")
    a, b, c = run(engine, [(p, SamplingParams(max_tokens=40), choice), (p, SamplingParams(max_tokens=40), rx),
                           (p, SamplingParams(max_tokens=6), None)])
    assert a.text in ("apple pie", "banana split", "cherry") and a.finish_reason == "stop"
    assert re.fullmatch(r"[0-9]{3}-[a-z]{2}", b.text) and b.finish_reason == "stop"
    assert c.output_ids == greedy_reference(runner, p, 6)
    assert a.output_ids == masked_greedy(runner, p, choice, 40)
    assert b.output_ids == masked_greedy(runner, p, rx, 40)


def test_eos_only_where_the_automaton_accepts():
    eager = FakeRunner(eos_bias=50.0, bias=NO_MERGES)  # EOS wins whenever it is allowed
    tok = eager.tokenizer
    engine = Engine(eager, kv_cache_tokens=512)
    free, three = run(engine, [(tok.encode("x"), SamplingParams(max_tokens=10), None),
                               (tok.encode("x"), SamplingParams(max_tokens=10), compile_(Regex("[a-z]{3,6}")))])
    assert free.output_ids == [] and free.finish_reason == "stop"
    assert len(three.text) == 3 and three.finish_reason == "stop"


def test_ignore_eos_runs_to_max_tokens():
    eager = FakeRunner(eos_bias=50.0)
    engine = Engine(eager, kv_cache_tokens=512)
    [seq] = run(engine, [(eager.tokenizer.encode("x"), SamplingParams(max_tokens=7, ignore_eos=True), None)])
    assert seq.finish_reason == "length" and seq.num_output == 7


def test_hitting_max_tokens_before_the_constraint_is_a_length_finish(runner):
    engine = Engine(runner, kv_cache_tokens=512)
    [seq] = run(engine, [(runner.tokenizer.encode("n: "), SamplingParams(max_tokens=4), compile_(Regex("[0-9]{10}")))])
    assert seq.finish_reason == "length" and len(seq.text) == 4


def test_fully_forced_constraint_needs_no_forward_pass():
    r = FakeRunner()
    engine = Engine(r, kv_cache_tokens=512)
    [seq] = run(engine, [(r.tokenizer.encode("q"), SamplingParams(max_tokens=20), compile_(Choice(["only answer"])))])
    assert seq.text == "only answer" and seq.finish_reason == "stop" and r.forward_calls == 0
    assert engine.stats()["forced_tokens"] == seq.num_output > 0


def test_jump_forward_retokenizes_and_recomputes_replaced_kv():
    r = FakeRunner(bias={97: 30.0, 98: 30.0, **NO_MERGES})  # samples "a" then "b" as single bytes
    tok = r.tokenizer
    fsm = compile_(Regex("(a|q)(b|r)ce!(x|y)(1|2)"))
    engine = Engine(r, kv_cache_tokens=512)
    [seq] = run(engine, [(tok.encode("go: "), SamplingParams(max_tokens=20), fsm)])
    assert re.fullmatch("(a|q)(b|r)ce!(x|y)(1|2)", seq.text)
    abc = VOCAB.tokens.index(b"abc")
    assert seq.output_ids[0] == abc  # "a", "b" + forced "ce!" re-tokenised into "abc", "e", "!"
    assert seq.forced_tokens > 0 and engine.stats()["forced_tokens"] == seq.forced_tokens
    # the K/V the cache holds for this sequence is that of its final tokens, at their positions
    m = engine.scheduler.radix.match_prefix(seq.tokens)
    assert m.length >= len(seq.tokens) - 1
    ids, pos = torch.tensor(seq.tokens[: m.length]), torch.arange(m.length)
    expect_k = r._hidden(ids, pos) @ r.wk  # [L, D]
    assert torch.allclose(engine.pool.k[0][m.slots, 0], expect_k, atol=1e-5)


def test_jump_forward_output_matches_plain_decoding(runner):
    fsm = compile_(Regex(r'\{"name": "[a-z]{2,4}", "ok": (true|false)\}'))
    prompt = runner.tokenizer.encode("json: ")
    outs = []
    for jf in (True, False):
        engine = Engine(runner, kv_cache_tokens=512, jump_forward=jf)
        [seq] = run(engine, [(prompt, SamplingParams(max_tokens=60), fsm)])
        outs.append((seq.text, engine.stats()["steps"]))
    assert fsm.matches(outs[0][0]) and fsm.matches(outs[1][0])
    assert outs[0][1] < outs[1][1]  # forced spans cost no step each


def test_stop_string_cuts_the_output(runner):
    prompt = runner.tokenizer.encode("hello")
    full = runner.tokenizer.decode(greedy_reference(runner, prompt, 12))
    stop = full[5:7]
    engine = Engine(runner, kv_cache_tokens=512)
    [seq] = run(engine, [(prompt, SamplingParams(max_tokens=12, stop=(stop,)), None)])
    assert seq.finish_reason == "stop" and seq.text == full[: full.find(stop)]


def test_logprobs_are_those_of_the_chosen_tokens(runner):
    prompt = runner.tokenizer.encode("lp")
    engine = Engine(runner, kv_cache_tokens=512)
    [seq] = run(engine, [(prompt, SamplingParams(max_tokens=5, logprobs=True), None)])
    ref = torch.log_softmax(runner.reference_logits(seq.tokens)[len(prompt) - 1 : -1], -1)
    expect = ref.gather(1, torch.tensor(seq.output_ids)[:, None])[:, 0]
    assert torch.allclose(torch.tensor(seq.logprobs), expect, atol=1e-4)


def test_seeded_sampling_is_independent_of_the_batch(runner):
    tok = runner.tokenizer
    p = SamplingParams(max_tokens=10, temperature=1.0, seed=123)
    alone = run(Engine(runner, kv_cache_tokens=1024), [(tok.encode("seed"), p, None)])[0].output_ids
    crowd = [(tok.encode(f"other {i}"), SamplingParams(max_tokens=10, temperature=0.8, seed=i), None) for i in range(4)]
    together = run(Engine(runner, kv_cache_tokens=1024), crowd[:2] + [(tok.encode("seed"), p, None)] + crowd[2:])
    assert together[2].output_ids == alone


# ---- Runtime --------------------------------------------------------------------------------------
@pytest.fixture()
def rt():
    runtime = Runtime(runner=FakeRunner(), kv_cache_tokens=1024, max_batch_size=8)
    yield runtime
    runtime.shutdown()


def test_runtime_generate_stream_and_stats(rt):
    results = rt.generate(["one", "two", "three"], max_tokens=6)
    assert [r.completion_tokens for r in results] == [6, 6, 6]
    assert [r.token_ids for r in results] == [greedy_reference(rt.runner, rt.tokenizer.encode(p), 6) for p in ("one", "two", "three")]
    h = rt.submit(GenerateRequest("stream", max_tokens=8))
    assert "".join(h.stream()) == h.result().text
    st = rt.stats()
    assert st["prompt_tokens"] == 3 + 3 + 5 + 6 and st["generated_tokens"] == 26
    step_time = st["step_time_s"]
    assert step_time["count"] == st["steps"] > 0
    assert step_time["sum"] > 0 and 0 < step_time["p50"] <= step_time["p99"] <= step_time["sum"]


def test_runtime_cancel_aborts(rt):
    h = rt.submit(GenerateRequest("long", max_tokens=900))
    h.cancel()
    assert h.result(timeout=30).finish_reason == "abort"


def test_runtime_score_sums_continuation_logprobs(rt):
    tok = rt.tokenizer
    prefix = tok.encode("the answer is ")
    scores = rt.score("the answer is ", ["yes", "no"])
    for cont, got in zip(["yes", "no"], scores):
        ids = prefix + tok.encode(cont)
        lp = torch.log_softmax(rt.runner.reference_logits(ids), -1)
        expect = sum(float(lp[i - 1, ids[i]]) for i in range(len(prefix), len(ids)))
        assert got == pytest.approx(expect, abs=1e-3)


def test_runtime_rejects_bad_requests_before_model_work(rt):
    from structgen.errors import RequestError

    calls = rt.runner.forward_calls
    with pytest.raises(RequestError):
        rt.submit(GenerateRequest("x", temperature=-1.0))
    with pytest.raises(RequestError, match="kv_cache_tokens"):
        rt.submit(GenerateRequest("x" * 2000, max_tokens=10))
    with pytest.raises(RequestError):
        rt.submit(GenerateRequest({"bad": "prompt"}))
    assert rt.runner.forward_calls == calls


def _record_step_threads(rt) -> list[str]:
    """Names of the threads that run each engine step from now on."""
    names, step = [], rt.engine.step

    def recorded():
        names.append(threading.current_thread().name)
        return step()

    rt.engine.step = recorded
    return names


def test_cpu_generate_from_the_main_thread_runs_the_steps_there(rt):
    assert threading.current_thread() is threading.main_thread()
    names = _record_step_threads(rt)
    results = rt.generate(["one", "two"], max_tokens=5)
    assert names and set(names) == {threading.main_thread().name}
    assert [r.token_ids for r in results] == [greedy_reference(rt.runner, rt.tokenizer.encode(p), 5) for p in ("one", "two")]
    assert rt.score("the answer is ", ["yes"])[0] < 0
    assert set(names) == {threading.main_thread().name}


def test_generate_from_another_thread_leaves_the_steps_to_the_engine_thread(rt):
    names = _record_step_threads(rt)
    out = []
    t = threading.Thread(target=lambda: out.extend(rt.generate("other", max_tokens=5)), name="caller")
    t.start()
    t.join(30)
    assert out[0].token_ids == greedy_reference(rt.runner, rt.tokenizer.encode("other"), 5)
    assert names and set(names) == {"structgen-engine"}


def test_background_requests_go_on_around_a_main_thread_generate(rt):
    names = _record_step_threads(rt)
    h = rt.submit(GenerateRequest("long", max_tokens=300))  # the engine thread starts on it
    res = rt.generate("short", max_tokens=4)[0]  # the main thread takes over the steps meanwhile
    long = h.result(timeout=60)
    assert res.token_ids == greedy_reference(rt.runner, rt.tokenizer.encode("short"), 4)
    assert long.completion_tokens == 300
    assert long.token_ids == greedy_reference(rt.runner, rt.tokenizer.encode("long"), 300)
    assert threading.main_thread().name in names


def test_shutdown_aborts_what_a_main_thread_generate_left():
    rt = Runtime(runner=FakeRunner(), kv_cache_tokens=1024)
    h = rt.submit(GenerateRequest("long", max_tokens=800))
    rt.generate("short", max_tokens=2)
    rt.shutdown()
    assert h.result(timeout=30).finish_reason in ("abort", "length")
    assert not rt._thread.is_alive()


def test_a_failed_step_fails_its_requests_and_the_runtime_goes_on():
    runner = FakeRunner()
    forward = runner.forward
    fail = {"once": True}

    def flaky(batch, pool):
        if fail.pop("once", False):
            raise RuntimeError("device lost")
        return forward(batch, pool)

    runner.forward = flaky
    rt = Runtime(runner=runner, kv_cache_tokens=512)
    try:
        with pytest.raises(RuntimeError, match="device lost"):
            rt.generate("first", max_tokens=4)
        assert rt.generate("second", max_tokens=4)[0].completion_tokens == 4
        assert rt.engine.pool.num_free + rt.engine.scheduler.radix.total_size == rt.engine.pool.num_slots
    finally:
        rt.shutdown()
