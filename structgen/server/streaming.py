"""Server-sent events for ``stream=true``: ``data: {chunk}`` lines, then ``data: [DONE]``.

Every choice's handle is drained by its own task into one queue, so the ``n`` choices stream
interleaved as tokens arrive. Chat: the first chunk of each choice carries the role, content
deltas follow, and the last carries ``finish_reason`` (and the choice's ``logprobs`` when asked).
A forced tool call is held back and sent whole as a ``tool_calls`` delta when it is complete; under
``tool_choice="auto"`` text is held back only while it could still be a call (it starts with
``{``). With ``stream_options.include_usage`` a last chunk with no choices carries the usage.
If the consumer stops early (client disconnect), the unfinished handles are cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Optional, Sequence

from .bridge import RuntimeBridge, cancel_all
from .errors import APIError
from .openai_adapter import GenPlan
from .responses import (
    chat_chunk, chat_logprobs, chat_message, completion_chunk, completion_logprobs, usage_chunk, usage_of,
)
from .tools import ToolPlan

log = logging.getLogger(__name__)

DONE = "data: [DONE]\n\n"


def sse(obj: dict[str, Any]) -> str:
    return "data: " + json.dumps(obj, ensure_ascii=False) + "\n\n"


def as_api_error(e: Exception) -> APIError:
    """``e`` itself when it is an ``APIError``, else a 500 ``server_error`` describing it."""
    if isinstance(e, APIError):
        return e
    log.error("generation failed: %s: %s", type(e).__name__, e)
    return APIError(f"generation failed: {type(e).__name__}: {e}", status=500, type="server_error", code="engine_error")


async def guarded(events: AsyncIterator[str], handles: Sequence[Any],
                  release: Callable[[Sequence[Any]], None]) -> AsyncIterator[str]:
    """Yield from ``events``; if it does not run to its end (the client went away before or
    while streaming, or the task was cancelled), cancel every handle. ``release(handles)`` last."""
    complete = False
    try:
        async with aclosing(events):
            async for item in events:
                yield item
        complete = True
    finally:
        if not complete:
            cancel_all(handles)
        release(handles)


def abort_error(result: Any, closing: bool) -> APIError:
    """Why an aborted generation did not finish: server shutdown (503) or an engine failure (500)."""
    error = getattr(result, "error", None)
    if error and not closing:
        return APIError(f"generation failed: {error}", status=500, type="server_error", code="engine_error")
    return APIError("the server is shutting down; retry the request", status=503, type="server_error",
                    code="shutting_down")


@dataclass
class StreamContext:
    rid: str
    model: str
    plan: GenPlan
    tokenizer: Any
    include_usage: bool
    is_closing: Callable[[], bool] = lambda: False

    def __post_init__(self):
        self.created = int(time.time())


async def _pump(bridge: RuntimeBridge, index: int, handle: Any, queue: asyncio.Queue) -> None:
    try:
        async for delta in bridge.stream(handle):
            await queue.put(("delta", index, delta))
        await queue.put(("done", index, await bridge.result(handle)))
    except Exception as e:
        await queue.put(("error", index, e))


async def _events(bridge: RuntimeBridge, handles: Sequence[Any]) -> AsyncIterator[tuple[str, int, Any]]:
    """(``"delta"``, i, text) and (``"done"``, i, result) events of all handles, as they come."""
    queue: asyncio.Queue = asyncio.Queue()
    tasks = [asyncio.create_task(_pump(bridge, i, h, queue)) for i, h in enumerate(handles)]
    remaining, finished = len(handles), False
    try:
        while remaining:
            kind, i, payload = await queue.get()
            if kind == "error":
                raise payload
            remaining -= kind == "done"
            yield kind, i, payload
        finished = True
    finally:
        if not finished:
            cancel_all(handles)
        for t in tasks:
            t.cancel()


class _ChoiceText:
    """Per-choice decision: stream deltas as content now, or hold them as a possible tool call."""

    def __init__(self, tools: ToolPlan):
        self.tools = tools
        self.streaming = tools.mode == "none"
        self.held = ""

    def feed(self, delta: str) -> Optional[str]:
        if self.streaming:
            return delta
        self.held += delta
        if self.tools.mode == "auto" and self.held.strip() and not self.held.lstrip().startswith("{"):
            self.streaming, out, self.held = True, self.held, ""
            return out
        return None

    def finish(self, result: Any) -> tuple[dict[str, Any], str]:
        """The last delta of the choice and its finish_reason."""
        if self.streaming:
            return {}, result.finish_reason
        message, finish = chat_message(result.text, result.finish_reason, self.tools)
        if message.get("tool_calls"):
            return {"tool_calls": [dict(message["tool_calls"][0], index=0)]}, finish
        return {"content": self.held}, finish


async def stream_chat(bridge: RuntimeBridge, handles: Sequence[Any], ctx: StreamContext) -> AsyncIterator[str]:
    """SSE text of a streamed chat completion."""
    rid, model, created, plan = ctx.rid, ctx.model, ctx.created, ctx.plan
    texts = [_ChoiceText(plan.tools) for _ in handles]
    results: list[Any] = [None] * len(handles)
    for i in range(len(handles)):
        yield sse(chat_chunk(rid, model, created, i, {"role": "assistant", "content": ""}, with_usage=ctx.include_usage))
    try:
        async with aclosing(_events(bridge, handles)) as events:
            async for kind, i, payload in events:
                if kind == "delta":
                    out = texts[i].feed(payload)
                    if out:
                        yield sse(chat_chunk(rid, model, created, i, {"content": out}, with_usage=ctx.include_usage))
                    continue
                results[i] = payload
                if payload.finish_reason == "abort":
                    raise abort_error(payload, ctx.is_closing())
                delta, finish = texts[i].finish(payload)
                lp = chat_logprobs(payload, ctx.tokenizer) if plan.logprobs else None
                yield sse(chat_chunk(rid, model, created, i, delta, finish, lp, with_usage=ctx.include_usage))
    except Exception as e:  # noqa: BLE001 - headers are sent: report the failure as an SSE error event
        yield sse(as_api_error(e).body())
        return
    if ctx.include_usage:
        yield sse(usage_chunk(rid, model, created, "chat.completion.chunk", usage_of(results, plan.n)))
    yield DONE


async def stream_completion(bridge: RuntimeBridge, handles: Sequence[Any], ctx: StreamContext,
                            echoes: Sequence[str]) -> AsyncIterator[str]:
    """SSE text of a streamed legacy completion; ``echoes[i]`` is sent first for choice ``i``."""
    rid, model, created, plan = ctx.rid, ctx.model, ctx.created, ctx.plan
    results: list[Any] = [None] * len(handles)
    for i, echo in enumerate(echoes):
        if echo:
            yield sse(completion_chunk(rid, model, created, i, echo, with_usage=ctx.include_usage))
    try:
        async with aclosing(_events(bridge, handles)) as events:
            async for kind, i, payload in events:
                if kind == "delta":
                    if payload:
                        yield sse(completion_chunk(rid, model, created, i, payload, with_usage=ctx.include_usage))
                    continue
                results[i] = payload
                if payload.finish_reason == "abort":
                    raise abort_error(payload, ctx.is_closing())
                lp = completion_logprobs(payload, ctx.tokenizer, len(echoes[i])) if plan.logprobs else None
                yield sse(completion_chunk(rid, model, created, i, "", payload.finish_reason, lp, ctx.include_usage))
    except Exception as e:  # noqa: BLE001 - headers are sent: report the failure as an SSE error event
        yield sse(as_api_error(e).body())
        return
    if ctx.include_usage:
        yield sse(usage_chunk(rid, model, created, "text_completion", usage_of(results, plan.n)))
    yield DONE
