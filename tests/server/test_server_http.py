"""HTTP-layer behaviour over the fake runtime: error bodies, SSE framing, metrics, cancellation,
shutdown and concurrency."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest
from server_fakes import FakeRuntime

from structgen.server import start_server

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


def error_of(resp: httpx.Response) -> dict:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]


@pytest.mark.parametrize(
    "body, param",
    [
        ({"messages": MESSAGES, "temperature": 5}, "temperature"),
        ({"messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"messages": MESSAGES, "n": "three"}, "n"),
        ({}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": MESSAGES, "top_logprobs": 3, "logprobs": True}, "top_logprobs"),
        ({"messages": MESSAGES, "presence_penalty": 0.5}, "presence_penalty"),
        ({"messages": MESSAGES, "logit_bias": {"5": 1.0}}, "logit_bias"),
        ({"messages": MESSAGES, "regex": "a+", "choices": ["a"]}, "choices"),
        ({"messages": MESSAGES, "choices": []}, "choices"),
        ({"messages": MESSAGES, "response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"messages": MESSAGES, "response_format": {"type": "xml"}}, "response_format.type"),
        ({"messages": MESSAGES, "tool_choice": "required"}, "tool_choice"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content[0]"),
        ({"messages": MESSAGES, "seed": -1}, None),  # the runtime's RequestError, still a 400
    ],
)
def test_bad_parameters_are_400_naming_the_param(http, body, param):
    err = error_of(http.post(CHAT, json=body))
    assert err["param"] == param


def test_tool_choice_naming_an_unknown_tool(http):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    err = error_of(http.post(CHAT, json={"messages": MESSAGES, "tools": [tool],
                                         "tool_choice": {"type": "function", "function": {"name": "g"}}}))
    assert err["param"] == "tool_choice" and "'g'" in err["message"]


def test_malformed_json_body_is_400(http):
    resp = http.post(CHAT, content=b'{"messages": [', headers={"content-type": "application/json"})
    assert "not valid JSON" in error_of(resp)["message"]


def test_completion_params(http):
    assert error_of(http.post("/v1/completions", json={"prompt": "a", "logprobs": 2}))["param"] == "logprobs"
    assert error_of(http.post("/v1/completions", json={"prompt": "a", "suffix": "b"}))["param"] == "suffix"
    assert error_of(http.post("/v1/completions", json={"prompt": []}))["param"] == "prompt"


def test_unknown_route_has_openai_error_shape(http):
    resp = http.get("/v1/nothing")
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "invalid_request_error"


def test_health_and_models(http):
    assert http.get("/health").json() == {"status": "ok"}
    assert http.get("/v1/models").json()["data"][0]["id"] == "fake-model"


def sse_events(resp: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an SSE body, checking the framing of every event."""
    raw = resp.text
    assert raw.endswith("\n\n")
    events = raw[:-2].split("\n\n")
    assert all(e.startswith("data: ") and "\n" not in e for e in events), raw
    return [e[len("data: "):] for e in events]


def test_sse_framing_and_done(http):
    resp = http.post(CHAT, json={"messages": MESSAGES, "stream": True, "max_tokens": 5,
                                 "stream_options": {"include_usage": True}})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert all(c["usage"] is None for c in chunks[:-1])


def test_stream_with_logprobs_puts_them_on_the_last_chunk(http):
    resp = http.post(CHAT, json={"messages": MESSAGES, "stream": True, "max_tokens": 3, "logprobs": True})
    chunks = [json.loads(e) for e in sse_events(resp)[:-1]]
    assert [t["token"] for t in chunks[-1]["choices"][0]["logprobs"]["content"]] == ["H", "e", "l"]


def test_constraint_error_is_400_before_anything_is_queued(http, fake_runtime):
    before = len(fake_runtime.submitted)
    schema = {"type": "array", "uniqueItems": True}
    resp = http.post(CHAT, json={"messages": MESSAGES, "n": 2, "stream": True,
                                 "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}})
    assert error_of(resp)["code"] == "invalid_schema"
    assert len(fake_runtime.submitted) == before


PROM_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_]+="[^"]*"(,[a-zA-Z_]+="[^"]*")*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$')


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


