"""LangChain messages to structgen / OpenAI chat messages."""

from __future__ import annotations

import json
from typing import Any, Sequence

from ..errors import RequestError
from ._lc_tools import render_call

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool", "function": "tool",
          "developer": "system", "chat": None}  # fmt: skip


def text_of(content: Any) -> str:
    """The text of a message's content (a str, or a list of blocks of which only text is accepted)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") in ("text", "text-plain"):
            parts.append(block.get("text", ""))
        elif isinstance(block, dict) and block.get("type") in ("tool_use", "tool_call", "reasoning"):
            continue
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise RequestError(f"ChatStructgen takes text content only; got a {kind!r} content block")
    return "".join(parts)


def _role(message: Any) -> str:
    role = _ROLES.get(message.type, "user")
    if role is None:
        role = getattr(message, "role", "user")
    return role


def to_local(messages: Sequence[Any]) -> list[dict[str, str]]:
    """``{"role", "content"}`` messages for the model's chat template; past tool calls as JSON text."""
    out = []
    for m in messages:
        text = text_of(m.content)
        calls = getattr(m, "tool_calls", None) or []
        if calls:
            text = "\n".join(([text] if text else []) + [render_call(c) for c in calls])
        out.append({"role": _role(m), "content": text})
    return out


def to_openai(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """OpenAI chat messages (assistant ``tool_calls``, ``tool`` messages with ``tool_call_id``)."""
    out = []
    for m in messages:
        msg: dict[str, Any] = {"role": _role(m), "content": text_of(m.content)}
        calls = getattr(m, "tool_calls", None) or []
        if calls:
            msg["tool_calls"] = [
                {"id": c.get("id") or f"call_{i}", "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c.get("args", {}))}}
                for i, c in enumerate(calls)
            ]  # fmt: skip
        if msg["role"] == "tool":
            msg["tool_call_id"] = getattr(m, "tool_call_id", "") or ""
        out.append(msg)
    return out
