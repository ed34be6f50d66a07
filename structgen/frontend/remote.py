"""``RemoteRuntime(url)``: run programs against a structgen server (``structgen serve``).

Every ``gen`` is one ``POST {url}/v1/completions`` with the program's text as a raw ``prompt``
and the OpenAI fields ``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``, plus the
structgen extensions for constraints: ``regex``, ``choices``, and
``response_format: {"type": "json_schema", "json_schema": {"name", "schema"}}``. With streaming,
the request sets ``"stream": true`` and reads the server-sent events.

Differences from an in-process ``Runtime``: no ``score`` (``select`` uses constrained decoding),
no prefix prefill before ``fork`` (the server's radix cache still shares prefixes), and roles
are rendered with ``chat_template`` (ChatML unless given a tokenizer or ``ChatTemplate``), since
the client does not have the server's tokenizer. ``httpx`` is imported on first use.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..constraints import Choice, JsonSchema, PydanticModel, Regex
from ..errors import ConstraintError, RegexError, RequestError, SchemaError
from .backends import Backend
from .chat_template import ChatTemplate


@dataclass
class RemoteResult:
    """The parts of a completion response a program uses (``GenerationResult``'s field names)."""

    text: str
    finish_reason: str
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list | None = None
    error: str | None = None


class RemoteRuntime(Backend):
    """A backend that sends each generation to ``{url}/v1/completions``."""

    can_score = False

    def __init__(self, url: str, model: str = "default", chat_template: Any = None, api_key: str | None = None,
                 timeout: float = 600.0):
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if isinstance(chat_template, ChatTemplate):
            self.chat_template = chat_template
        else:
            self.chat_template = ChatTemplate.from_tokenizer(chat_template)
        self._client: Any = None
        self._lock = threading.Lock()
        self._stats = {"requests": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0, "generated_tokens": 0}

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(base_url=self.url, timeout=self.timeout, headers=self.headers)
            return self._client

    def submit(self, prompt: str, constraint: Any, sampling: dict) -> _RemoteHandle:
        return _RemoteHandle(self, request_body(self.model, prompt, constraint, sampling))

    def stats(self) -> dict:
        with self._lock:
            return dict(self._stats)

    def _count(self, result: RemoteResult) -> None:
        with self._lock:
            self._stats["requests"] += 1
            self._stats["prompt_tokens"] += result.prompt_tokens
            self._stats["cached_prompt_tokens"] += result.cached_tokens
            self._stats["generated_tokens"] += result.completion_tokens

    def shutdown(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def request_body(model: str, prompt: str, constraint: Any, sampling: dict) -> dict:
    """The JSON body of one completion request (sampling keys as in ``GenerateRequest``)."""
    body = {"model": model, "prompt": prompt, "max_tokens": sampling.get("max_tokens", 128),
            "temperature": sampling.get("temperature", 0.0), "top_p": sampling.get("top_p", 1.0)}
    stop = sampling.get("stop") or ()
    if stop:
        body["stop"] = [stop] if isinstance(stop, str) else list(stop)
    for key in ("seed", "top_k", "min_p"):
        if sampling.get(key):
            body[key] = sampling[key]
    if sampling.get("logprobs"):
        body["logprobs"] = 1
    body.update(_constraint_fields(constraint))
    return body


def _constraint_fields(constraint: Any) -> dict:
    if constraint is None:
        return {}
    if isinstance(constraint, Regex):
        return {"regex": constraint.pattern}
    if isinstance(constraint, Choice):
        return {"choices": list(constraint.options)}
    if isinstance(constraint, PydanticModel):
        constraint = JsonSchema(_model_schema(constraint.model))
    if isinstance(constraint, JsonSchema):
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": constraint.schema}}}
    raise ConstraintError(f"RemoteRuntime cannot send constraint {constraint!r}")


def _model_schema(model: Any) -> dict:
    from pydantic import TypeAdapter

    return TypeAdapter(model).json_schema()


class _RemoteHandle:
    """Sends its request on the first ``result()`` or ``stream()`` (on the caller's thread)."""

    def __init__(self, backend: RemoteRuntime, body: dict):
        self.backend = backend
        self.body = body
        self._result: RemoteResult | None = None

    def result(self, timeout: float | None = None) -> RemoteResult:
        if self._result is None:
            resp = self._post(self.body)
            self._result = _parse_response(resp.json())
            self.backend._count(self._result)
        return self._result

    def stream(self) -> Iterator[str]:
        """Yield text deltas from the server-sent events; ``result()`` then holds the whole output."""
        body = {**self.body, "stream": True, "stream_options": {"include_usage": True}}
        parts, finish, usage = [], "stop", {}
        with self.backend.client().stream("POST", "/v1/completions", json=body) as resp:
            _raise_for_status(resp, streamed=True)
            for line in resp.iter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                chunk = json.loads(line[5:])
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    finish = choice.get("finish_reason") or finish
                    if choice.get("text"):
                        parts.append(choice["text"])
                        yield choice["text"]
        self._result = _result_of("".join(parts), finish, usage)
        self.backend._count(self._result)

    def _post(self, body: dict) -> Any:
        import httpx

        try:
            resp = self.backend.client().post("/v1/completions", json=body)
        except httpx.HTTPError as e:
            raise RequestError(f"cannot reach the structgen server at {self.backend.url}: {e}") from None
        _raise_for_status(resp)
        return resp


def _raise_for_status(resp: Any, streamed: bool = False) -> None:
    if resp.status_code < 400:
        return
    if streamed:
        resp.read()
    try:
        err = resp.json().get("error") or {}
        message, code = err.get("message", resp.text), str(err.get("code") or "")
    except ValueError:
        message, code = resp.text, ""
    cls = _ERROR_CODES.get(code, RequestError)
    raise cls(f"the server rejected the request (HTTP {resp.status_code}): {message}")


# The server's error codes for constraints that do not compile (structgen/server/app.py).
_ERROR_CODES = {"invalid_schema": SchemaError, "invalid_regex": RegexError, "invalid_constraint": ConstraintError}


def _parse_response(data: dict) -> RemoteResult:
    choice = (data.get("choices") or [{}])[0]
    result = _result_of(choice.get("text", ""), choice.get("finish_reason") or "stop", data.get("usage") or {})
    lp = choice.get("logprobs")
    if isinstance(lp, dict):
        result.logprobs = lp.get("token_logprobs")
    return result


def _result_of(text: str, finish: str, usage: dict) -> RemoteResult:
    details = usage.get("prompt_tokens_details") or {}
    return RemoteResult(text=text, finish_reason=finish, prompt_tokens=usage.get("prompt_tokens", 0),
                        cached_tokens=details.get("cached_tokens", 0) or 0,
                        completion_tokens=usage.get("completion_tokens", 0))
