"""pydantic models (and dataclasses, TypedDicts, any type pydantic adapts) as JSON Schemas, and
generated text parsed back into instances.

    schema_of(model_or_type) -> dict          # the JSON Schema pydantic emits (mode="validation")
    parse_result(model_or_type, text) -> obj  # model_validate_json / TypeAdapter.validate_json

pydantic's schemas use ``$defs``/``$ref`` for nested models, ``anyOf`` with ``null`` for
``Optional``, ``const``/``enum`` for ``Literal``/``Enum``, ``prefixItems`` for tuples; all of
these compile exactly (``json_schema``). Properties are generated in field order, which is the
order ``model_dump_json`` prints.

Closed models: the object schema of every pydantic model whose config ``extra`` is not
``"allow"`` (the default ``"ignore"`` included) gets ``"additionalProperties": false``, so only
declared fields are generated (pydantic would drop or reject any other key, so no valid
instance is lost). Root models and models whose schema is not a plain object are left as
pydantic emits them; plain JSON Schema dicts keep the spec's meaning (absent
``additionalProperties`` allows extra keys).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConstraintError


def _adapter(model_or_type: Any):
    from pydantic import BaseModel, PydanticUserError, TypeAdapter

    if isinstance(model_or_type, type) and issubclass(model_or_type, BaseModel):
        return None
    try:
        return TypeAdapter(model_or_type)
    except (PydanticUserError, TypeError) as e:
        raise ConstraintError(f"pydantic cannot build a schema for {model_or_type!r}: {e}") from None


def _closed_models_generator():
    """A ``GenerateJsonSchema`` subclass that closes the object schemas of models (see above)."""
    from pydantic.json_schema import GenerateJsonSchema

    class ClosedModels(GenerateJsonSchema):
        def model_schema(self, schema):
            out = super().model_schema(schema)
            cls = schema["cls"]
            closed = cls.model_config.get("extra") != "allow" and not getattr(cls, "__pydantic_root_model__", False)
            if closed and out.get("type") == "object" and "additionalProperties" not in out:
                out["additionalProperties"] = False
            return out

    return ClosedModels


def schema_of(model_or_type: Any) -> dict:
    """The JSON Schema of a pydantic model class, dataclass, TypedDict or other adaptable type,
    with model objects closed unless their config says ``extra="allow"``."""
    adapter = _adapter(model_or_type)
    generator = _closed_models_generator()
    if adapter is None:
        return model_or_type.model_json_schema(schema_generator=generator)
    return adapter.json_schema(schema_generator=generator)


def parse_result(model_or_type: Any, text: str | bytes) -> Any:
    """Validate generated JSON ``text`` into an instance (a model, dataclass, dict...)."""
    adapter = _adapter(model_or_type)
    if adapter is None:
        return model_or_type.model_validate_json(text)
    return adapter.validate_json(text)