def test_metrics_format_and_counts():
    rt = FakeRuntime()
    with start_server(runtime=rt) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        for _ in range(3):
            assert http.post(CHAT, json={"messages": MESSAGES, "max_tokens": 4}).status_code == 200
        http.post(CHAT, json={"messages": MESSAGES, "temperature": 9})
        http.post(CHAT, json={"messages": MESSAGES, "max_tokens": 2, "stream": True})
        resp = http.get("/metrics")
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = resp.text
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or PROM_LINE.match(line), line
    assert metric(text, 'structgen_http_requests_total{endpoint="/v1/chat/completions",status="200"}') == 4
    assert metric(text, 'structgen_http_requests_total{endpoint="/v1/chat/completions",status="400"}') == 1
    assert metric(text, "structgen_generated_tokens_total") == 3 * 4 + 2
    assert metric(text, "structgen_cache_hit_rate") == pytest.approx(3 / 4)  # 4 equal prompts
    assert metric(text, "structgen_queue_length") == 0 and metric(text, "structgen_running_requests") == 0
    assert metric(text, 'structgen_request_latency_seconds_bucket{le="+Inf"}') == 5
    assert metric(text, "structgen_step_seconds_count") == 4


def test_many_clients_run_concurrently():
    rt = FakeRuntime(delay=0.05)  # each request lasts ~0.5 s: long enough to overlap on a loaded machine
    with start_server(runtime=rt) as srv:
        results = []
        ready = threading.Barrier(40)  # every client is set up before any request is sent

        def one(i):
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                ready.wait(timeout=30)
                results.append(c.post(CHAT, json={"messages": [{"role": "user", "content": str(i)}],
                                                  "max_tokens": 10, "stream": i % 2 == 0}).status_code)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [200] * 40
    assert rt.max_concurrent >= 20  # the requests overlapped instead of queueing behind each other


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_client_disconnect_mid_stream_cancels_the_request():
    rt = FakeRuntime(delay=0.05)
    with start_server(runtime=rt) as srv:
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            with http.stream("POST", CHAT, json={"messages": MESSAGES, "stream": True}) as resp:
                next(resp.iter_lines())
        wait_for(lambda: rt.submitted and rt.submitted[0].cancelled)
        assert rt.submitted[0].result(timeout=5).finish_reason == "abort"


def test_client_disconnect_while_waiting_cancels_the_request():
    rt = FakeRuntime(delay=0.05)
    with start_server(runtime=rt) as srv:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(srv.url + CHAT, json={"messages": MESSAGES}, timeout=0.3)
        wait_for(lambda: rt.submitted and rt.submitted[0].cancelled)


def test_stop_aborts_in_flight_requests_with_an_explicit_503():
    rt = FakeRuntime(delay=0.2)  # 26 tokens: ~5 s, longer than the grace period
    srv = start_server(runtime=rt, graceful_timeout=1.5)
    answers = {}

    def call(stream):
        resp = httpx.post(srv.url + CHAT, json={"messages": MESSAGES, "stream": stream}, timeout=30)
        answers[stream] = resp

    threads = [threading.Thread(target=call, args=(s,)) for s in (False, True)]
    for t in threads:
        t.start()
    wait_for(lambda: len(rt.submitted) == 2)
    t0 = time.monotonic()
    srv.stop()
    for t in threads:
        t.join(10)
    assert time.monotonic() - t0 < 5 and not srv.running
    assert answers[False].status_code == 503 and answers[False].json()["error"]["code"] == "shutting_down"
    last = sse_events(answers[True])[-1]
    assert json.loads(last)["error"]["code"] == "shutting_down"
    assert not rt.closed  # a runtime passed in is left running
