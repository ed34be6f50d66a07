"""Conformance table: JSON-Schema-Test-Suite (draft2020-12, draft7) and all of MaskBench.

    python bench/conformance.py [--maskbench-only] [--sample N] [--write PATH] [--property-order any]

Prints, per corpus and subset: schemas, compiled strictly, valid instances (of compiled
schemas) rejected, invalid instances accepted. ``--write`` saves the full snapshot (with the
failing ids) as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "conformance"))
import conformance_runner as cr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maskbench-only", action="store_true")
    ap.add_argument("--sample", type=int, default=None, help="seeded MaskBench sample size")
    ap.add_argument("--write", type=Path, default=None, help="directory for full snapshots")
    ap.add_argument("--property-order", choices=("schema", "any"), default="schema",
                    help="JsonSchema(property_order=...) for every schema")
    args = ap.parse_args()
    corpora = [] if args.maskbench_only else [
        ("draft2020-12", lambda: cr.suite_items("draft2020-12")),
        ("draft7", lambda: cr.suite_items("draft7")),
    ]
    corpora.append(("maskbench", lambda: cr.maskbench_items(sample=args.sample)))
    for name, load in corpora:
        t0 = time.time()
        snap = cr.run(load(), args.property_order)
        print(f"\n## {name}, property_order={args.property_order} ({time.time() - t0:.0f} s)\n", flush=True)
        print(cr.table(snap))
        if args.write:
            args.write.mkdir(parents=True, exist_ok=True)
            (args.write / f"{name}.json").write_text(json.dumps(snap, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
