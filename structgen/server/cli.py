"""``structgen serve`` / ``python -m structgen.server``: command-line front of ``launch_server``.

Flags: ``--host``, ``--port``, ``--tp-size``, server options (``--served-model-name``,
``--default-max-tokens``, ``--graceful-timeout``, ``--log-level``), and one flag per
``EngineConfig`` field from ``structgen.cli.add_config_flags`` (``--model`` / ``--model-path``
PATH_OR_ID, default the embedded model; ``--max-batch-size``; ``--no-radix-cache`` ...).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Optional

from .launch import DEFAULT_HOST, DEFAULT_PORT


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every ``serve`` flag to ``parser``: server flags, then one per ``EngineConfig`` field."""
    from ..cli import add_config_flags
    from ..engine.runtime import EngineConfig

    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument("--tp-size", type=int, default=1, help="tensor-parallel degree (default 1)")
    parser.add_argument("--served-model-name", default=None, help="model id listed by /v1/models")
    parser.add_argument("--default-max-tokens", type=int, default=512,
                        help="max_tokens of requests that set none (default 512)")
    parser.add_argument("--graceful-timeout", type=float, default=30.0,
                        help="seconds in-flight requests may finish after SIGTERM before being aborted (default 30)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_config_flags(parser, EngineConfig)


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``serve`` on the main CLI's subparsers; its handler is ``run_serve(args)``."""
    parser = subparsers.add_parser("serve", help="serve the OpenAI-compatible HTTP API",
                                   description="Serve the OpenAI-compatible HTTP API (/v1/chat/completions, ...).")
    add_serve_arguments(parser)
    parser.set_defaults(func=run_serve)
    return parser


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``EngineConfig`` keyword arguments in ``args`` (``model_path`` left out)."""
    from ..cli import config_from_args
    from ..engine.runtime import EngineConfig

    options = config_from_args(args, EngineConfig)
    options.pop("model_path", None)
    return options


def run_serve(args: argparse.Namespace) -> int:
    """Run the server described by parsed ``args`` until SIGTERM/SIGINT; returns the exit code."""
    from .launch import launch_server

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("structgen").setLevel(args.log_level.upper())
    launch_server(
        args.model_path, args.host, args.port, args.tp_size,
        model_name=args.served_model_name, default_max_tokens=args.default_max_tokens,
        graceful_timeout=args.graceful_timeout, log_level=args.log_level, **engine_options(args),
    )
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m structgen.server [flags]``: the same flags as ``structgen serve``."""
    from ..errors import StructgenError

    parser = argparse.ArgumentParser(prog="python -m structgen.server",
                                     description="Serve the OpenAI-compatible HTTP API.")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_serve(args)
    except StructgenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
