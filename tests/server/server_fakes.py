"""A deterministic stand-in for ``Runtime`` (same contract, no model) for the HTTP-layer tests.

Tokens are characters. The text of a request is chosen from its constraint: a minimal instance
of a JSON Schema, the first choice (or ``seed % len``), a sample registered for a regex, or a
fixed sentence; ``max_tokens`` cuts it (finish ``length``), a stop string ends it. Each handle
produces one token per ``delay`` seconds in its own thread, so streams interleave and requests
overlap the way they do in a continuous batch. Schemas that ``jsonschema`` rejects, and the
keyword ``uniqueItems``, raise ``SchemaError`` at submit, like a real compile.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import jsonschema

from structgen.constraints import Choice, JsonSchema, Regex, as_constraint
from structgen.engine.request import GenerationResult
from structgen.errors import SchemaError

FREE_TEXT = "Hello from the fake model."
REGEX_SAMPLES = {r"\d{3}-\d{4}": "555-0199", r"(yes|no)": "yes"}


class FakeTokenizer:
    """One token per character."""

    eos_token_id = 0

    def encode(self, text: str, **_: Any) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int], **_: Any) -> str:
        return "".join(chr(i) for i in ids)


def sample_instance(schema: Any) -> Any:
    """A small instance of ``schema`` (the subset these tests use)."""
    if schema is True or schema == {}:
        return {}
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return sample_instance(schema[key][0])
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        props = schema.get("properties", {})
        return {k: sample_instance(v) for k, v in props.items() if k in schema.get("required", props)}
    if kind == "array":
        return [sample_instance(schema.get("items", {}))] * schema.get("minItems", 1)
    return {"string": "abc", "integer": 7, "number": 1.5, "boolean": True, "null": None}[kind]


def text_for(constraint: Any, seed: int | None) -> str:
    import json

    c = as_constraint(constraint)
    if c is None:
        return FREE_TEXT
    if isinstance(c, Choice):
        return c.options[(seed or 0) % len(c.options)]
    if isinstance(c, Regex):
        return REGEX_SAMPLES.get(c.pattern, "0")
    if isinstance(c, JsonSchema):
        return json.dumps(sample_instance(c.schema))
    raise AssertionError(f"fake cannot generate for {c!r}")


def check_constraint(constraint: Any) -> None:
    c = as_constraint(constraint)
    if isinstance(c, JsonSchema):
        if "uniqueItems" in json_keys(c.schema):
            raise SchemaError("uniqueItems cannot be enforced", keyword="uniqueItems", pointer="/")
        try:
            jsonschema.validators.validator_for(c.schema).check_schema(c.schema)
        except jsonschema.SchemaError as e:
            raise SchemaError(f"invalid schema: {e.message}") from None


def json_keys(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | set().union(*(json_keys(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(json_keys(v) for v in obj)) if obj else set()
    return set()


class FakeHandle:
    def __init__(self, runtime: "FakeRuntime", request: Any, prompt_tokens: int, cached: int):
        self.request = request
        self.cancelled = False
        self._runtime = runtime
        self._cond = threading.Condition()
        self._tokens: list[str] = []
        self._result: GenerationResult | None = None
        self._prompt_tokens, self._cached = prompt_tokens, cached
        threading.Thread(target=self._run, daemon=True).start()

    def _plan(self) -> tuple[str, str]:
        r = self.request
        text, finish = text_for(r.constraint, r.seed), "stop"
        for s in r.stop:
            if s in text:
                text = text[: text.index(s)]
        if len(text) > r.max_tokens:
            text, finish = text[: r.max_tokens], "length"
        return text, finish

    def _run(self) -> None:
        text, finish = self._plan()
        self._runtime._enter()
        try:
            for ch in text:
                if self.cancelled or self._runtime.closed:
                    finish = "abort"
                    break
                time.sleep(self._runtime.delay)
                with self._cond:
                    self._tokens.append(ch)
                    self._cond.notify_all()
        finally:
            self._runtime._leave(len(self._tokens))
        out = "".join(self._tokens)
        logprobs = [-0.25] * len(out) if self.request.logprobs else None
        with self._cond:
            self._result = GenerationResult(
                text=out, token_ids=[ord(c) for c in out], finish_reason=finish, prompt_tokens=self._prompt_tokens,
                cached_tokens=self._cached, completion_tokens=len(out), logprobs=logprobs,
            )
            self._cond.notify_all()

    def result(self, timeout: float | None = None) -> GenerationResult:
        with self._cond:
            if not self._cond.wait_for(lambda: self._result is not None, timeout):
                raise TimeoutError("request still running")
            return self._result

    def stream(self):
        sent = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda n=sent: len(self._tokens) > n or self._result is not None)
                chunk, done = "".join(self._tokens[sent:]), self._result is not None
                sent = len(self._tokens)
            if chunk:
                yield chunk
            if done and sent == len(self._tokens):
                return

    def cancel(self) -> None:
        self.cancelled = True


class FakeRuntime:
    """``submit`` / ``stats`` / ``shutdown`` / ``tokenizer`` like ``Runtime``; records what it saw."""

    model_name = "fake-model"

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.tokenizer = FakeTokenizer()
        self.submitted: list[FakeHandle] = []
        self.closed = False
        self.max_concurrent = 0
        self._lock = threading.Lock()
        self._running = 0
        self._seen: set[str] = set()
        self._stats = {"prompt_tokens": 0, "cached_prompt_tokens": 0, "generated_tokens": 0}

    def submit(self, request: Any) -> FakeHandle:
        request.sampling()  # RequestError for bad sampling options
        check_constraint(request.constraint)
        key = repr(request.prompt)
        n_prompt = len(key)
        with self._lock:
            cached = n_prompt if key in self._seen else 0
            self._seen.add(key)
            self._stats["prompt_tokens"] += n_prompt
            self._stats["cached_prompt_tokens"] += cached
        handle = FakeHandle(self, request, n_prompt, cached)
        self.submitted.append(handle)
        return handle

    def _enter(self) -> None:
        with self._lock:
            self._running += 1
            self.max_concurrent = max(self.max_concurrent, self._running)

    def _leave(self, generated: int) -> None:
        with self._lock:
            self._running -= 1
            self._stats["generated_tokens"] += generated

    def stats(self) -> dict:
        with self._lock:
            return dict(self._stats, running=self._running, waiting=0,
                        step_time_s={"count": 4, "sum": 0.02, "p50": 0.005, "p99": 0.008})

    def shutdown(self) -> None:
        self.closed = True
