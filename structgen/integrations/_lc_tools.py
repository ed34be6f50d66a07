"""Tool calling for ``ChatStructgen``: tool schemas, ``tool_choice``, the call constraint, parsing.

A call is generated as one JSON object ``{"name": <tool>, "arguments": {...}}`` — the same form
the structgen server uses. When ``tool_choice`` forces a call, the output is constrained to
exactly that: an ``anyOf`` with one branch per allowed tool, each fixing ``name`` by ``const``
and ``arguments`` by the tool's parameter schema. With ``"auto"`` the output is free, and is a
tool call only when it parses as a call of a declared tool.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import RequestError

ANY_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class ToolPlan:
    """``mode``: "none", "auto" or "forced"; ``tools``: OpenAI tool dicts; ``schema``: the forced call's schema."""

    mode: str
    tools: tuple[dict, ...] = ()
    schema: dict | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t["function"]["name"] for t in self.tools)


def plan_tools(tools: Sequence[dict] | None, tool_choice: Any) -> ToolPlan:
    """Resolve OpenAI-format ``tools`` and a LangChain ``tool_choice``.

    tool_choice: None/"auto" (free), "none" (tools ignored), "any"/"required"/True (a call of any
    tool is forced), a tool name or ``{"type": "function", "function": {"name": ...}}`` (a call of
    that tool is forced).
    """
    tools = tuple(tools or ())
    if not tools:
        return ToolPlan("none")
    if tool_choice in (None, "auto", False):
        return ToolPlan("auto", tools)
    if tool_choice == "none":
        return ToolPlan("none", tools)
    if tool_choice in ("any", "required", True):
        return ToolPlan("forced", tools, call_schema(tools))
    name = tool_choice["function"]["name"] if isinstance(tool_choice, dict) else tool_choice
    chosen = tuple(t for t in tools if t["function"]["name"] == name)
    if not chosen:
        raise RequestError(f"tool_choice names {name!r}, which is not a bound tool ({[t['function']['name'] for t in tools]})")
    return ToolPlan("forced", chosen, call_schema(chosen))


def call_schema(tools: Sequence[dict]) -> dict:
    """JSON Schema of one call of any of ``tools``."""
    branches = [_branch(t["function"]) for t in tools]
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def _branch(function: dict) -> dict:
    params = function.get("parameters") or ANY_OBJECT
    params = {k: v for k, v in params.items() if k not in ("title", "description")}
    if params.get("type") == "object" and "additionalProperties" not in params:
        params["additionalProperties"] = False  # as OpenAI's strict function calling: declared arguments only
    return {
        "type": "object",
        "properties": {"name": {"const": function["name"]}, "arguments": params},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def tool_system_prompt(plan: ToolPlan) -> str:
    """Instructions that list the tools as signatures and give the call format (a system message)."""
    lines = ["You can call these tools. To call one, answer with only a JSON object "
             '{"name": <tool name>, "arguments": {<argument>: <value>, ...}}.']
    for t in plan.tools:
        f = t["function"]
        lines.append(f"- {f['name']}({_signature(f.get('parameters') or ANY_OBJECT)}): {f.get('description', '')}".rstrip(": "))
    return "\n".join(lines)


def _signature(params: dict) -> str:
    """``a: integer, b: string`` from a parameters schema (types only; the constraint holds the rest)."""
    props = params.get("properties") or {}
    return ", ".join(f"{name}: {spec.get('type', 'any') if isinstance(spec, dict) else 'any'}" for name, spec in props.items())


def parse_call(text: str, plan: ToolPlan) -> dict | None:
    """A LangChain tool call ``{"name", "args", "id", "type"}`` if ``text`` is a call of a bound tool."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    if not (isinstance(value, dict) and value.get("name") in plan.names and isinstance(value.get("arguments"), dict)):
        return None
    return {"name": value["name"], "args": value["arguments"], "id": "call_" + uuid.uuid4().hex[:24], "type": "tool_call"}


def render_call(call: dict) -> str:
    """The JSON text a past tool call is shown to the model as."""
    return json.dumps({"name": call["name"], "arguments": call.get("args", {})})
