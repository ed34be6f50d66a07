"""``structgen serve`` flags: server flags plus one flag per ``EngineConfig`` field."""

from __future__ import annotations

import argparse
import dataclasses

from structgen.engine.runtime import EngineConfig
from structgen.server.cli import add_serve_parser, engine_options


def parse(argv):
    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def test_defaults_serve_the_default_model_on_loopback():
    args = parse([])
    assert (args.host, args.port, args.tp_size, args.model_path) == ("127.0.0.1", 30000, 1, None)
    assert engine_options(args) == {f.name: f.default for f in dataclasses.fields(EngineConfig) if f.name != "model_path"}


def test_every_engine_field_is_a_flag():
    args = parse(["--model", "m.gguf", "--port", "8001", "--tp-size", "2", "--max-batch-size", "8",
                  "--kv-cache-tokens", "4096", "--no-radix-cache", "--device", "cpu"])
    opts = engine_options(args)
    assert args.model_path == "m.gguf" and args.port == 8001 and args.tp_size == 2
    assert opts["max_batch_size"] == 8 and opts["kv_cache_tokens"] == 4096
    assert opts["radix_cache"] is False and opts["device"] == "cpu" and "model_path" not in opts
    assert args.func.__name__ == "run_serve"
