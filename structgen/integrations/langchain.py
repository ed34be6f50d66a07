"""``ChatStructgen``: structgen as a langchain-core chat model (``pip install "structgen[langchain]"``).

    from structgen.integrations.langchain import ChatStructgen
    llm = ChatStructgen()                                   # the embedded default model, loaded once
    llm = ChatStructgen(model="./Llama-3.2-1B-Instruct")    # another local model
    llm = ChatStructgen(runtime=rt)                         # an existing structgen Runtime
    llm = ChatStructgen(base_url="http://host:30000/v1")    # a structgen server (OpenAI API, httpx)
    person = llm.with_structured_output(Person).invoke("Extract: Ann is 31.")

``with_structured_output`` is enforced, not hoped for: the request carries the schema as a
constraint (compiled into the token automaton locally, or sent as ``response_format`` to a
server), so the output is valid JSON for the schema unless ``max_tokens`` cuts it. Tool calls
forced by ``bind_tools(..., tool_choice=...)`` are constrained the same way. ``_stream`` yields
the text deltas of ``RequestHandle.stream()``; a tool call arrives whole in the last chunk.
"""

from __future__ import annotations

import json
from operator import itemgetter
from typing import Any, Iterator, Literal, Optional, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from ..constraints import JsonSchema
from ..errors import GenerationError, RequestError
from ._lc_backend import Completion, LocalBackend, RemoteBackend
from ._lc_messages import to_local, to_openai
from ._lc_tools import ToolPlan, parse_call, plan_tools, tool_system_prompt

DEFAULT_MODEL_LABEL = "SmolLM2-135M-Instruct"
CONSTRAINT_KWARG = "structgen_constraint"
METHODS = ("json_schema", "function_calling", "json_mode")


