"""Counts the node-case outcomes and prints the pass counts at the end of the run.

After a run of all cases the counts are also written to ``<cache>/last_run.json`` (see
:func:`cases.cache_dir`), so a README can quote the latest figures.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import onnx
import pytest

from .cases import RANDOM_CASES, cache_dir, load_cases

#: test function -> what its line in the summary calls the run
_RUNS = {
    "test_node_case": "default providers",
    "test_node_case_reference_only": "reference provider alone",
}
_outcomes: dict[str, collections.Counter[str]] = {run: collections.Counter() for run in _RUNS}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record one outcome per node case (the call phase, or a setup that did not pass)."""
    if "test_node_cases.py::" not in report.nodeid or "[" not in report.nodeid:
        return
    function, _, rest = report.nodeid.split("::")[-1].partition("[")
    if function not in _outcomes:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        else:
            outcome = report.outcome
        counts = _outcomes[function]
        counts[outcome] += 1
        if outcome == "passed" and RANDOM_CASES.match(rest.rstrip("]")):
            counts["passed_random"] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the conformance figures and save them."""
    record: dict[str, Any] = {"onnx": onnx.__version__}
    for function, label in _RUNS.items():
        counts = _outcomes[function]
        total = sum(v for k, v in counts.items() if k != "passed_random")
        if not total:
            continue
        terminalreporter.write_line(
            f"ONNX node conformance (onnx {onnx.__version__}, {label}): {counts['passed']} of "
            f"{total} cases passed ({counts['passed_random']} random-output cases checked for "
            f"shape, dtype and support only), {counts['xfailed']} known failures, "
            f"{counts['failed']} failed, {counts['skipped']} skipped"
        )
        record[function] = {"total": total, **counts}
    complete = len(load_cases())
    if len(record) == 1 or any(r["total"] != complete for k, r in record.items() if k != "onnx"):
        return  # a partial run (-k, -x) does not overwrite the last full figures
    try:
        path = cache_dir() / "last_run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))
    except OSError:
        pass
