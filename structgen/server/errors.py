"""HTTP errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

User mistakes (bad parameters, an invalid or unsupported schema, a malformed body) are HTTP 400
``invalid_request_error`` naming the offending parameter; never a 500. FastAPI's own 422
validation errors are converted to the same 400 shape.
"""

from __future__ import annotations

from typing import Any, Optional


class APIError(Exception):
    """An error returned to the client as an OpenAI-style JSON body with ``status``."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: Optional[str] = None,
        code: Optional[str] = None,
        type: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: Optional[str] = None, code: Optional[str] = None) -> APIError:
    """A 400 ``invalid_request_error``."""
    return APIError(message, status=400, param=param, code=code)


def unsupported(param: str, why: str) -> APIError:
    """A 400 for a parameter this server does not implement, saying what to do instead."""
    return APIError(f"'{param}' is not supported: {why}", status=400, param=param, code="unsupported_parameter")


def from_validation_errors(errors: list[dict[str, Any]]) -> APIError:
    """Turn pydantic/FastAPI validation errors into one 400 naming the first bad field."""
    if not errors:
        return bad_request("invalid request body")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    # Union members add their type names to the location (e.g. "str", "list[str]"): drop them.
    loc = [p for p in loc if not _is_type_tag(p)]
    param = _dotted(loc) or None
    msg = first.get("msg", "invalid value")
    where = f"'{param}': " if param else ""
    if first.get("type") == "json_invalid":
        return bad_request(f"request body is not valid JSON: {first.get('ctx', {}).get('error', msg)}")
    extra = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return bad_request(f"{where}{msg}{extra}", param=param)


def _is_type_tag(part: str) -> bool:
    return part in {"str", "int", "float", "bool", "dict", "list", "none"} or part.startswith(
        ("list[", "dict[", "literal[", "function-", "tagged-union[")
    ) or part[:1].isupper()


def _dotted(loc: list[str]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out
