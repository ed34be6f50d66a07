"""Building stays linear in schema size: shared $ref targets and repeated subschemas are built
once (memoised refs, hash-consed expressions)."""

from __future__ import annotations

from structgen.fsm.json_schema import schema_to_expr
from structgen.fsm.rx import ExprPool


def _schema(n_defs: int, uses: int) -> dict:
    defs = {
        f"D{i}": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                                 "next": {"$ref": f"#/$defs/D{(i + 1) % n_defs}"}},
                  "required": ["name"]}
        for i in range(n_defs)
    }
    props = {f"p{j}": {"$ref": f"#/$defs/D{j % n_defs}"} for j in range(uses)}
    return {"$defs": defs, "type": "object", "properties": props}


def _nodes(schema: dict) -> int:
    pool = ExprPool()
    schema_to_expr(schema, pool, max_recursion_depth=1)
    return len(pool)


def test_many_uses_of_the_same_definitions_cost_little():
    few, many = _nodes(_schema(20, 20)), _nodes(_schema(20, 400))
    assert many < few + 380 * 100  # each extra use adds one member (~60 nodes), not a copy of its target


def test_node_count_grows_linearly_with_definitions():
    small, large = _nodes(_schema(25, 25)), _nodes(_schema(100, 100))
    assert large < 5 * small
