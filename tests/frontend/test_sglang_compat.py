"""Programs written against SGLang's documented frontend run unchanged with ``structgen`` names."""

from __future__ import annotations

import structgen.frontend as sgl


@sgl.function
def multi_turn_question(s, question_1, question_2):
    s += sgl.system("You are a helpful assistant.")
    s += sgl.user(question_1)
    s += sgl.assistant(sgl.gen("answer_1", max_tokens=256))
    s += sgl.user(question_2)
    s += sgl.assistant(sgl.gen("answer_2", max_tokens=256))


@sgl.function
def tip_suggestion(s):
    s += (
        "Here are two tips for staying healthy: "
        "1. Balanced Diet. 2. Regular Exercise.\n\n"
    )
    forks = s.fork(2)
    for i, f in enumerate(forks):
        f += f"Now, expand tip {i+1} into a paragraph:\n"
        f += sgl.gen("detailed_tip", max_tokens=256, stop="\n\n")
    s += "Tip 1:" + forks[0]["detailed_tip"] + "\n"
    s += "Tip 2:" + forks[1]["detailed_tip"] + "\n"
    s += "In summary" + sgl.gen("summary")


@sgl.function
def explicit_roles(s, question):
    s += sgl.system_begin() + "Be short." + sgl.system_end()
    s += sgl.user_begin()
    s += question
    s += sgl.user_end()
    s += sgl.assistant_begin()
    s += sgl.gen("answer", max_tokens=16, temperature=0, top_p=1.0, top_k=-1, min_p=0.0, ignore_eos=False)
    s += sgl.assistant_end()
    s += sgl.user("Pick one.")
    s += sgl.assistant(sgl.gen("pick", choices=["red", "blue"]))
    s += sgl.assistant(sgl.select("tool", choices=["calculator", "search"], temperature=0.0))


def test_multi_turn_question(fake_rt):
    sgl.set_default_backend(fake_rt)
    state = multi_turn_question.run(question_1="What is the capital of France?", question_2="And Spain?")
    roles = [m["role"] for m in state.messages()]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert state.messages()[2]["content"] == state["answer_1"].lstrip()
    assert fake_rt.requests[0].max_tokens == 256


def test_tip_suggestion(fake_rt):
    state = tip_suggestion.run()
    text = state.text()
    assert f"Tip 1:{state.text().split('Tip 1:')[1].splitlines()[0]}" in text
    assert text.startswith("Here are two tips") and "In summary" + state["summary"] in text


def test_explicit_roles_and_select(fake_rt):
    state = explicit_roles(question="Name a colour.")  # calling the function runs it, as in SGLang
    assert [m["role"] for m in state.messages()][:3] == ["system", "user", "assistant"]
    assert state["pick"] in ("red", "blue") and state["tool"] in ("calculator", "search")
    assert state.messages()[1]["content"] == "Name a colour."


def test_run_batch_with_progress_bar(fake_rt):
    states = multi_turn_question.run_batch(
        [{"question_1": f"q{i}", "question_2": "more"} for i in range(4)], progress_bar=True, temperature=0
    )
    assert [s.messages()[1]["content"] for s in states] == ["q0", "q1", "q2", "q3"]


SGLANG_NAMES = ["function", "gen", "gen_int", "gen_string", "select", "system", "user", "assistant",
                "system_begin", "system_end", "user_begin", "user_end", "assistant_begin", "assistant_end",
                "set_default_backend", "Runtime", "RemoteRuntime", "ProgramState"]


def test_top_level_structgen_exports_the_sglang_names():
    import pytest

    import structgen

    if not hasattr(structgen, "function"):
        pytest.skip("structgen/__init__.py does not export the frontend names yet")
    assert [n for n in SGLANG_NAMES if not hasattr(structgen, n)] == []
