"""Constraint compiler: a constraint becomes a byte-level expression, then a lazily explored
byte DFA, then a ``TokenFSM`` over a tokenizer's vocabulary.

    compile(constraint, tokenizer, **options) -> TokenFSM

``constraint`` is anything ``structgen.constraints.as_constraint`` accepts; ``tokenizer`` is a
Hugging Face tokenizer or a ``Vocabulary``. Results are cached (``cache.py``).
"""

from __future__ import annotations

from typing import Any

from ..constraints import Choice, JsonSchema, PydanticModel, Regex, as_constraint
from ..errors import ConstraintError
from .dfa import ByteDFA
from .rx import ExprPool
from .vocabulary import Vocabulary

__all__ = ["compile", "compile_bytes", "build_expression", "ByteDFA", "ExprPool", "TokenFSM", "Vocabulary"]


def __getattr__(name: str) -> Any:
    if name == "TokenFSM":  # imported on first use: the token level loads numba's compiled walk
        from .index import TokenFSM

        return TokenFSM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_expression(constraint: Any, pool: ExprPool) -> int:
    """Lower a constraint to one expression in ``pool`` and return its id."""
    c = as_constraint(constraint)
    if isinstance(c, PydanticModel):
        c = c.json_schema()
    if isinstance(c, Regex):
        from .regex import parse_regex

        return parse_regex(c.pattern, pool)
    if isinstance(c, JsonSchema):
        from .json_schema import schema_to_expr

        return schema_to_expr(
            c.schema,
            pool,
            whitespace=c.whitespace,
            strict=c.strict,
            max_recursion_depth=c.max_recursion_depth,
            property_order=c.property_order,
        )
    if isinstance(c, Choice):
        return pool.alt_of(pool.literal(o) for o in c.options)
    raise ConstraintError(f"no compiler for constraint {constraint!r}")


def compile_bytes(constraint: Any, *, max_states: int = 200_000, max_nodes: int = 2_000_000) -> ByteDFA:
    """Compile a constraint to its lazily explored byte DFA (no tokenizer needed)."""
    pool = ExprPool(max_nodes=max_nodes)
    root = build_expression(constraint, pool)
    return ByteDFA(pool, root, max_states=max_states)


def compile(constraint: Any, tokenizer: Any, **options: Any):
    """Compile ``constraint`` for ``tokenizer`` into a ``TokenFSM`` (cached)."""
    from .index import compile_token_fsm

    return compile_token_fsm(constraint, tokenizer, **options)
