"""Runs JSON-Schema-Test-Suite and MaskBench items through the JSON Schema compiler.

Each item: compile ``JsonSchema(schema, whitespace="default", property_order=...)`` (``"schema"``
unless told) strictly with work bounds (expression nodes, DFA states, wall time), then check
``json.dumps(instance, ensure_ascii=False)`` of every valid instance is accepted and of every
invalid one rejected.
Used by ``tests/conformance/test_conformance.py`` (against checked-in snapshots) and
``bench/conformance.py`` (full table).
"""

from __future__ import annotations

import json
import random
import signal
import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from structgen.constraints import JsonSchema
from structgen.errors import CompileLimitError, ConstraintError, SchemaError
from structgen.fsm import compile_bytes

DATA = Path("/work/shared/data")
SUITE = DATA / "json-schema-test-suite"
MASKBENCH = DATA / "maskbench"
SNAPSHOTS = Path(__file__).parent / "snapshots"
MAX_NODES = 1_000_000
MAX_STATES = 100_000
TIME_LIMIT_S = 30.0
# format.json asserts that ``format`` is an annotation by default; structgen enforces formats
# (covered by optional/format/*), so that one file is left out.
SUITE_SKIP = {"format.json"}
_DRAFT_URIS = {
    "draft2020-12": "https://json-schema.org/draft/2020-12/schema",
    "draft7": "http://json-schema.org/draft-07/schema#",
}


class Item(NamedTuple):
    id: str
    subset: str
    schema: object
    valid: list
    invalid: list


@contextmanager
def time_limit(seconds: float):
    """Raise CompileLimitError when the block runs longer than ``seconds`` (main thread only)."""

    def handler(signum, frame):
        raise CompileLimitError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def suite_items(draft: str) -> list[Item]:
    root = SUITE / draft
    out = []
    for path in sorted(root.rglob("*.json")):
        rel = str(path.relative_to(root))
        if rel in SUITE_SKIP:
            continue
        subset = "optional" if rel.startswith("optional") else "required"
        for gi, group in enumerate(json.loads(path.read_text())):
            schema = group["schema"]
            if isinstance(schema, dict) and "$schema" not in schema:  # the folder names the draft
                schema = {"$schema": _DRAFT_URIS[draft], **schema}
            valid = [t["data"] for t in group["tests"] if t["valid"]]
            invalid = [t["data"] for t in group["tests"] if not t["valid"]]
            out.append(Item(f"{draft}/{rel}#{gi}", subset, schema, valid, invalid))
    return out


def maskbench_items(sample: int | None = None, seed: int = 0) -> list[Item]:
    out = []
    for path in sorted(MASKBENCH.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            d = json.loads(line)
            out.append(Item(d["id"], path.stem, d["schema"], d["valid"], d["invalid"]))
    if sample is not None:
        out = sorted(random.Random(seed).sample(out, sample), key=lambda it: it.id)
    return out


def check_item(item: Item, property_order: str = "schema") -> dict:
    """``{"error": keyword or None, "valid_rejected": [i...], "invalid_accepted": [i...]}``."""
    try:
        with time_limit(TIME_LIMIT_S), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dfa = compile_bytes(JsonSchema(item.schema, whitespace="default", property_order=property_order),
                                max_states=MAX_STATES, max_nodes=MAX_NODES)
            vr = [i for i, v in enumerate(item.valid) if not dfa.matches(_text(v))]
            ia = [i for i, v in enumerate(item.invalid) if dfa.matches(_text(v))]
    except SchemaError as e:
        return {"error": e.keyword or "schema", "valid_rejected": [], "invalid_accepted": []}
    except CompileLimitError as e:
        kind = "time" if "took longer" in str(e) else "limit"
        return {"error": kind, "valid_rejected": [], "invalid_accepted": []}
    except ConstraintError as e:
        return {"error": type(e).__name__, "valid_rejected": [], "invalid_accepted": []}
    except RecursionError:
        return {"error": "recursion", "valid_rejected": [], "invalid_accepted": []}
    return {"error": None, "valid_rejected": vr, "invalid_accepted": ia}


def _text(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def run(items: Iterable[Item], property_order: str = "schema") -> dict:
    """Snapshot dict: counts per subset and sorted failure lists."""
    counts: dict[str, dict[str, int]] = {}
    not_compiled, rejected, accepted = [], [], []
    for item in items:
        r = check_item(item, property_order)
        c = counts.setdefault(item.subset, dict.fromkeys(
            ("schemas", "compiled", "valid", "valid_rejected", "invalid", "invalid_accepted"), 0))
        c["schemas"] += 1
        if r["error"] is not None:
            not_compiled.append(f"{item.id}: {r['error']}")
            continue
        c["compiled"] += 1
        c["valid"] += len(item.valid)
        c["invalid"] += len(item.invalid)
        c["valid_rejected"] += len(r["valid_rejected"])
        c["invalid_accepted"] += len(r["invalid_accepted"])
        rejected += [f"{item.id}/valid/{i}" for i in r["valid_rejected"]]
        accepted += [f"{item.id}/invalid/{i}" for i in r["invalid_accepted"]]
    return {
        "counts": dict(sorted(counts.items())),
        "not_compiled": sorted(not_compiled),
        "valid_rejected": sorted(rejected),
        "invalid_accepted": sorted(accepted),
    }


def table(snapshot: dict) -> str:
    """Markdown table of a snapshot's counts, with a total row."""
    rows = ["| subset | schemas | compiled | valid | valid rejected | invalid | invalid accepted |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    total = dict.fromkeys(("schemas", "compiled", "valid", "valid_rejected", "invalid", "invalid_accepted"), 0)
    for name, c in list(snapshot["counts"].items()) + [("**total**", None)]:
        if c is None:
            c = total
        else:
            for k in total:
                total[k] += c[k]
        pct = 100.0 * c["compiled"] / max(c["schemas"], 1)
        rows.append(f"| {name} | {c['schemas']} | {c['compiled']} ({pct:.1f}%) | {c['valid']} | "
                    f"{c['valid_rejected']} | {c['invalid']} | {c['invalid_accepted']} |")
    return "\n".join(rows)
