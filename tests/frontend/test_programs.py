"""Interpreter semantics on the fake runtime: text, gen, select, roles, schemas, batches, streaming."""

from __future__ import annotations

import itertools
import json

import pytest
from fake_runtime import FakeRuntime, default_responder
from pydantic import BaseModel

import structgen.frontend as sg
from structgen.constraints import Choice, Regex
from structgen.errors import ProgramError


def test_gen_prompt_is_text_so_far_and_value_is_output(fake_rt):
    @sg.function
    def f(s, topic):
        s += "Topic: " + topic + "\n"
        s += "Answer: " + sg.gen("a", max_tokens=7, stop="\n") + "!"

    state = f.run(topic="owls")
    req = fake_rt.requests[0]
    assert req.prompt == "Topic: owls\nAnswer: "
    assert req.raw is True and req.max_tokens == 7 and req.stop == "\n"
    expected = default_responder(req.prompt, None, req).split("\n")[0]
    assert state["a"] == expected
    assert state.text() == "Topic: owls\nAnswer: " + expected + "!"


def test_run_sampling_defaults_apply_unless_gen_overrides(fake_rt):
    @sg.function
    def f(s):
        s += sg.gen("a")
        s += sg.gen("b", temperature=0.5, max_tokens=3, top_k=-1)

    f.run(max_new_tokens=9, temperature=0.2, seed=4)
    a, b = fake_rt.requests
    assert (a.max_tokens, a.temperature, a.seed) == (9, 0.2, 4)
    assert (b.max_tokens, b.temperature, b.top_k) == (3, 0.5, 0)


def test_default_decoding_is_greedy(fake_rt):
    @sg.function
    def f(s):
        s += sg.gen("a")

    f.run()
    assert fake_rt.requests[0].temperature == 0.0 and fake_rt.requests[0].max_tokens == 128


def test_roles_render_chatml_and_messages(fake_rt):
    @sg.function
    def chat(s, q):
        s += sg.system("Be brief.")
        s += sg.user(q)
        s += sg.assistant(sg.gen("answer", stop="\n"))
        s += sg.user_begin() + "thanks" + sg.user_end()

    state = chat.run(q="hi?")
    ans = state["answer"]
    assert fake_rt.requests[0].prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert state.messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi?"},
        {"role": "assistant", "content": ans},
        {"role": "user", "content": "thanks"},
    ]
    assert state.text().endswith(f"assistant\n{ans}<|im_end|>\n<|im_start|>user\nthanks<|im_end|>\n")


def test_role_context_manager(fake_rt):
    @sg.function
    def f(s):
        with s.user():
            s += "a"
            s += "b"

    assert f.run().messages() == [{"role": "user", "content": "ab"}]


def test_select_by_score_picks_best_normalised_choice(fake_rt):
    table = {"cat": -3.0, "horse": -4.0, "dog": -2.5}
    fake_rt.scores = lambda prefix, conts: [table[c] for c in conts]

    @sg.function
    def f(s):
        s += "Pet: " + sg.select("pet", ["cat", "horse", "dog"]) + "."

    state = f.run()
    # per-character tokens: cat -1.0, horse -0.8, dog -0.833 -> horse has the best mean
    assert state["pet"] == "horse"
    assert state.text() == "Pet: horse."
    assert fake_rt.score_calls == [("Pet: ", ["cat", "horse", "dog"])]
    assert fake_rt.requests == []  # one scoring prefill, no decoding
    assert state.get_meta_info("pet")["method"] == "token_length_normalized"


def test_select_greedy_token_selection_uses_choice_constraint(fake_rt):
    @sg.function
    def f(s):
        s += sg.select("c", ["yes", "no"], choices_method=sg.greedy_token_selection)
        s += sg.gen("g", choices=["x", "y"], choices_method="greedy_token_selection")

    state = f.run()
    assert isinstance(fake_rt.requests[0].constraint, Choice)
    assert state["c"] in ("yes", "no") and state["g"] in ("x", "y")


def test_gen_choices_is_a_select(fake_rt):
    fake_rt.scores = lambda prefix, conts: [-1.0, -1.0]  # per token: a -1.0, bb -0.5

    @sg.function
    def f(s):
        s += sg.gen("c", choices=["a", "bb"])

    assert f.run()["c"] == "bb"
    assert fake_rt.score_calls == [("", ["a", "bb"])]


class Person(BaseModel):
    name: str
    age: int


