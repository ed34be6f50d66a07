"""Programs on the embedded default model (SmolLM2-135M-Instruct): results valid, prefixes cached."""

from __future__ import annotations

import itertools
import re

import pytest
from pydantic import BaseModel, ConfigDict, Field

import structgen.frontend as sg

pytestmark = pytest.mark.slow


@sg.function
def assistant_program(s, question):
    s += sg.system("You are a concise assistant.")
    s += sg.user(question)
    s += sg.assistant(sg.select("verdict", ["yes", "no"]))
    if s["verdict"] == "yes":
        s += sg.user("Why? Answer in a few words.")
    else:
        s += sg.user("What is true instead? Answer in a few words.")
    s += sg.assistant(sg.gen("reason", max_tokens=12, stop="\n"))
    s += sg.user("Name three colours, one per line.")
    colours, loop_meta = [], []
    with s.assistant():
        for i in range(3):
            s += f"{i + 1}. " + sg.gen("colour", max_tokens=6, stop="\n") + "\n"
            colours.append(s["colour"])
            loop_meta.append(s.get_meta_info("colour"))
    s["colours"] = colours
    s["loop_meta"] = loop_meta
    forks = s.fork(3)
    for i, f in enumerate(forks):
        f += sg.user(f"Give a number between {i} and {i + 10}.")
        f += sg.assistant(sg.gen("number", regex=r"[0-9]{1,2}", max_tokens=4))
    s["numbers"] = [f["number"] for f in forks]
    s["fork_meta"] = [f.get_meta_info("number") for f in forks]
    s += sg.user("Thanks.")


def test_multi_turn_branch_loop_and_fork(real_rt):
    before = real_rt.stats()["cached_prompt_tokens"]
    state = assistant_program.run(question="Is water wet?", runtime=real_rt)
    assert state["verdict"] in ("yes", "no")
    branch = "Why?" if state["verdict"] == "yes" else "What is true instead?"
    assert state.messages()[3]["content"].startswith(branch)
    assert isinstance(state["reason"], str) and "\n" not in state["reason"]
    assert len(state["colours"]) == 3 and all("\n" not in c for c in state["colours"])
    assert all(re.fullmatch(r"[0-9]{1,2}", n) for n in state["numbers"])
    assert [m["role"] for m in state.messages()][-1] == "user"
    # each loop step found the previous step's prompt and output in the radix cache
    loop = state["loop_meta"]
    for prev, cur in itertools.pairwise(loop):
        assert cur["cached_tokens"] >= prev["prompt_tokens"] + prev["completion_tokens"] - 2
    # every fork found the shared prefix (everything before its own user turn) in the cache
    shared = loop[-1]["prompt_tokens"] + loop[-1]["completion_tokens"]
    assert all(m["cached_tokens"] >= shared for m in state["fork_meta"])
    assert real_rt.stats()["cached_prompt_tokens"] - before >= 3 * shared
    assert state.text().startswith("<|im_start|>system\nYou are a concise assistant.<|im_end|>\n")


def test_forks_share_the_prefix_through_the_cache(real_rt):
    @sg.function
    def f(s):
        s += sg.user("Here is a long shared instruction. " * 8 + "Say one word.")
        forks = s.fork(3)
        for f in forks:
            f += sg.assistant(sg.gen("w", max_tokens=3))
        s["metas"] = [f.get_meta_info("w") for f in forks]

    state = f.run(runtime=real_rt)
    metas = state["metas"]
    prefix = metas[0]["prompt_tokens"] - 10  # the shared user turn, minus the assistant prefix
    assert all(m["cached_tokens"] >= prefix for m in metas)


class City(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=20)
    population: int = Field(ge=0, le=100_000_000)


def test_gen_json_schema_dict_gives_valid_json(real_rt):
    import jsonschema

    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "population": {"type": "integer", "minimum": 0, "maximum": 50000000}},
              "required": ["name", "population"], "additionalProperties": False}

    @sg.function
    def f(s):
        s += sg.user("Give a city as JSON with its name and population.")
        s += sg.assistant(sg.gen("city", schema=schema, max_tokens=64))

    city = f.run(runtime=real_rt)["city"]
    jsonschema.validate(city, schema)


def test_gen_pydantic_schema_gives_an_instance(real_rt):
    @sg.function
    def f(s):
        s += sg.user("Give a city as JSON with its name and population.")
        s += sg.assistant(sg.gen("city", schema=City, max_tokens=64))

    state = f.run(runtime=real_rt)
    assert isinstance(state["city"], City)


def test_run_batch_equals_one_by_one_greedy(real_rt):
    @sg.function
    def word(s, topic):
        s += sg.user(f"One word about {topic}:")
        s += sg.assistant(sg.gen("w", max_tokens=4, stop="\n"))

    topics = ["sea", "sun", "cats", "rain", "snow", "bread", "music", "trees",
              "stars", "milk", "fire", "wind", "books", "clocks", "roads", "birds"]
    batch = word.run_batch([{"topic": t} for t in topics], runtime=real_rt)
    single = [word.run(topic=t, runtime=real_rt)["w"] for t in topics]
    assert [s["w"] for s in batch] == single


@sg.function
def short_chat(s, topic):
    s += sg.user(f"Write one short sentence about {topic}.")
    s += sg.assistant(sg.gen("sentence", max_tokens=12, stop="\n"))
    s += sg.user("Give a year.")
    s += sg.assistant(sg.gen("year", regex=r"(19|20)[0-9]{2}", max_tokens=6))


def test_streaming_yields_the_same_text(real_rt):
    state = short_chat.run(topic="rivers", runtime=real_rt, stream=True)
    chunks = list(state.text_iter())
    assert len(chunks) > 3 and "".join(chunks) == state.text()
    assert state.text() == short_chat.run(topic="rivers", runtime=real_rt).text()


def test_remote_runtime_against_the_server_matches_in_process(real_rt):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from structgen.server.app import create_app

    remote = sg.RemoteRuntime("http://testserver", chat_template=real_rt.tokenizer)
    with TestClient(create_app(real_rt)) as client:
        remote._client = client
        over_http = short_chat.run(topic="rivers", runtime=remote)
        assert over_http.get_meta_info("year")["completion_tokens"] > 0
    local = short_chat.run(topic="rivers", runtime=real_rt)
    assert over_http.text() == local.text()
    assert re.fullmatch(r"(19|20)[0-9]{2}", over_http["year"])


def test_constraint_that_does_not_compile_names_the_program_line(real_rt):
    from structgen.errors import RegexError

    @sg.function
    def f(s):
        s += sg.user("Say a.")
        s += sg.assistant(sg.gen("x", regex=r"(?=a)a"))  # lookahead cannot be compiled

    with pytest.raises(RegexError) as exc:
        f.run(runtime=real_rt)
    assert f"{__file__}:" in str(exc.value) and "in program 'f'" in str(exc.value)