class ChatStructgen(BaseChatModel):
    """A LangChain chat model backed by structgen.

    Give at most one source: ``model`` (a model folder, ``.gguf`` file or hub id; loaded once per
    process and shared), ``runtime`` (a ``structgen.Runtime``), or ``base_url`` (a structgen
    server's OpenAI API, e.g. ``http://127.0.0.1:30000/v1``; then ``model`` is the served model
    name). None: the embedded default model, loaded on first use and shared.
    """

    model_name: Optional[str] = Field(default=None, alias="model")
    """Model path / hub id (local), or the served model name (with ``base_url``)."""
    runtime: Any = Field(default=None, exclude=True)
    """An existing ``structgen.Runtime`` to generate with."""
    base_url: Optional[str] = None
    """URL of a structgen server's OpenAI API (``.../v1``)."""
    api_key: Optional[SecretStr] = None
    """Sent as a bearer token to ``base_url`` (a structgen server does not check it)."""
    device: str = "auto"
    """Device of a model loaded from ``model`` or the default model: ``auto``, ``cpu``, ``cuda``."""
    temperature: float = 0.0
    """0 is greedy."""
    max_tokens: Optional[int] = 256
    """Most tokens generated per call (None: 256)."""
    top_p: float = 1.0
    top_k: int = 0
    seed: Optional[int] = None
    stop: Optional[list[str]] = None
    """Strings that end the output (the output is cut before them)."""
    timeout: Optional[float] = None
    """Seconds to wait for one answer (None: no limit)."""
    max_retries: int = 2
    """Connection retries towards ``base_url``."""
    streaming: bool = False
    """When True, ``invoke`` streams internally (callbacks see each delta)."""
    whitespace: Literal["default", "compact"] = "compact"
    """JSON whitespace policy of structured output and tool calls (see ``structgen.JsonSchema``)."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)
    _backend: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_source(self) -> "ChatStructgen":
        if self.runtime is not None and (self.model_name is not None or self.base_url is not None):
            raise ValueError("give ChatStructgen one of runtime=, model= or base_url= (model= may go with base_url=)")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        return self

    # ---- LangChain plumbing --------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "structgen"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self._label(), "base_url": self.base_url, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "top_p": self.top_p, "seed": self.seed}

    def _get_ls_params(self, stop: Optional[list[str]] = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="structgen", ls_model_name=kwargs.get("model") or self._label(),
                                 ls_model_type="chat", ls_temperature=kwargs.get("temperature", self.temperature))
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _label(self) -> str:
        if self.model_name:
            return self.model_name
        if self.runtime is not None:
            return getattr(getattr(self.runtime, "runner", None), "name", None) or DEFAULT_MODEL_LABEL
        return DEFAULT_MODEL_LABEL

    def backend(self) -> Any:
        """The ``LocalBackend`` or ``RemoteBackend`` requests go to (built, and a model loaded, on first use)."""
        if self._backend is None:
            if self.base_url is not None:
                key = self.api_key.get_secret_value() if self.api_key else None
                self._backend = RemoteBackend(self.base_url, self.model_name or "default", key, self.timeout,
                                              self.max_retries)
            else:
                from . import shared_runtime

                rt = self.runtime if self.runtime is not None else shared_runtime(self.model_name, self.device)
                self._backend = LocalBackend(rt, self.timeout)
        return self._backend

    # ---- requests ------------------------------------------------------------------------------
    def _prepare(self, messages: Sequence[BaseMessage], stop: Optional[list[str]], kwargs: dict) -> tuple:
        """(chat messages, constraint, sampling options, tool plan) of one call."""
        plan = plan_tools(kwargs.get("tools"), kwargs.get("tool_choice"))
        constraint = kwargs.get(CONSTRAINT_KWARG)
        if plan.mode == "forced":
            if constraint is not None:
                raise RequestError("a forced tool call and with_structured_output cannot be combined in one call")
            constraint = JsonSchema(plan.schema, whitespace=self.whitespace)
        elif isinstance(constraint, dict):
            constraint = JsonSchema(constraint, whitespace=self.whitespace)
        remote = self.base_url is not None
        chat = to_openai(messages) if remote else to_local(messages)
        if plan.mode != "none":
            chat = _with_system(chat, tool_system_prompt(plan))
        options = {
            "max_tokens": kwargs.get("max_tokens", self.max_tokens) or 256,
            "temperature": kwargs.get("temperature", self.temperature), "top_p": kwargs.get("top_p", self.top_p),
            "top_k": kwargs.get("top_k", self.top_k), "seed": kwargs.get("seed", self.seed),
            "stop": tuple(stop if stop is not None else (self.stop or ())),
        }  # fmt: skip
        return chat, constraint, options, plan

    def _message(self, done: Completion, plan: ToolPlan, chunk: bool = False) -> AIMessage | AIMessageChunk:
        """The answer as a message: a tool call when ``plan`` allows one and the text is a call."""
        call = parse_call(done.text, plan) if plan.mode != "none" else None
        if plan.mode == "forced" and call is None:
            raise GenerationError(
                f"the forced tool call was cut off ({done.finish_reason!r} after {done.completion_tokens} tokens); "
                "raise max_tokens", text=done.text, finish_reason=done.finish_reason,
            )
        meta = {"finish_reason": "tool_calls" if call else done.finish_reason, "model_name": self._label(),
                "model_provider": "structgen"}
        usage = {"input_tokens": done.prompt_tokens, "output_tokens": done.completion_tokens,
                 "total_tokens": done.prompt_tokens + done.completion_tokens}
        content = "" if call else done.text
        if not chunk:
            return AIMessage(content=content, tool_calls=[call] if call else [], usage_metadata=usage,
                             response_metadata=meta)
        calls = [{"name": call["name"], "args": json.dumps(call["args"]), "id": call["id"], "index": 0,
                  "type": "tool_call_chunk"}] if call else []
        return AIMessageChunk(content=content, tool_call_chunks=calls, usage_metadata=usage,
                              response_metadata=meta, chunk_position="last")

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                  run_manager: Optional[CallbackManagerForLLMRun] = None, **kwargs: Any) -> ChatResult:
        chat, constraint, options, plan = self._prepare(messages, stop, kwargs)
        done = self.backend().complete(chat, constraint, options)
        message = self._message(done, plan)
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"model_name": self._label()})

    def _stream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                run_manager: Optional[CallbackManagerForLLMRun] = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        chat, constraint, options, plan = self._prepare(messages, stop, kwargs)
        for item in self.backend().stream(chat, constraint, options):
            if isinstance(item, Completion):
                last = self._message(item, plan, chunk=True)
                if plan.mode == "none":
                    last.content = ""  # the text went out as deltas
                yield ChatGenerationChunk(message=last)
                return
            if plan.mode != "none":
                continue  # a possible tool call is only known once complete
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=item))
            if run_manager is not None:
                run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk

    # ---- tools and structured output -----------------------------------------------------------
    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable:
        """Bind tools (LangChain tools, functions, pydantic classes, TypedDicts or OpenAI tool dicts).

        tool_choice: None/"auto" (the model may answer or call), "any"/"required"/True (a call is
        forced and constrained to the tools' schemas), a tool name (a call of it is forced), "none".
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        plan_tools(formatted, tool_choice)  # bad tool_choice fails here
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(self, schema: Any, *, include_raw: bool = False, method: str = "json_schema",
                               strict: Optional[bool] = None, **kwargs: Any) -> Runnable:
        """A runnable whose output is ``schema``-shaped: a pydantic instance, or a dict (TypedDict / JSON Schema).

        Every method (``json_schema``, ``function_calling``, ``json_mode``) is enforced the same way:
        the request carries ``schema`` as a constraint. ``strict=False`` lets keywords structgen
        cannot enforce be dropped with a warning instead of raising ``SchemaError``.
        include_raw: return ``{"raw": AIMessage, "parsed": value | None, "parsing_error": Exception | None}``.
        """
        if kwargs:
            raise ValueError(f"unsupported arguments: {sorted(kwargs)}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        json_schema = _as_json_schema(schema)
        constraint = JsonSchema(json_schema, whitespace=self.whitespace, strict=strict is not False)
        llm = self.bind(**{CONSTRAINT_KWARG: constraint}, ls_structured_output_format={
            "kwargs": {"method": method, "strict": strict}, "schema": _traced_schema(schema, json_schema)})
        parser = PydanticOutputParser(pydantic_object=schema) if _is_pydantic(schema) else JsonOutputParser()
        parse = RunnableLambda(parser.invoke)  # parses the whole message, also when streaming
        if not include_raw:
            return llm | parse
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parse, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")


def _is_pydantic(schema: Any) -> bool:
    return isinstance(schema, type) and (hasattr(schema, "model_json_schema") or hasattr(schema, "__fields__"))


def _as_json_schema(schema: Any) -> dict:
    """The JSON Schema a pydantic class, TypedDict, JSON Schema dict or OpenAI tool dict describes."""
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        return schema.model_json_schema()
    if isinstance(schema, dict) and not {"function", "parameters"} & set(schema):
        return schema
    return convert_to_json_schema(schema)  # TypedDict, pydantic v1, OpenAI tool dicts


def _traced_schema(schema: Any, json_schema: dict) -> dict:
    """The schema reported to tracing callbacks: LangChain's own conversion where it has one."""
    try:
        return convert_to_json_schema(schema)
    except ValueError:  # e.g. a JSON Schema dict without a top-level "title"
        return json_schema


def _with_system(chat: list[dict], text: str) -> list[dict]:
    if chat and chat[0]["role"] == "system":
        return [{**chat[0], "content": text + "\n\n" + chat[0]["content"]}, *chat[1:]]
    return [{"role": "system", "content": text}, *chat]
