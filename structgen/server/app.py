"""The FastAPI application: ``create_app(runtime)``.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /health``, ``GET /metrics``. Handlers plan the request (``openai_adapter``), submit every
choice to the runtime in a worker thread (constraints compile there, so an invalid or unsupported
constraint is a 400 before anything is queued), then await the results or stream them
(``bridge`` / ``streaming``). Errors always have OpenAI's shape (``errors.py``).
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ConstraintError, RegexError, RequestError, SchemaError
from . import metrics as metrics_mod
from .bridge import ClientDisconnected, RuntimeBridge, cancel_all
from .errors import APIError, bad_request, from_validation_errors
from .openai_adapter import GenPlan, plan_chat, plan_completion
from .protocol import ChatCompletionRequest, CompletionRequest
from .responses import chat_response, completion_response, new_id
from .streaming import StreamContext, abort_error, guarded, stream_chat, stream_completion

log = logging.getLogger(__name__)


@dataclass
class ServerState:
    """What the handlers share. ``owns_runtime``: shut the runtime down with the app."""

    runtime: Any
    model_name: str
    default_max_tokens: int
    request_factory: Callable[..., Any]
    owns_runtime: bool = False
    bridge: RuntimeBridge = field(init=False)
    metrics: metrics_mod.ServerMetrics = field(default_factory=metrics_mod.ServerMetrics)
    created: int = field(default_factory=lambda: int(time.time()))
    closing: bool = False
    _handles: dict = field(default_factory=dict)  # id -> handle, submitted and not yet answered

    def __post_init__(self):
        self.bridge = RuntimeBridge(self.runtime)

    async def submit(self, plan: GenPlan) -> list[Any]:
        """Submit every choice of ``plan``; constraint and request errors become 400s."""
        if self.closing:
            raise APIError("the server is shutting down", status=503, type="server_error", code="shutting_down")
        try:
            handles = await self.bridge.submit(plan.requests(self.request_factory))
        except ConstraintError as e:
            raise bad_request(str(e), param=plan.constraint_param, code=_constraint_code(e)) from None
        except RequestError as e:
            raise bad_request(str(e), code="invalid_request") from None
        for h in handles:
            self._handles[id(h)] = h
        return handles

    def release(self, handles: list[Any]) -> None:
        """Forget answered (or abandoned) handles."""
        for h in handles:
            self._handles.pop(id(h), None)

    def is_closing(self) -> bool:
        return self.closing

    def begin_drain(self) -> None:
        """Refuse new requests (503) and report unhealthy; requests in flight go on."""
        self.closing = True

    def abort_in_flight(self) -> int:
        """Cancel every request still in flight; each answers 503 (or an SSE error event)."""
        handles = list(self._handles.values())
        if handles:
            log.warning("aborting %d request(s) still running at shutdown", len(handles))
        cancel_all(handles)
        return len(handles)

    def close(self) -> None:
        self.closing = True
        if self.owns_runtime:
            log.info("shutting the runtime down")
            self.runtime.shutdown()
        self.bridge.close()


def _constraint_code(e: ConstraintError) -> str:
    if isinstance(e, SchemaError):
        return "invalid_schema"
    return "invalid_regex" if isinstance(e, RegexError) else "invalid_constraint"


def _default_request_factory() -> Callable[..., Any]:
    from ..engine.request import GenerateRequest

    return GenerateRequest


def create_app(
    runtime: Any,
    *,
    model_name: Optional[str] = None,
    default_max_tokens: int = 512,
    request_factory: Optional[Callable[..., Any]] = None,
    owns_runtime: bool = False,
) -> FastAPI:
    """A FastAPI app serving ``runtime`` (anything with the ``Runtime`` contract).

    model_name: the id ``/v1/models`` lists (requests may name any model; it is echoed back).
    default_max_tokens: used when a request sets neither ``max_tokens`` nor ``max_completion_tokens``.
    request_factory: builds one request from keyword arguments (default ``GenerateRequest``).
    owns_runtime: call ``runtime.shutdown()`` when the app shuts down (SIGTERM under uvicorn);
        requests still running then finish with HTTP 503 / an SSE error event.
    """
    state = ServerState(
        runtime=runtime,
        model_name=model_name or getattr(runtime, "model_name", None) or "structgen",
        default_max_tokens=default_max_tokens,
        request_factory=request_factory or _default_request_factory(),
        owns_runtime=owns_runtime,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.close()

    app = FastAPI(title="structgen", lifespan=lifespan)
    app.state.structgen = state
    app.add_middleware(_MetricsMiddleware, metrics=state.metrics)
    _install_error_handlers(app)
    _add_info_routes(app, state)
    _add_generation_routes(app, state)
    return app


def _add_info_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health")
    async def health():
        if state.closing:
            return JSONResponse({"status": "shutting_down"}, status_code=503)
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        card = {"id": state.model_name, "object": "model", "created": state.created, "owned_by": "structgen"}
        return {"object": "list", "data": [card]}

    @app.get("/metrics")
    async def metrics():
        stats = state.runtime.stats()
        return PlainTextResponse(metrics_mod.render(state.metrics, stats), media_type=metrics_mod.CONTENT_TYPE)


def _add_generation_routes(app: FastAPI, state: ServerState) -> None:
    tokenizer = state.runtime.tokenizer

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        plan = plan_chat(body, default_max_tokens=state.default_max_tokens)
        handles = await state.submit(plan)
        model = body.model or state.model_name
        if body.stream:
            ctx = StreamContext(new_id("chatcmpl"), model, plan, tokenizer, _include_usage(body), state.is_closing)
            return _sse(guarded(stream_chat(state.bridge, handles, ctx), handles, state.release))
        results = await _results(state, handles, request)
        if isinstance(results, Response):
            return results
        return JSONResponse(chat_response(new_id("chatcmpl"), model, results, plan.n, plan.tools, tokenizer, plan.logprobs))

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        plan = plan_completion(body, default_max_tokens=state.default_max_tokens)
        echoes = [_echo_text(p, tokenizer) if plan.echo else "" for p in plan.prompts for _ in range(plan.n)]
        handles = await state.submit(plan)
        model = body.model or state.model_name
        if body.stream:
            ctx = StreamContext(new_id("cmpl"), model, plan, tokenizer, _include_usage(body), state.is_closing)
            return _sse(guarded(stream_completion(state.bridge, handles, ctx, echoes), handles, state.release))
        results = await _results(state, handles, request)
        if isinstance(results, Response):
            return results
        return JSONResponse(completion_response(new_id("cmpl"), model, results, plan.n, echoes, tokenizer, plan.logprobs))


async def _results(state: ServerState, handles: list[Any], request: Request) -> Any:
    """All results, or a 499 response when the client went away (its requests are cancelled)."""
    try:
        results = await state.bridge.results(handles, request.is_disconnected)
    except ClientDisconnected:
        return Response(status_code=499)
    except (ConstraintError, RequestError) as e:  # raised by the engine when it admits the request
        raise bad_request(str(e), code="invalid_request") from None
    finally:
        state.release(handles)
    for r in results:
        if r.finish_reason == "abort":
            raise abort_error(r, state.closing)
    return results


def _include_usage(body: Any) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


def _echo_text(prompt: Any, tokenizer: Any) -> str:
    return prompt if isinstance(prompt, str) else tokenizer.decode(prompt)


def _sse(events: Any) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        err = from_validation_errors(list(exc.errors()))
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        err = APIError(str(exc.detail), status=exc.status_code, type=kind)
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("unhandled error answering %s", request.url.path)
        err = APIError(f"internal error: {type(exc).__name__}: {exc}", status=500, type="server_error")
        return JSONResponse(err.body(), status_code=500)


_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/models")


class _MetricsMiddleware:
    """Counts every ``/v1/`` request by endpoint and status, timing it to the last byte sent."""

    def __init__(self, app: Any, metrics: metrics_mod.ServerMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.metrics.started()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope["path"] if scope["path"] in _ENDPOINTS else "other"
            self.metrics.observe(path, status[0], time.perf_counter() - start)