def test_schema_pydantic_gives_instance_and_dict_schema_gives_dict():
    out = {"p": '{"name": "Ann", "age": 31}', "d": '{"x": [1, 2]}', "j": '{"k": 1}'}
    rt = FakeRuntime(responder=lambda prompt, c, req: out[prompt[-1]])

    @sg.function
    def f(s):
        s += "p" + sg.gen("person", schema=Person)
        s += "d" + sg.gen("data", schema={"type": "object"})
        s += "j" + sg.gen("raw", json_schema=json.dumps({"type": "object"}))

    state = f.run(runtime=rt)
    assert state["person"] == Person(name="Ann", age=31)
    assert state["data"] == {"x": [1, 2]}
    assert state["raw"] == '{"k": 1}'  # SGLang's json_schema= keeps the JSON text
    kinds = [type(r.constraint).__name__ for r in rt.requests]
    assert kinds == ["PydanticModel", "JsonSchema", "JsonSchema"]


def test_regex_and_dtype_send_regex_constraints(fake_rt):
    @sg.function
    def f(s):
        s += sg.gen("r", regex=r"\d{3}")
        s += sg.gen("i", dtype=int)

    f.run()
    assert fake_rt.requests[0].constraint == Regex(r"\d{3}")
    assert isinstance(fake_rt.requests[1].constraint, Regex)


def test_python_control_flow_over_results(fake_rt):
    fake_rt.scores = lambda prefix, conts: [0.0 if c == "bug" else -5.0 for c in conts]

    @sg.function
    def triage(s):
        s += sg.select("kind", ["bug", "question"])
        if s["kind"] == "bug":
            s += " details: " + sg.gen("details", stop="\n")
        items = []
        for i in range(3):
            s += f"\n{i}." + sg.gen("item", stop="\n")
            items.append(s["item"])
        s["items"] = items

    state = triage.run()
    assert "details" in state and len(state["items"]) == 3
    assert len(set(state["items"])) == 3  # each item saw a different prompt
    # every item request's prompt extends the previous request's prompt + output
    prompts = [r.prompt for r in fake_rt.requests]
    assert all(b.startswith(a) for a, b in itertools.pairwise(prompts))
    assert fake_rt.stats()["cached_prompt_tokens"] > 0


def test_run_batch_equals_one_by_one_and_batches_requests():
    rt = FakeRuntime(gate=8)

    @sg.function
    def f(s, x):
        s += f"Q{x}: " + sg.gen("a", stop="\n")

    batch = f.run_batch([{"x": i} for i in range(8)], runtime=rt)
    assert max(rt.stats()["batches"]) == 8
    rt.gate = 1
    single = [f.run(x=i, runtime=rt)["a"] for i in range(8)]
    assert [s["a"] for s in batch] == single


def test_run_batch_positional_args(fake_rt):
    @sg.function
    def f(s, a, b):
        s += a + b

    assert [st.text() for st in f.run_batch([("x", "y"), ("1", "2")])] == ["xy", "12"]


def test_stream_text_iter_yields_text_as_generated(fake_rt):
    @sg.function
    def f(s):
        s += "Hi " + sg.gen("a") + " end"

    state = f.run(stream=True)
    chunks = list(state.text_iter())
    assert len(chunks) > 2
    assert "".join(chunks) == state.text() == "Hi " + state["a"] + " end"


def test_stream_var_iter(fake_rt):
    @sg.function
    def f(s):
        s += "Hi " + sg.gen("a") + " end"

    state = f.run(stream=True)
    assert "".join(state.text_iter("a")) == state["a"]


def test_default_backend_required():
    sg.set_default_backend(None)

    @sg.function
    def f(s):
        s += "x"

    with pytest.raises(ProgramError, match="set_default_backend"):
        f.run()


def test_return_value_and_logprob_meta(fake_rt):
    @sg.function
    def f(s):
        s += sg.gen("a", return_logprob=True)
        return 42

    state = f.run()
    assert state.ret_value == 42
    meta = state.get_meta_info("a")
    assert meta["finish_reason"] == "stop" and len(meta["logprobs"]) == len(state["a"])


def test_kwargs_program_and_sampling_names(fake_rt):
    @sg.function
    def f(s, **args):
        s += args["text"] + sg.gen("a")

    @sg.function
    def g(s, temperature):  # a program parameter named like a sampling option stays an argument
        s += str(temperature) + sg.gen("a")

    f.run(text="hi ", temperature=0.7)
    g.run(temperature=3)
    assert fake_rt.requests[0].prompt == "hi " and fake_rt.requests[0].temperature == 0.7
    assert fake_rt.requests[1].prompt == "3" and fake_rt.requests[1].temperature == 0.0
