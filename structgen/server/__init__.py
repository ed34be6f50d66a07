"""OpenAI-compatible HTTP server over a ``Runtime`` (FastAPI + uvicorn, the ``server`` extra).

    launch_server(model_path=None, host="127.0.0.1", port=30000, tp_size=1, **engine_options)
        serve until SIGTERM / Ctrl-C (blocking)
    start_server(model_path=None, *, runtime=None, port=0, ...) -> ServerHandle
        serve from a background thread; ``handle.base_url`` for the ``openai`` client;
        ``handle.stop()`` or ``with start_server(...) as handle:``
    create_app(runtime, ...) -> fastapi.FastAPI

FastAPI and uvicorn are imported only when one of these is called.
"""

from __future__ import annotations

from typing import Any

from .launch import ServerHandle, launch_server, start_server

__all__ = ["create_app", "launch_server", "start_server", "ServerHandle"]


def create_app(runtime: Any, **options: Any) -> Any:
    """The FastAPI app serving ``runtime`` (see ``structgen.server.app.create_app``)."""
    from .app import create_app as _create_app

    return _create_app(runtime, **options)
