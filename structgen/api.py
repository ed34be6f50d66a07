"""``load`` and ``generate``: the two calls most users need.

    model = structgen.load()                                   # the embedded default model
    person = structgen.generate(model, Person, "Extract: Ann, 31, Oslo")   # a validated Person
"""

from __future__ import annotations

import json
from typing import Any

from .constraints import Choice, JsonSchema, PydanticModel, Regex, as_constraint
from .errors import GenerationError


def load(model_path: str | None = None, device: str = "auto", dtype: Any = None, **engine_options: Any):
    """A ``Runtime`` for ``model_path`` (None: the embedded SmolLM2-135M-Instruct).

    engine_options are ``EngineConfig`` fields (``max_batch_size``, ``kv_cache_tokens``,
    ``radix_cache``, ...); an unknown one raises ``RequestError``.
    """
    from .engine.runtime import Runtime

    return Runtime(model_path, device=device, dtype=dtype, **engine_options)


def generate(model: Any, constraint: Any, prompt: Any, *, max_tokens: int = 256, temperature: float = 0.0,
             top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0, seed: int | None = None, stop: Any = None,
             ignore_eos: bool = False, raw: bool = False) -> Any:
    """Generate output that satisfies ``constraint`` and return it parsed.

    constraint: a pydantic model class (returns a validated instance), a JSON Schema ``dict`` or
    ``JsonSchema`` (returns the parsed JSON, validated with ``jsonschema``), ``Regex`` or
    ``Choice`` or a list of strings (returns the str), or None (returns free text).
    prompt: a str (one user turn through the chat template; ``raw=True`` sends it as is), a list
    of ``{"role", "content"}`` messages, or a list of such prompts — then a list of results is
    returned, computed as one batch.

    Raises ``RequestError`` (bad options, before any model work), ``ConstraintError`` (the
    constraint cannot be compiled) or ``GenerationError`` (the output stopped before satisfying
    the constraint — e.g. max_tokens was reached; the text is attached).
    """
    from .engine.prompts import is_prompt_list
    from .engine.request import GenerateRequest

    c = as_constraint(constraint)
    prompts = prompt if is_prompt_list(prompt) else [prompt]
    options = dict(max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                   seed=seed, stop=stop if stop is not None else (), ignore_eos=ignore_eos, raw=raw)
    GenerateRequest(None, **options).sampling()  # RequestError before any work
    fsm = model.compile(c) if c is not None else None
    handles = [model.submit(GenerateRequest(p, constraint=fsm, **options)) for p in prompts]
    values = [parse_output(c, fsm, h.result()) for h in handles]
    return values if is_prompt_list(prompt) else values[0]


def parse_output(constraint: Any, fsm: Any, result: Any) -> Any:
    """The user-facing value of a ``GenerationResult`` for ``constraint``; ``GenerationError`` if invalid."""
    text = result.text
    if result.finish_reason == "abort":
        raise GenerationError(f"generation was aborted: {result.error or 'cancelled'}", text=text, finish_reason="abort")
    if constraint is None:
        return text
    if result.finish_reason != "stop" or (fsm is not None and not fsm.matches(text)):
        raise GenerationError(
            f"the output ended ({result.finish_reason!r}, {result.completion_tokens} tokens) before satisfying the "
            "constraint; raise max_tokens or simplify the constraint", text=text, finish_reason=result.finish_reason,
        )
    if isinstance(constraint, PydanticModel):
        return _parse_pydantic(constraint, text, result)
    if isinstance(constraint, JsonSchema):
        return _parse_json(constraint.schema, text, result)
    if isinstance(constraint, (Regex, Choice)):
        return text
    return text


def _parse_json(schema: Any, text: str, result: Any) -> Any:
    import jsonschema

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise GenerationError(f"the output is not valid JSON: {e}", text=text, finish_reason=result.finish_reason) from None
    cls = jsonschema.validators.validator_for(schema) if isinstance(schema, dict) else jsonschema.Draft202012Validator
    error = jsonschema.exceptions.best_match(cls(schema).iter_errors(value))
    if error is not None:
        raise GenerationError(
            f"the output does not validate against the schema: {error.message}", text=text,
            finish_reason=result.finish_reason,
        )
    return value


def _parse_pydantic(constraint: PydanticModel, text: str, result: Any) -> Any:
    from .fsm.pydantic import parse_result

    try:
        return parse_result(constraint.model, text)
    except GenerationError:
        raise
    except Exception as e:  # noqa: BLE001 - pydantic.ValidationError and friends
        raise GenerationError(f"the output does not validate as {constraint.model.__name__}: {e}", text=text,
                              finish_reason=result.finish_reason) from e
