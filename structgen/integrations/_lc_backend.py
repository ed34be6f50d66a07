"""Where ``ChatStructgen`` sends a request: an in-process ``Runtime`` or a structgen server.

Both take the same thing — chat messages, a constraint (or None) and sampling options — and
return ``Completion``s; ``stream`` yields text deltas and then one final ``Completion`` carrying
the usage and finish reason. The constraint always travels with the request: locally it is
compiled into the request's token automaton; remotely it becomes ``response_format`` (JSON
Schema), or the server's ``regex`` / ``choices`` extensions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import GenerationError, RequestError


@dataclass
class Completion:
    """One finished answer. ``finish_reason``: "stop", "length" or "abort"."""

    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


class LocalBackend:
    """Requests go to ``runtime.submit`` in this process."""

    def __init__(self, runtime: Any, timeout: float | None = None):
        self.runtime = runtime
        self.timeout = timeout

    def _submit(self, messages: list[dict], constraint: Any, options: dict) -> Any:
        from ..engine.request import GenerateRequest

        return self.runtime.submit(GenerateRequest(messages, constraint=constraint, **options))

    def complete(self, messages: list[dict], constraint: Any, options: dict) -> Completion:
        handle = self._submit(messages, constraint, options)
        try:
            result = handle.result(timeout=self.timeout)
        except TimeoutError:
            handle.cancel()
            raise
        return _from_result(result)

    def stream(self, messages: list[dict], constraint: Any, options: dict) -> Iterator[str | Completion]:
        handle = self._submit(messages, constraint, options)
        try:
            yield from handle.stream()
        finally:
            if not handle.done():
                handle.cancel()
        yield _from_result(handle.result())


def _from_result(result: Any) -> Completion:
    if result.finish_reason == "abort":
        raise GenerationError(f"generation was aborted: {result.error or 'cancelled'}", text=result.text,
                              finish_reason="abort")
    return Completion(result.text, result.finish_reason, result.prompt_tokens, result.completion_tokens,
                      result.cached_tokens)


class RemoteBackend:
    """Requests go to a structgen server's ``/v1/chat/completions`` (through httpx, imported lazily)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float | None = None,
                 max_retries: int = 2):
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self.client = httpx.Client(base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout,
                                   transport=httpx.HTTPTransport(retries=max_retries))

    def _body(self, messages: list[dict], constraint: Any, options: dict, stream: bool) -> dict:
        body = {"model": self.model, "messages": messages, "stream": stream, **_sampling(options), **constraint_body(constraint)}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def complete(self, messages: list[dict], constraint: Any, options: dict) -> Completion:
        r = self.client.post("chat/completions", json=self._body(messages, constraint, options, False))
        data = _check(r)
        choice, usage = data["choices"][0], data.get("usage") or {}
        return Completion(choice["message"].get("content") or "", _finish(choice.get("finish_reason")),
                          usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))

    def stream(self, messages: list[dict], constraint: Any, options: dict) -> Iterator[str | Completion]:
        body = self._body(messages, constraint, options, True)
        text, finish, usage = [], "stop", {}
        with self.client.stream("POST", "chat/completions", json=body) as r:
            if r.status_code >= 400:
                r.read()
                _check(r)
            for line in r.iter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                chunk = json.loads(line[5:])
                if "error" in chunk:
                    raise GenerationError(f"the server failed mid-stream: {chunk['error'].get('message')}")
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    delta = (choice.get("delta") or {}).get("content")
                    if delta:
                        text.append(delta)
                        yield delta
                    finish = _finish(choice.get("finish_reason")) if choice.get("finish_reason") else finish
        yield Completion("".join(text), finish, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))


def constraint_body(constraint: Any) -> dict:
    """The request-body fields that carry ``constraint`` to a structgen server."""
    from ..constraints import Choice, JsonSchema, Regex, as_constraint

    if constraint is None:
        return {}
    c = as_constraint(constraint)
    if isinstance(c, Regex):
        return {"regex": c.pattern}
    if isinstance(c, Choice):
        return {"choices": list(c.options)}
    if isinstance(c, JsonSchema):
        schema, strict, extra = c.schema, c.strict, {"whitespace": c.whitespace}
    else:  # a pydantic model (or a type pydantic understands)
        import pydantic

        schema, strict, extra = pydantic.TypeAdapter(c.model).json_schema(), True, {}
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": schema,
                                                                         "strict": strict}}, **extra}


def _sampling(options: dict) -> dict:
    body = {k: options[k] for k in ("max_tokens", "temperature", "top_p", "seed", "top_k", "min_p") if options.get(k) is not None}
    if options.get("stop"):
        body["stop"] = list(options["stop"])
    return body


def _finish(reason: str | None) -> str:
    return {"tool_calls": "stop", "content_filter": "stop", None: "stop"}.get(reason, reason)


def _check(response: Any) -> dict:
    if response.status_code < 400:
        return response.json()
    try:
        message = response.json()["error"]["message"]
    except Exception:  # noqa: BLE001 - not an OpenAI error body
        message = response.text[:300]
    raise RequestError(f"the structgen server answered {response.status_code}: {message}")
