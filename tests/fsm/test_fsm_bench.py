"""The MaskBench engine benchmark (``bench/fsm_bench.py``) runs end to end and counts errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fsm_bench.py"


def _bench():
    spec = importlib.util.spec_from_file_location("fsm_bench_under_test", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not mod.DATA.exists():
        pytest.skip("MaskBench data not present")
    return mod


def test_sample_with_invalid_instances_is_the_same_sample():
    fb = _bench()
    plain, full = fb.load_sample(30, 0, 2), fb.load_sample(30, 0, 2, with_invalid=True)
    assert [x[:3] for x in full] == plain  # the invalid instances only add a fourth item
    assert all(len(x) == 4 and len(x[3]) <= 2 for x in full) and any(x[3] for x in full)


def test_structgen_row_counts_steps_and_errors(capsys):
    fb = _bench()
    fb.main(["--n", "4", "--tokenizer", "smollm2", "--engines", "structgen", "--max-instances", "1", "--timeout", "120"])
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if line.startswith("| engine"))
    row = next(line for line in out.splitlines() if line.startswith("| structgen"))
    cells = dict(zip((c.strip() for c in head.strip("|").split("|")), (c.strip() for c in row.strip("|").split("|"))))
    assert cells["compiled"].endswith("/4") and int(cells["steps"]) > 0
    assert float(cells["schema total mean ms"]) > 0
    assert cells["valid rejected"] == "0/" + cells["valid rejected"].split("/")[1]
    accepted, walked = map(int, cells["invalid accepted"].split("/"))
    assert walked > 0 and accepted == 0  # every invalid instance of the sample is rejected
