"""The ``structgen`` command line.

    structgen generate --schema person.json "Extract: Ann, 31, Oslo"
    structgen generate --regex '\\d{3}-\\d{4}' --max-tokens 16 "A phone number:"
    structgen generate --choices yes,no "Is the sky blue?"

Engine flags (``--max-batch-size``, ``--kv-cache-tokens``, ``--no-radix-cache``, ...) are built
from the ``EngineConfig`` fields: one field, one flag. Subcommands live in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable

from .errors import GenerationError, StructgenError


def add_config_flags(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One flag per dataclass field (``--field-name``), typed and defaulted from the field."""
    hints = typing.get_type_hints(config_cls)
    group = parser.add_argument_group("engine options")
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        names = [flag, "--model"] if f.name == "model_path" else [flag]
        kind = _base_type(hints[f.name])
        help_text = f.metadata.get("help", "")
        if kind is bool:
            group.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
        else:
            suffix = f" (default: {f.default})" if f.default is not None else ""
            group.add_argument(*names, dest=f.name, type=kind, default=f.default, help=help_text + suffix)


def config_from_args(args: argparse.Namespace, config_cls: type) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)}


def _base_type(hint: Any) -> type:
    """``int | None`` -> int; ``str`` -> str."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0]
    return hint


# ---- generate ---------------------------------------------------------------------------------
def _add_generate(sub: Any) -> None:
    from .engine.runtime import EngineConfig

    p = sub.add_parser("generate", help="generate constrained output for one prompt and print it")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--schema", metavar="FILE.json", help="JSON Schema file the output must satisfy")
    what.add_argument("--regex", metavar="R", help="regular expression the output must fully match")
    what.add_argument("--choices", metavar="A,B", help="comma-separated options; the output is one of them")
    p.add_argument("--max-tokens", type=int, default=256, help="most tokens generated (default: 256)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default: 0)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed")
    p.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
    p.add_argument("prompt", help="the prompt text ('-' reads standard input)")
    add_config_flags(p, EngineConfig)
    p.set_defaults(func=_run_generate)


def _constraint(args: argparse.Namespace) -> Any:
    from .constraints import Choice, JsonSchema, Regex

    if args.schema:
        try:
            return JsonSchema(json.loads(Path(args.schema).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"error: cannot read the schema file {args.schema}: {e}") from None
    if args.regex is not None:
        return Regex(args.regex)
    if args.choices is not None:
        return Choice([c for c in args.choices.split(",")])
    return None


def _run_generate(args: argparse.Namespace) -> int:
    from . import api
    from .engine.runtime import EngineConfig

    constraint = _constraint(args)
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    options = config_from_args(args, EngineConfig)
    model = api.load(options.pop("model_path"), options.pop("device"), options.pop("dtype"), **options)
    try:
        value = api.generate(model, constraint, prompt, max_tokens=args.max_tokens, temperature=args.temperature,
                             seed=args.seed, raw=args.raw)
    finally:
        model.shutdown()
    print(json.dumps(value, ensure_ascii=False) if args.schema else value)
    return 0


def _add_serve(sub: Any) -> None:
    from .server.cli import add_serve_parser

    add_serve_parser(sub)


COMMANDS: list[Callable[[Any], None]] = [_add_generate, _add_serve]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="structgen", description="Structured generation from language models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to standard error")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except GenerationError as e:
        print(f"error: {e}\npartial output: {e.text}", file=sys.stderr)
        return 1
    except StructgenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
