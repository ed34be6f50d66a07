"""OpenAI request bodies → ``GenerateRequest`` arguments.

``plan_chat`` / ``plan_completion`` validate what pydantic cannot (one constraint at most,
unsupported parameters) and return a ``GenPlan``: the prompts, the shared sampling arguments,
the constraint and which body field it came from (for 400 messages), and how to turn results
back into OpenAI choices. ``n`` samples of a prompt are ``n`` requests with the same prompt, so
the radix cache shares its KV; with a ``seed``, sample ``i`` uses ``seed + i``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..constraints import Choice, JsonSchema, Regex
from ..errors import ConstraintError
from .errors import APIError, bad_request, unsupported
from .protocol import ChatCompletionRequest, ChatMessage, CompletionRequest, ResponseFormat
from .tools import ToolPlan, plan_tools, render_tool_calls, tool_system_prompt

ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass
class GenPlan:
    """Everything needed to submit a request body and shape its answer."""

    prompts: list[Any]
    n: int
    sampling: dict[str, Any]
    constraint: Any = None
    constraint_param: Optional[str] = None
    tools: ToolPlan = field(default_factory=lambda: ToolPlan("none"))
    logprobs: bool = False
    echo: bool = False

    def requests(self, factory: Callable[..., Any]) -> list[Any]:
        """``len(prompts) * n`` requests, prompt-major (choice index = prompt_index * n + i)."""
        out = []
        seed = self.sampling.get("seed")
        for prompt in self.prompts:
            for i in range(self.n):
                kw = dict(self.sampling, constraint=self.constraint, logprobs=self.logprobs)
                kw["seed"] = None if seed is None else seed + i
                out.append(factory(prompt=prompt, **kw))
        return out


def plan_chat(body: ChatCompletionRequest, *, default_max_tokens: int) -> GenPlan:
    """Plan a ``/v1/chat/completions`` body (messages go through the chat template)."""
    _reject_unsupported(body)
    if body.top_logprobs:
        raise unsupported("top_logprobs", "only the sampled token's logprob is returned; omit it or pass 0")
    tools = plan_tools(body.tools, body.tool_choice)
    sources = _constraint_sources(body, body.response_format)
    if tools.mode == "forced":
        sources.append(("tool_choice", JsonSchema(tools.schema, whitespace=body.whitespace)))
    constraint, param = _single(sources)
    if tools.mode == "auto" and constraint is not None:
        raise bad_request(
            f"'{param}' cannot be combined with tools under tool_choice='auto'; "
            "use tool_choice='required' or a named function, or drop the constraint",
            param=param,
        )
    max_tokens = body.max_completion_tokens or body.max_tokens or default_max_tokens
    messages = chat_messages(body.messages, tools)
    return GenPlan(
        prompts=[messages],
        n=body.n,
        sampling=_sampling(body, max_tokens),
        constraint=constraint,
        constraint_param=param,
        tools=tools,
        logprobs=body.logprobs,
    )


def plan_completion(body: CompletionRequest, *, default_max_tokens: int) -> GenPlan:
    """Plan a ``/v1/completions`` body (the prompt is used raw, without a chat template)."""
    _reject_unsupported(body)
    if body.suffix:
        raise unsupported("suffix", "insertion is not implemented")
    if body.best_of is not None and body.best_of != body.n:
        raise unsupported("best_of", "pass best_of equal to n, or omit it")
    if body.logprobs:
        raise unsupported("logprobs", "only the sampled token's logprob is returned; pass logprobs=0")
    prompts = _completion_prompts(body.prompt)
    constraint, param = _single(_constraint_sources(body, body.response_format))
    sampling = _sampling(body, body.max_tokens or default_max_tokens)
    sampling["raw"] = True
    return GenPlan(
        prompts=prompts,
        n=body.n,
        sampling=sampling,
        constraint=constraint,
        constraint_param=param,
        logprobs=body.logprobs is not None,
        echo=body.echo,
    )


def _reject_unsupported(body: Any) -> None:
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(body, name):
            raise unsupported(name, "repetition penalties are not implemented; omit it or pass 0")
    if body.logit_bias:
        raise unsupported("logit_bias", "use 'regex' or 'choices' to restrict the output instead")
    if isinstance(body.stop, list) and len(body.stop) > 4:
        raise bad_request("'stop' takes at most 4 sequences", param="stop")


def _sampling(body: Any, max_tokens: int) -> dict[str, Any]:
    stop = body.stop if isinstance(body.stop, list) else ([body.stop] if body.stop else [])
    return {
        "max_tokens": max_tokens,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "top_k": body.top_k,
        "min_p": body.min_p,
        "seed": body.seed,
        "stop": tuple(s for s in stop if s),
        "ignore_eos": body.ignore_eos,
    }


def _constraint_sources(body: Any, fmt: Optional[ResponseFormat]) -> list[tuple[str, Any]]:
    """(body field, constraint) for every constraint the body asks for."""
    out: list[tuple[str, Any]] = []
    try:
        if fmt is not None and fmt.type != "text":
            out.append(("response_format", _format_constraint(fmt, body.whitespace)))
        if body.regex is not None:
            out.append(("regex", Regex(body.regex)))
        if body.choices is not None:
            out.append(("choices", Choice(body.choices)))
    except ConstraintError as e:
        raise bad_request(str(e), param=_failed_param(body, fmt, out), code="invalid_constraint") from None
    return out


def _failed_param(body: Any, fmt: Optional[ResponseFormat], done: list) -> str:
    order = [p for p, present in (("response_format", fmt is not None and fmt.type != "text"),
                                  ("regex", body.regex is not None), ("choices", body.choices is not None)) if present]
    return order[len(done)]


def _format_constraint(fmt: ResponseFormat, whitespace: str) -> JsonSchema:
    if fmt.type == "json_object":
        return JsonSchema(ANY_JSON_OBJECT, whitespace=whitespace)
    spec = fmt.json_schema
    if spec is None or spec.schema_ is None:
        raise bad_request(
            "response_format of type 'json_schema' needs json_schema.schema", param="response_format.json_schema"
        )
    return JsonSchema(spec.schema_, whitespace=whitespace, strict=spec.strict is not False)


def _single(sources: list[tuple[str, Any]]) -> tuple[Any, Optional[str]]:
    if len(sources) > 1:
        names = ", ".join(f"'{p}'" for p, _ in sources)
        raise bad_request(f"pass at most one output constraint, got {names}", param=sources[1][0])
    return sources[0][1] if sources else None, sources[0][0] if sources else None


def chat_messages(messages: list[ChatMessage], tools: ToolPlan) -> list[dict[str, str]]:
    """Messages as ``{"role", "content"}`` string dicts; tool instructions join the system message."""
    out = [{"role": _role(m), "content": _content(m, i)} for i, m in enumerate(messages)]
    if tools.mode != "none":
        extra = tool_system_prompt(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": (out[0]["content"] + "\n\n" + extra).strip()}
        else:
            out.insert(0, {"role": "system", "content": extra})
    return out


def _role(m: ChatMessage) -> str:
    return "system" if m.role == "developer" else m.role


def _content(m: ChatMessage, index: int) -> str:
    if m.tool_calls:
        calls = render_tool_calls(m.tool_calls)
        return calls if not m.content else f"{_text_of(m.content, index)}\n{calls}"
    return _text_of(m.content, index)


def _text_of(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for j, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise APIError(
                f"content part of type {kind!r} is not supported; only text parts are",
                param=f"messages[{index}].content[{j}]",
                code="unsupported_content",
            )
    return "".join(parts)


def _completion_prompts(prompt: Any) -> list[Any]:
    """A str, a list of str, a list of token ids, or a list of token-id lists → list of prompts."""
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise bad_request("'prompt' must not be empty", param="prompt")
    if all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    if any(isinstance(p, list) and not p for p in prompt):
        raise bad_request("token-id prompts must not be empty", param="prompt")
    return list(prompt)
