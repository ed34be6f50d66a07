"""pydantic models (and dataclasses, TypedDicts, any type pydantic adapts) as JSON Schemas, and
generated text parsed back into instances.

    schema_of(model_or_type) -> dict          # the JSON Schema pydantic emits (mode="validation")
    parse_result(model_or_type, text) -> obj  # model_validate_json / TypeAdapter.validate_json

pydantic's schemas use ``$defs``/``$ref`` for nested models, ``anyOf`` with ``null`` for
``Optional``, ``const``/``enum`` for ``Literal``/``Enum``, ``prefixItems`` for tuples; all of
these compile exactly (``json_schema``). Properties are generated in field order, which is the
order ``model_dump_json`` prints.
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


def schema_of(model_or_type: Any) -> dict:
    """The JSON Schema of a pydantic model class, dataclass, TypedDict or other adaptable type."""
    adapter = _adapter(model_or_type)
    if adapter is None:
        return model_or_type.model_json_schema()
    return adapter.json_schema()


def parse_result(model_or_type: Any, text: str | bytes) -> Any:
    """Validate generated JSON ``text`` into an instance (a model, dataclass, dict...)."""
    adapter = _adapter(model_or_type)
    if adapter is None:
        return model_or_type.model_validate_json(text)
    return adapter.validate_json(text)
