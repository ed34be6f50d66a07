"""``GenerationResult`` objects → OpenAI response bodies and stream chunks.

Choice ``i`` of a response is result ``i`` (prompt-major, see ``GenPlan.requests``). Usage counts
each distinct prompt once, as OpenAI does for ``n`` > 1, and reports radix-cache hits as
``prompt_tokens_details.cached_tokens``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Optional, Sequence

from .protocol import make_usage
from .tools import ToolPlan, parse_tool_call


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage_of(results: Sequence[Any], n: int) -> dict[str, Any]:
    """Usage of ``results`` where every ``n`` consecutive results share one prompt."""
    firsts = results[::n] if n > 0 else results
    prompt = sum(int(r.prompt_tokens) for r in firsts)
    cached = sum(int(r.cached_tokens or 0) for r in firsts)
    completion = sum(int(r.completion_tokens) for r in results)
    return make_usage(prompt, completion, cached)


def chat_message(text: str, finish_reason: str, tools: ToolPlan) -> tuple[dict[str, Any], str]:
    """(assistant message, finish_reason); a text that is a call of a declared tool becomes ``tool_calls``."""
    if tools.mode in ("forced", "auto"):
        call = parse_tool_call(text, tools)
        if call is not None:
            return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}, "tool_calls"
    return {"role": "assistant", "content": text, "refusal": None}, finish_reason


def chat_logprobs(result: Any, tokenizer: Any) -> Optional[dict[str, Any]]:
    """``{"content": [{"token", "logprob", "bytes", "top_logprobs": []}, ...]}`` of the sampled tokens."""
    if result.logprobs is None:
        return None
    entries = []
    for tid, lp in zip(result.token_ids, result.logprobs):
        tok = tokenizer.decode([int(tid)])
        entries.append({"token": tok, "logprob": float(lp), "bytes": list(tok.encode("utf-8")), "top_logprobs": []})
    return {"content": entries}


def completion_logprobs(result: Any, tokenizer: Any, offset: int = 0) -> Optional[dict[str, Any]]:
    """Legacy ``logprobs`` object: ``tokens``, ``token_logprobs``, ``top_logprobs``, ``text_offset``."""
    if result.logprobs is None:
        return None
    tokens, offsets, pos = [], [], offset
    for tid in result.token_ids:
        tok = tokenizer.decode([int(tid)])
        tokens.append(tok)
        offsets.append(pos)
        pos += len(tok)
    return {
        "tokens": tokens,
        "token_logprobs": [float(x) for x in result.logprobs],
        "top_logprobs": None,
        "text_offset": offsets,
    }


def chat_response(rid: str, model: str, results: Sequence[Any], n: int, tools: ToolPlan,
                  tokenizer: Any, logprobs: bool) -> dict[str, Any]:
    """A ``chat.completion`` body."""
    choices = []
    for i, r in enumerate(results):
        message, finish = chat_message(r.text, r.finish_reason, tools)
        lp = chat_logprobs(r, tokenizer) if logprobs else None
        choices.append({"index": i, "message": message, "logprobs": lp, "finish_reason": finish})
    return {
        "id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": choices, "usage": usage_of(results, n), "system_fingerprint": None,
    }


def completion_response(rid: str, model: str, results: Sequence[Any], n: int, echoes: Sequence[str],
                        tokenizer: Any, logprobs: bool) -> dict[str, Any]:
    """A ``text_completion`` body; ``echoes[i]`` is prepended to choice ``i`` (empty unless ``echo``)."""
    choices = []
    for i, r in enumerate(results):
        prefix = echoes[i]
        lp = completion_logprobs(r, tokenizer, len(prefix)) if logprobs else None
        choices.append({"index": i, "text": prefix + r.text, "logprobs": lp, "finish_reason": r.finish_reason})
    return {
        "id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
        "choices": choices, "usage": usage_of(results, n), "system_fingerprint": None,
    }


def _chunk(rid: str, obj: str, model: str, created: int, choice: dict[str, Any], with_usage: bool) -> dict[str, Any]:
    chunk = {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice]}
    if with_usage:
        chunk["usage"] = None
    return chunk


def chat_chunk(rid: str, model: str, created: int, index: int, delta: dict[str, Any],
               finish_reason: Optional[str] = None, logprobs: Any = None, with_usage: bool = False) -> dict[str, Any]:
    """One ``chat.completion.chunk`` carrying ``delta`` for choice ``index``."""
    choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
    return _chunk(rid, "chat.completion.chunk", model, created, choice, with_usage)


def completion_chunk(rid: str, model: str, created: int, index: int, text: str,
                     finish_reason: Optional[str] = None, logprobs: Any = None, with_usage: bool = False) -> dict[str, Any]:
    """One streamed ``text_completion`` chunk for choice ``index``."""
    choice = {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}
    return _chunk(rid, "text_completion", model, created, choice, with_usage)


def usage_chunk(rid: str, model: str, created: int, obj: str, usage: dict[str, Any]) -> dict[str, Any]:
    """The final chunk sent with ``stream_options.include_usage``: no choices, the usage."""
    return {"id": rid, "object": obj, "created": created, "model": model, "choices": [], "usage": usage}
