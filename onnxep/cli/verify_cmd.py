"""``onnxep verify PROVIDER``: a vendor's conformance run for the ops it claims."""

from __future__ import annotations

import argparse
import json
from typing import Any

from onnxep.verify import verify_provider

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register ``verify``."""
    parser = sub.add_parser("verify", help="run the ONNX node cases for a provider's ops")
    parser.add_argument("provider", help="provider name or alias, e.g. numba")
    parser.add_argument("--op", action="append", help="only cases whose model uses this op")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every failure")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print per-op passed / failed / declined; exit 1 if anything failed."""
    from onnxep.verify import node_cases

    cases = node_cases()
    if args.op:
        wanted = set(args.op)
        cases = [c for c in cases if wanted & {n.op_type for n in c.model.graph.node}]
    results = verify_provider(args.provider, cases)
    if args.json:
        print(json.dumps({op: vars(r) for op, r in sorted(results.items())}, indent=2))
    else:
        _print_table(results, args.verbose)
    failed = sum(len(r.failed) for r in results.values())
    return 1 if failed else 0


def _print_table(results: dict[str, Any], verbose: bool) -> None:
    width = max((len(op) for op in results), default=2) + 2
    print(f"{'op':<{width}}{'passed':>8}{'failed':>8}{'declined':>10}")
    for op, r in sorted(results.items()):
        print(f"{op:<{width}}{len(r.passed):>8}{len(r.failed):>8}{len(r.declined):>10}")
        shown = r.failed if verbose else r.failed[:3]
        for case, why in shown:
            print(f"    FAILED {case}: {why}")
        if verbose:
            for case, why in r.declined[:5]:
                print(f"    declined {case}: {why}")
    totals = [
        sum(len(getattr(r, k)) for r in results.values()) for k in ("passed", "failed", "declined")
    ]
    print(f"{'total':<{width}}{totals[0]:>8}{totals[1]:>8}{totals[2]:>10}")
