"""``assert_valid``: check that a value satisfies a constraint, with a failure message that shows why."""

from __future__ import annotations

import json
import re
from typing import Any


def assert_valid(output: Any, schema: Any) -> Any:
    """Assert that ``output`` satisfies ``schema`` and return it parsed; ``AssertionError`` otherwise.

    schema, and what ``output`` may be:

    * a pydantic model class: an instance of it, a dict, or a JSON str/bytes; returns the instance.
    * a JSON Schema ``dict`` or ``structgen.JsonSchema``: a parsed value, or a JSON str/bytes
      (parsed first); returns the parsed value, checked with ``jsonschema``.
    * ``structgen.Regex``: a str that fully matches the pattern (Python ``re``); returns it.
    * ``structgen.Choice`` or a list of str: one of the options; returns it.

    The message names the failing JSON path and the validator's reason, and shows the output.
    """
    from ..constraints import Choice, JsonSchema, Regex

    if isinstance(schema, Regex):
        return _regex(output, schema.pattern)
    if isinstance(schema, Choice):
        return _choice(output, schema.options)
    if isinstance(schema, (list, tuple)) and all(isinstance(o, str) for o in schema):
        return _choice(output, tuple(schema))
    if isinstance(schema, JsonSchema):
        return _json_schema(output, schema.schema)
    if isinstance(schema, (dict, bool)):
        return _json_schema(output, schema)
    if isinstance(schema, type) and hasattr(schema, "model_validate"):
        return _pydantic(output, schema)
    raise TypeError(
        f"assert_valid needs a pydantic model class, a JSON Schema dict, Regex, Choice or a list of str; got {schema!r:.80}"
    )


def _show(output: Any) -> str:
    text = output if isinstance(output, str) else repr(output)
    return text if len(text) <= 400 else text[:400] + f"... ({len(text)} chars)"


def _regex(output: Any, pattern: str) -> str:
    if not isinstance(output, str):
        raise AssertionError(f"expected a str matching /{pattern}/, got {type(output).__name__}: {_show(output)}")
    if re.fullmatch(pattern, output) is None:
        raise AssertionError(f"output does not fully match /{pattern}/:\n  {_show(output)}")
    return output


def _choice(output: Any, options: tuple[str, ...]) -> str:
    if output not in options:
        raise AssertionError(f"output is not one of {list(options)}:\n  {_show(output)}")
    return output


def _parse_json(output: Any) -> Any:
    if isinstance(output, (bytes, bytearray)):
        output = output.decode("utf-8")
    if not isinstance(output, str):
        return output
    try:
        return json.loads(output)
    except json.JSONDecodeError as e:
        raise AssertionError(f"output is not valid JSON ({e}):\n  {_show(output)}") from None


def _json_schema(output: Any, schema: Any) -> Any:
    import jsonschema

    value = _parse_json(output)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  at {_path(e.absolute_path)}: {e.message}" for e in errors[:10]]
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise AssertionError("output does not validate against the JSON Schema:\n" + "\n".join(lines) + more
                             + f"\noutput:\n  {_show(output)}")
    return value


def _pydantic(output: Any, model: type) -> Any:
    import pydantic

    try:
        if isinstance(output, model):
            return model.model_validate(output.model_dump())
        if isinstance(output, (str, bytes, bytearray)):
            return model.model_validate_json(output)
        return model.model_validate(output)
    except pydantic.ValidationError as e:
        lines = [f"  at {_path(err['loc'])}: {err['msg']}" for err in e.errors()]
        raise AssertionError(f"output does not validate as {model.__name__}:\n" + "\n".join(lines)
                             + f"\noutput:\n  {_show(output)}") from None


def _path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
