"""The official ``openai`` client against a server running the embedded default model."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import jsonschema
import pytest

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
COLOR = {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}}, "required": ["color"],
         "additionalProperties": False}
FLAGS = {"type": "object", "properties": {"ok": {"type": "boolean"}, "level": {"enum": ["low", "high"]}},
         "required": ["ok", "level"], "additionalProperties": False}
PHONE = r"[0-9]{3}-[0-9]{4}"  # \d would also admit every Unicode digit
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather of a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 16}},
                                "required": ["city"], "additionalProperties": False}},
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}},
                                                   "required": ["tz"], "additionalProperties": False}},
}
ASK = [{"role": "user", "content": "Extract the person: Ann is 31 and lives in Oslo."}]


def schema_format(name, schema):
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


@pytest.fixture(scope="module")
def real_server():
    from structgen.server import start_server

    with start_server(max_batch_size=64) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(real_server):
    return openai.OpenAI(base_url=real_server.base_url, api_key="unused", max_retries=0, timeout=120)


def test_json_schema_chat_validates(client):
    r = client.chat.completions.create(model="default", messages=ASK, temperature=0, max_tokens=48,
                                       response_format=schema_format("person", PERSON))
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), PERSON)


def test_streaming_regex_output_matches(client):
    chunks = list(client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Give me a phone number."}], max_tokens=16,
        stream=True, stream_options={"include_usage": True}, extra_body={"regex": PHONE}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert re.fullmatch(PHONE, text)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.completion_tokens > 0


def test_n3_samples_all_validate(client):
    r = client.chat.completions.create(model="default", messages=ASK, n=3, temperature=0.9, seed=3, max_tokens=48,
                                       response_format=schema_format("person", PERSON),
                                       extra_body={"whitespace": "compact"})
    assert len(r.choices) == 3
    for choice in r.choices:
        jsonschema.validate(json.loads(choice.message.content), PERSON)


def test_completion_with_logprobs_and_echo(client):
    r = client.completions.create(model="default", prompt="The capital of France is", max_tokens=4, temperature=0,
                                  logprobs=0, echo=True)
    choice = r.choices[0]
    assert choice.text.startswith("The capital of France is")
    lp = choice.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == r.usage.completion_tokens
    assert all(x <= 0 for x in lp.token_logprobs)
    assert "".join(lp.tokens) == choice.text[len("The capital of France is"):]


def test_regex_through_extra_body(client):
    r = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "A phone number?"}],
                                       max_tokens=16, extra_body={"regex": PHONE})
    assert re.fullmatch(PHONE, r.choices[0].message.content)


def test_tool_choice_required(client):
    r = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Weather in Oslo?"}],
                                       tools=[WEATHER_TOOL, TIME_TOOL], tool_choice="required", max_tokens=48, temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    params = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER_TOOL, TIME_TOOL)}
    jsonschema.validate(json.loads(call.function.arguments), params[call.function.name])


def test_invalid_schema_is_bad_request(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="default", messages=ASK,
                                       response_format=schema_format("bad", {"type": "strng"}))
    assert exc.value.body["param"] == "response_format"


def metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def test_load_100_concurrent_mixed_requests(real_server, client):
    """Every request answers, every constrained answer validates, /metrics counts them all."""
    compact = {"whitespace": "compact"}  # greedy decoding can loop on whitespace the default policy allows
    kinds = [
        ("person", {"response_format": schema_format("person", PERSON), "extra_body": compact},
         lambda t: jsonschema.validate(json.loads(t), PERSON)),
        ("color", {"response_format": schema_format("color", COLOR), "extra_body": compact},
         lambda t: jsonschema.validate(json.loads(t), COLOR)),
        ("flags", {"response_format": schema_format("flags", FLAGS), "extra_body": compact},
         lambda t: jsonschema.validate(json.loads(t), FLAGS)),
        ("phone", {"extra_body": {"regex": PHONE}}, lambda t: re.fullmatch(PHONE, t) or pytest.fail(t)),
        ("yesno", {"extra_body": {"choices": ["yes", "no"]}}, lambda t: t in ("yes", "no") or pytest.fail(t)),
    ]
    before = metric(httpx.get(real_server.url + "/metrics").text,
                    'structgen_http_requests_total{endpoint="/v1/chat/completions",status="200"}')

    def one(i):
        _, extra, check = kinds[i % len(kinds)]
        r = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": f"Request {i}: Ann is 31, phone 555-0199."}],
            max_tokens=40, temperature=0, **extra)
        return r.choices[0].message.content, r.choices[0].finish_reason, check

    with ThreadPoolExecutor(100) as pool:
        answers = list(pool.map(one, range(100)))
    unfinished = [(i, text) for i, (text, finish, _) in enumerate(answers) if finish != "stop"]
    assert not unfinished
    for text, _, check in answers:
        check(text)
    after = metric(httpx.get(real_server.url + "/metrics").text,
                   'structgen_http_requests_total{endpoint="/v1/chat/completions",status="200"}')
    assert after - before == 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_m_server_stops_on_sigterm_failing_in_flight_requests():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "structgen.server", "--port", str(port), "--graceful-timeout", "2",
                             "--log-level", "warning"], env=dict(os.environ, PYTHONUNBUFFERED="1"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not come up"
            time.sleep(0.3)
        body = {"messages": [{"role": "user", "content": "Write a long story."}], "max_tokens": 2000,
                "ignore_eos": True, "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as resp:
            lines = resp.iter_lines()
            assert next(lines).startswith("data: ")
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            events = [line for line in lines if line.startswith("data: ")]
        assert json.loads(events[-1][len("data: "):])["error"]["code"] == "shutting_down"
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - t0 < 15
    finally:
        if proc.poll() is None:
            proc.kill()
