"""Counts the node-case outcomes and prints the pass count at the end of the run.

The count is also written to ``<cache>/last_run.json`` (see :func:`cases.cache_dir`), so a
README can quote the latest figure.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import onnx
import pytest

from .cases import RANDOM_CASES, cache_dir

_PREFIX = "test_node_cases.py::test_node_case["
_outcomes: collections.Counter[str] = collections.Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record one outcome per node case (the call phase, or a setup that did not pass)."""
    if _PREFIX not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        else:
            outcome = report.outcome
        _outcomes[outcome] += 1
        name = report.nodeid.rsplit("[", 1)[-1].rstrip("]")
        if outcome == "passed" and RANDOM_CASES.match(name):
            _outcomes["passed_random"] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the conformance figure and save it."""
    total = sum(v for k, v in _outcomes.items() if k != "passed_random")
    if not total:
        return
    line = (
        f"ONNX node conformance (onnx {onnx.__version__}): {_outcomes['passed']} of {total} "
        f"cases passed ({_outcomes['passed_random']} random-output cases checked for shape, "
        f"dtype and support only), {_outcomes['xfailed']} known failures, "
        f"{_outcomes['failed']} failed, {_outcomes['skipped']} skipped"
    )
    terminalreporter.write_line(line)
    try:
        path = cache_dir() / "last_run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"onnx": onnx.__version__, "total": total, **_outcomes}))
    except OSError:
        pass
