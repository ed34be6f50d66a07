"""JSON-Schema-Test-Suite and MaskBench through the JSON Schema compiler, against snapshots.

A change that loses *or gains* coverage shows as a snapshot diff; rewrite the snapshots with
``STRUCTGEN_UPDATE_SNAPSHOTS=1 pytest tests/conformance``. Independently of the snapshots, no
invalid instance may ever be accepted by a schema that compiled. ``bench/conformance.py`` runs
the whole of MaskBench and prints the table.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import conformance_runner as cr

MASKBENCH_SAMPLE = 600

pytestmark = pytest.mark.skipif(not cr.DATA.exists(), reason="shared test data not present")


def _compare(name: str, snap: dict) -> None:
    path = cr.SNAPSHOTS / f"{name}.json"
    if os.environ.get("STRUCTGEN_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(snap, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(path.read_text())
    # items stopped by the wall-clock limit depend on machine load: left out of the comparison
    timed = {e.rsplit(": ", 1)[0] for d in (snap, expected) for e in d["not_compiled"] if e.endswith(": time")}
    problems = []
    for key in ("not_compiled", "valid_rejected", "invalid_accepted"):
        new, old = (_without(d[key], timed) for d in (snap, expected))
        gained, lost = sorted(new - old), sorted(old - new)
        if gained or lost:
            problems.append(f"{key}: new {gained[:20]} gone {lost[:20]}")
    if not timed and snap["counts"] != expected["counts"]:
        problems.append(f"counts changed:\n{cr.table(snap)}")
    assert not problems, f"{name} differs from its snapshot (update with STRUCTGEN_UPDATE_SNAPSHOTS=1):\n" + "\n".join(problems)


def _without(entries: list, ids: set) -> set:
    """Entries (``id: kw`` or ``id/valid/i``) whose item id is not in ``ids``."""
    return {e for e in entries if e.rsplit(": ", 1)[0].split("/valid/")[0].split("/invalid/")[0] not in ids}


@pytest.mark.slow
@pytest.mark.parametrize("draft", ["draft2020-12", "draft7"])
def test_json_schema_test_suite(draft):
    snap = cr.run(cr.suite_items(draft))
    assert snap["invalid_accepted"] == []
    _compare(draft, snap)


@pytest.mark.slow
def test_maskbench_sample():
    snap = cr.run(cr.maskbench_items(sample=MASKBENCH_SAMPLE, seed=0))
    assert snap["invalid_accepted"] == []
    _compare("maskbench_sample", snap)


def _check_any_order(name: str, items: list) -> None:
    """``property_order="any"``: nothing invalid accepted, and no valid instance rejected that
    schema order accepts (any order only adds orders of the declared properties)."""
    snap = cr.run(items, property_order="any")
    assert snap["invalid_accepted"] == []
    ordered = json.loads((cr.SNAPSHOTS / f"{name}.json").read_text())
    assert not set(snap["valid_rejected"]) - set(ordered["valid_rejected"])
    _compare(f"{name}_any", snap)


@pytest.mark.slow
@pytest.mark.parametrize("draft", ["draft2020-12", "draft7"])
def test_json_schema_test_suite_any_property_order(draft):
    _check_any_order(draft, cr.suite_items(draft))


@pytest.mark.slow
def test_maskbench_sample_any_property_order():
    _check_any_order("maskbench_sample", cr.maskbench_items(sample=MASKBENCH_SAMPLE, seed=0))
