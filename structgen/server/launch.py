"""Running the server: ``launch_server`` (blocking) and ``start_server`` (background thread).

Shutdown (SIGTERM / Ctrl-C under ``launch_server``, ``ServerHandle.stop()`` otherwise): the
server stops accepting connections, answers new requests on open connections with 503, and lets
requests in flight finish for up to ``graceful_timeout`` seconds; then it aborts those still
running, each of which gets an explicit 503 body (or an SSE error event if streaming), and
finally shuts down a runtime it created. Nothing waits forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from typing import Any, Optional

from ..errors import RequestError, ServerStartError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 30000


def build_runtime(model_path: Optional[str] = None, tp_size: int = 1, **engine_options: Any) -> Any:
    """A ``Runtime`` for ``model_path`` (None: the embedded default model) with ``engine_options``."""
    import dataclasses

    from ..engine.runtime import EngineConfig, Runtime

    if tp_size != 1:
        if "tp_size" not in {f.name for f in dataclasses.fields(EngineConfig)}:
            raise RequestError(f"tp_size={tp_size}: tensor parallelism is not supported by this engine; use tp_size=1")
        engine_options["tp_size"] = tp_size
    return Runtime(model_path=model_path, **engine_options)


def _make_server(app: Any, graceful_timeout: float, log_level: str) -> Any:
    import uvicorn

    class _Server(uvicorn.Server):
        """Drains the app, then aborts what is still running a little before uvicorn gives up."""

        async def shutdown(self, sockets: Any = None) -> None:
            state = app.state.structgen
            state.begin_drain()
            abort_at = max(graceful_timeout - 1.0, 0.0)
            timer = asyncio.get_running_loop().call_later(abort_at, state.abort_in_flight)
            try:
                await super().shutdown(sockets)
            finally:
                timer.cancel()

        @contextlib.contextmanager
        def capture_signals(self):
            """Like uvicorn's, but a SIGTERM/SIGINT that led to a clean shutdown is not re-raised
            afterwards, so the process exits with status 0."""
            with super().capture_signals():
                yield
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list) and self.started:
                    captured.clear()

    config = uvicorn.Config(
        app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=max(int(graceful_timeout), 1),
        timeout_keep_alive=5,
    )
    return _Server(config)


def _app_for(runtime: Any, owns_runtime: bool, model_name: Optional[str], model_path: Optional[str],
             default_max_tokens: int) -> Any:
    """The app; its model id is ``model_name``, else the runtime's, else the model file/dir name."""
    from .app import create_app

    name = model_name or getattr(runtime, "model_name", None)
    if not name and (owns_runtime or model_path):
        name = _name_of(model_path)
    return create_app(runtime, model_name=name, default_max_tokens=default_max_tokens, owns_runtime=owns_runtime)


def launch_server(
    model_path: Optional[str] = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    tp_size: int = 1,
    *,
    runtime: Any = None,
    model_name: Optional[str] = None,
    default_max_tokens: int = 512,
    graceful_timeout: float = 30.0,
    log_level: str = "info",
    **engine_options: Any,
) -> None:
    """Serve the OpenAI-compatible API on ``host:port`` until SIGTERM/SIGINT (blocking).

    ``runtime``: serve an existing runtime (kept alive on exit) instead of building one from
    ``model_path``, ``tp_size`` and ``engine_options`` (``EngineConfig`` fields).
    """
    owns = runtime is None
    if owns:
        runtime = build_runtime(model_path, tp_size, **engine_options)
    app = _app_for(runtime, owns, model_name, model_path, default_max_tokens)
    server = _make_server(app, graceful_timeout, log_level)
    log.info("serving on http://%s:%d/v1", host, port)
    server.config.host, server.config.port = host, port
    server.run()


class ServerHandle:
    """A server running in a background thread. ``url`` is ``http://host:port``; ``base_url``
    adds ``/v1`` (what the ``openai`` client takes). ``stop()`` is idempotent; use as a context
    manager to stop on exit."""

    def __init__(self, server: Any, thread: threading.Thread, host: str, port: int, runtime: Any):
        self._server = server
        self._thread = thread
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        self.base_url = self.url + "/v1"
        self.runtime = runtime

    def stop(self, timeout: float = 60.0) -> None:
        """Shut down (see the module docstring) and wait for the server thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("server thread still running after %.0f s; forcing exit", timeout)
            self._server.force_exit = True
            self._thread.join(5.0)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_server(
    model_path: Optional[str] = None,
    host: str = DEFAULT_HOST,
    port: int = 0,
    tp_size: int = 1,
    *,
    runtime: Any = None,
    model_name: Optional[str] = None,
    default_max_tokens: int = 512,
    graceful_timeout: float = 10.0,
    log_level: str = "warning",
    startup_timeout: float = 60.0,
    **engine_options: Any,
) -> ServerHandle:
    """Start the server in a daemon thread and return once it accepts connections.

    ``port=0`` picks a free port. With ``runtime`` given it is served and left running on stop;
    otherwise one is built from ``model_path``/``tp_size``/``engine_options`` and shut down on stop.
    """
    owns = runtime is None
    if owns:
        runtime = build_runtime(model_path, tp_size, **engine_options)
    app = _app_for(runtime, owns, model_name, model_path, default_max_tokens)
    server = _make_server(app, graceful_timeout, log_level)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="structgen-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            if owns:
                runtime.shutdown()
            raise ServerStartError(f"the server did not start on {host}:{bound_port} within {startup_timeout:.0f} s; "
                                   "see the log above for the cause")
        time.sleep(0.01)
    return ServerHandle(server, thread, host, bound_port, runtime)


def _name_of(model_path: Optional[str]) -> Optional[str]:
    if model_path is None:
        from ..assets import DEFAULT_MODEL_NAME

        return DEFAULT_MODEL_NAME
    return str(model_path).rstrip("/").split("/")[-1] or None
