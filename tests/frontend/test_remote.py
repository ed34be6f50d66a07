"""RemoteRuntime: the same programs over POST /v1/completions (served here by httpx.MockTransport)."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import BaseModel

import structgen.frontend as sg
from structgen.errors import RequestError, SchemaError


class Server:
    """Records request bodies; answers from ``reply(body) -> text``."""

    def __init__(self, reply, status=200, error=None):
        self.bodies, self.reply, self.status, self.error = [], reply, status, error

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/completions"
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": self.error})
        text = self.reply(body)
        if body.get("stream"):
            events = [{"choices": [{"text": text[i:i + 3], "finish_reason": None}]} for i in range(0, len(text), 3)]
            events.append({"choices": [{"text": "", "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
            sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json={
            "choices": [{"text": text, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}},
        })


def remote(server: Server) -> sg.RemoteRuntime:
    rt = sg.RemoteRuntime("http://test:8000/")
    rt._client = httpx.Client(base_url=rt.url, transport=httpx.MockTransport(server))
    return rt


class Item(BaseModel):
    name: str


def test_program_over_http_sends_prompt_sampling_and_constraints():
    replies = {"n": "12", "c": "b", "j": '{"name": "x"}', "f": "free text"}
    server = Server(lambda body: replies[body["prompt"][-1]])

    @sg.function
    def f(s):
        s += sg.user("hi")
        s += "n" + sg.gen("num", regex=r"\d+", max_tokens=4, stop=["\n"], temperature=0.3)
        s += "c" + sg.select("choice", ["a", "b"])
        s += "j" + sg.gen("item", schema=Item)
        s += "f" + sg.gen("free", seed=7)

    state = f.run(runtime=remote(server))
    assert (state["num"], state["choice"], state["item"], state["free"]) == ("12", "b", Item(name="x"), "free text")
    num, choice, item, free = server.bodies
    assert num["prompt"] == "<|im_start|>user\nhi<|im_end|>\nn"
    assert (num["regex"], num["max_tokens"], num["stop"], num["temperature"]) == (r"\d+", 4, ["\n"], 0.3)
    assert choice["choices"] == ["a", "b"]  # select falls back to constrained decoding
    assert item["response_format"]["type"] == "json_schema"
    assert item["response_format"]["json_schema"]["schema"]["properties"]["name"]["type"] == "string"
    assert free["seed"] == 7 and "regex" not in free
    assert state.get_meta_info("num")["cached_tokens"] == 4


def test_streaming_over_http():
    server = Server(lambda body: "streamed words")

    @sg.function
    def f(s):
        s += "go: " + sg.gen("out")

    state = f.run(runtime=remote(server), stream=True)
    assert "".join(state.text_iter()) == "go: streamed words"
    assert server.bodies[0]["stream"] is True


def test_server_errors_are_typed():
    server = Server(None, status=400, error={"message": "uniqueItems unsupported", "type": "invalid_request_error",
                                                  "code": "invalid_schema"})

    @sg.function
    def f(s):
        s += sg.gen("x", schema={"type": "array", "uniqueItems": True})

    with pytest.raises(SchemaError, match="uniqueItems unsupported"):
        f.run(runtime=remote(server))
    server.error = {"message": "max_tokens too large", "type": "invalid_request_error"}
    with pytest.raises(RequestError, match="max_tokens too large"):
        f.run(runtime=remote(server))
