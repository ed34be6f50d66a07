"""The official ``openai`` client against the server over the fake runtime (HTTP layer only)."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

openai = pytest.importorskip("openai")

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}}, "required": ["tz"]}},
}
MESSAGES = [{"role": "user", "content": "Extract: Ann, 31"}]


def test_chat_json_schema_output_validates(client):
    r = client.chat.completions.create(
        model="x", messages=MESSAGES, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
    )
    jsonschema.validate(json.loads(r.choices[0].message.content), PERSON)
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == len(r.choices[0].message.content)  # fake: one token per char
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_json_object_gives_an_object(client):
    r = client.chat.completions.create(model="x", messages=MESSAGES, response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_regex_and_choices_through_extra_body(client):
    r = client.chat.completions.create(model="x", messages=MESSAGES, extra_body={"regex": r"\d{3}-\d{4}"})
    assert re.fullmatch(r"\d{3}-\d{4}", r.choices[0].message.content)
    r = client.chat.completions.create(model="x", messages=MESSAGES, extra_body={"choices": ["red", "green"]})
    assert r.choices[0].message.content in ("red", "green")


def test_n_submits_n_requests_with_one_prompt(client, fake_runtime):
    before = len(fake_runtime.submitted)
    r = client.chat.completions.create(model="x", messages=MESSAGES, n=3, seed=10, temperature=0.7)
    assert [c.index for c in r.choices] == [0, 1, 2]
    subs = fake_runtime.submitted[before:]
    assert len(subs) == 3 and len({repr(h.request.prompt) for h in subs}) == 1
    assert [h.request.seed for h in subs] == [10, 11, 12]
    assert r.usage.prompt_tokens == subs[0].result().prompt_tokens  # the shared prompt counts once


def test_streaming_matches_non_streaming(client):
    full = client.chat.completions.create(model="x", messages=MESSAGES, temperature=0).choices[0].message.content
    chunks = list(client.chat.completions.create(
        model="x", messages=MESSAGES, temperature=0, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(full)


def test_streaming_n_interleaves_every_choice(client):
    chunks = list(client.chat.completions.create(model="x", messages=MESSAGES, n=2, stream=True))
    texts = {0: "", 1: ""}
    for c in chunks:
        texts[c.choices[0].index] += c.choices[0].delta.content or ""
    assert texts[0] == texts[1] != ""


def test_tool_choice_required_returns_tool_calls(client):
    r = client.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL, TIME_TOOL], tool_choice="required",
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    spec = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER_TOOL, TIME_TOOL)}
    jsonschema.validate(json.loads(call.function.arguments), spec[call.function.name])


def test_named_tool_choice_forces_that_tool(client, fake_runtime):
    r = client.chat.completions.create(
        model="x", messages=MESSAGES, tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert r.choices[0].message.tool_calls[0].function.name == "get_time"
    schema = fake_runtime.submitted[-1].request.constraint.schema
    assert schema["properties"]["name"] == {"const": "get_time"}
    system = fake_runtime.submitted[-1].request.prompt[0]
    assert system["role"] == "system" and "get_time" in system["content"] and "get_weather" not in system["content"]


def test_streamed_tool_call_arrives_whole(client):
    chunks = list(client.chat.completions.create(
        model="x", messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice="required", stream=True))
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "abc"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_auto_tool_choice_answers_in_text_when_not_a_call(client):
    r = client.chat.completions.create(model="x", messages=MESSAGES, tools=[WEATHER_TOOL])
    assert r.choices[0].message.content == "Hello from the fake model." and not r.choices[0].message.tool_calls


def test_tool_history_is_rendered_into_the_prompt(client, fake_runtime):
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    client.chat.completions.create(model="x", messages=messages, tools=[WEATHER_TOOL])
    prompt = fake_runtime.submitted[-1].request.prompt
    assert prompt[2] == {"role": "assistant", "content": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'}
    assert prompt[3] == {"role": "tool", "content": "sunny"}


def test_invalid_schema_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(
            model="x", messages=MESSAGES,
            response_format={"type": "json_schema", "json_schema": {"name": "bad", "schema": {"type": "strng"}}},
        )
    err = exc.value.body
    assert exc.value.status_code == 400 and err["type"] == "invalid_request_error"
    assert err["param"] == "response_format" and err["code"] == "invalid_schema"


def test_unsupported_keyword_is_named(client):
    schema = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(
            model="x", messages=MESSAGES, response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    assert "uniqueItems" in exc.value.body["message"] and exc.value.body["code"] == "invalid_schema"


def test_completions_batch_echo_and_logprobs(client):
    r = client.completions.create(model="x", prompt=["A:", "B:"], n=2, echo=True, logprobs=0, max_tokens=5)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert [c.text for c in r.choices] == ["A:Hello"] * 2 + ["B:Hello"] * 2
    lp = r.choices[0].logprobs
    assert lp.tokens == list("Hello") and lp.token_logprobs == [-0.25] * 5 and lp.text_offset == [2, 3, 4, 5, 6]
    assert r.choices[0].finish_reason == "length"


def test_completion_streaming(client):
    chunks = list(client.completions.create(model="x", prompt="Hi", stream=True, max_tokens=4))
    assert "".join(c.choices[0].text for c in chunks) == "Hell"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_logprobs(client):
    r = client.chat.completions.create(model="x", messages=MESSAGES, logprobs=True, max_tokens=3)
    content = r.choices[0].logprobs.content
    assert [e.token for e in content] == ["H", "e", "l"] and all(e.logprob == -0.25 for e in content)
    assert content[0].bytes == [72]


def test_max_completion_tokens_and_stop(client, fake_runtime):
    r = client.chat.completions.create(model="x", messages=MESSAGES, max_completion_tokens=4)
    assert r.choices[0].message.content == "Hell" and r.choices[0].finish_reason == "length"
    r = client.chat.completions.create(model="x", messages=MESSAGES, stop=[" from"])
    assert r.choices[0].message.content == "Hello" and fake_runtime.submitted[-1].request.stop == (" from",)


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list()] == ["fake-model"]
