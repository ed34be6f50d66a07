"""Tool calling: the tool prompt, the tool-call constraint, and parsing a call back.

A tool call is generated as one JSON object ``{"name": <tool name>, "arguments": {...}}``.
With ``tool_choice="required"`` (or a named function) the output is constrained to exactly that:
a JSON Schema ``anyOf`` with one branch per allowed tool, each fixing ``name`` by ``const`` and
``arguments`` by the tool's parameter schema. With ``"auto"`` the output is unconstrained and
is returned as a tool call only when it parses as such a call of a declared tool.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .errors import bad_request
from .protocol import Tool

ANY_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class ToolPlan:
    """What a request's tools imply. ``mode``: ``"none"`` (ignore tools), ``"auto"``, ``"forced"``."""

    mode: str
    tools: tuple[Tool, ...] = ()
    schema: Optional[dict] = None  # the call constraint, set when mode == "forced"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.function.name for t in self.tools)


def plan_tools(tools: Optional[Sequence[Tool]], tool_choice: Any) -> ToolPlan:
    """Resolve ``tools`` + ``tool_choice`` (OpenAI semantics; ``auto`` is the default with tools)."""
    tools = tuple(tools or ())
    if not tools:
        if tool_choice not in (None, "none"):
            raise bad_request("'tool_choice' needs a non-empty 'tools' list", param="tool_choice")
        return ToolPlan("none")
    names = [t.function.name for t in tools]
    if len(set(names)) != len(names):
        raise bad_request(f"tool names must be unique, got {names}", param="tools")
    if tool_choice == "none":
        return ToolPlan("none", tools)
    if tool_choice in (None, "auto"):
        return ToolPlan("auto", tools)
    if tool_choice == "required":
        return ToolPlan("forced", tools, call_schema(tools))
    chosen = [t for t in tools if t.function.name == tool_choice.function.name]
    if not chosen:
        raise bad_request(
            f"tool_choice names function {tool_choice.function.name!r}, which is not in 'tools' ({names})",
            param="tool_choice",
        )
    return ToolPlan("forced", tuple(chosen), call_schema(chosen))


def call_schema(tools: Sequence[Tool]) -> dict:
    """JSON Schema of one call of any of ``tools`` (``anyOf`` over tools when several)."""
    branches = [_branch(t) for t in tools]
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def _branch(tool: Tool) -> dict:
    params = tool.function.parameters
    if params is None or params == {}:
        params = ANY_OBJECT
    return {
        "type": "object",
        "properties": {"name": {"const": tool.function.name}, "arguments": params},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def tool_system_prompt(plan: ToolPlan) -> str:
    """Instructions listing the tools, added to the system message."""
    specs = [
        {"name": t.function.name, "description": t.function.description or "", "parameters": t.function.parameters or ANY_OBJECT}
        for t in plan.tools
    ]
    head = "You can call the following tools:\n" + json.dumps(specs, ensure_ascii=False, indent=1) + "\n"
    how = 'To call a tool, reply with only a JSON object {"name": <tool name>, "arguments": <arguments object>}.'
    if plan.mode == "auto":
        how += " If no tool is needed, answer in plain text."
    return head + how


def parse_tool_call(text: str, plan: ToolPlan) -> Optional[dict]:
    """The OpenAI ``tool_calls`` entry for ``text`` when it is a call of a declared tool, else None."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(obj, dict) or obj.get("name") not in plan.names or not isinstance(obj.get("arguments"), dict):
        return None
    return {
        "id": "call_" + uuid.uuid4().hex[:24],
        "type": "function",
        "function": {"name": obj["name"], "arguments": json.dumps(obj["arguments"], ensure_ascii=False)},
    }


def render_tool_calls(calls: Sequence[Any]) -> str:
    """Assistant-history text for earlier calls, in the same format the model is asked to produce."""
    out = []
    for c in calls:
        try:
            args = json.loads(c.function.arguments)
        except json.JSONDecodeError:
            args = c.function.arguments
        out.append(json.dumps({"name": c.function.name, "arguments": args}, ensure_ascii=False))
    return "\n".join(out)
