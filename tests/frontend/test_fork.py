"""fork: children share the prefix, run in one batch, join back; nested forks form a tree."""

from __future__ import annotations

from fake_runtime import FakeRuntime

import structgen.frontend as sg


def test_fork_children_submitted_together_and_parent_continues():
    rt = FakeRuntime(gate=3, gate_timeout=0.3)

    @sg.function
    def f(s):
        s += "Shared instructions. "
        forks = s.fork(3)
        for i, child in enumerate(forks):
            child += f"Idea {i}: " + sg.gen("idea", stop="\n")
        s += "Best: " + forks[1]["idea"] + ". " + sg.gen("summary", stop="\n")

    state = f.run(runtime=rt)
    prompts = [r.prompt for r in rt.requests]
    assert prompts[0] == "Shared instructions. " and rt.requests[0].max_tokens == 0  # prefix prefill
    assert sorted(prompts[1:4]) == [f"Shared instructions. Idea {i}: " for i in range(3)]
    assert 3 in rt.stats()["batches"]  # the three children reached the runtime together
    idea1 = state.text().split("Best: ")[1].split(". ")[0]
    assert prompts[4] == f"Shared instructions. Best: {idea1}. "
    assert "idea" not in state  # the parent does not see the children's variables
    # every child request found the shared prefix in the (simulated) cache
    assert rt.stats()["cached_prompt_tokens"] >= 3 * len("Shared instructions. ")


def test_fork_group_iadd_and_gather_join(fake_rt):
    @sg.function
    def f(s):
        s += "P "
        forks = s.fork(2)
        forks += lambda i: f"child{i} "
        forks += sg.gen("x", stop="\n")
        forks.join()

    state = f.run()
    xs = state["x"]
    assert isinstance(xs, list) and len(xs) == 2 and xs[0] != xs[1]
    assert state.text() == "P "


def test_concate_and_append_join(fake_rt):
    @sg.function
    def f(s):
        s += "P|"
        forks = s.fork(2)
        forks += ["a|", "b|"]
        forks.join("concate_and_append")
        s += "end"

    assert f.run().text() == "P|a|b|end"


def test_nested_forks_form_a_tree():
    rt = FakeRuntime(gate=2, gate_timeout=0.3)

    @sg.function
    def tree(s):
        s += "root "
        for i, a in enumerate(s.fork(2)):
            a += f"a{i} "
            for j, b in enumerate(a.fork(2)):
                b += f"b{j} " + sg.gen("leaf", stop="\n")

    tree.run(runtime=rt)
    leaves = [r.prompt for r in rt.requests if r.max_tokens != 0]
    assert sorted(leaves) == sorted(f"root a{i} b{j} " for i in range(2) for j in range(2))


def test_fork_copies_roles_and_variables(fake_rt):
    @sg.function
    def f(s):
        s += sg.user("question")
        s["k"] = 1
        with s.assistant():
            forks = s.fork(2)
            for c in forks:
                c += sg.gen("ans", stop="\n")
                c += sg.assistant_end()
            results = [(c["k"], c.messages()[-1]) for c in forks]
            s += "main"
        s["results"] = results

    state = f.run()
    (k0, m0), (k1, m1) = state["results"]
    assert k0 == k1 == 1 and m0["role"] == m1["role"] == "assistant"
    assert state.messages()[-1] == {"role": "assistant", "content": "main"}
