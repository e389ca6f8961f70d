"""Every ONNX node test case of the installed onnx, through ``onnxep.InferenceSession``.

Each case runs twice: with the default providers (what a user gets), and on the reference
provider alone (the path that takes every node the others decline, so it must pass all of
them by itself). onnx's tolerances; exact for ints, bools and strings; NaN equals NaN.
Known failures are listed with their reasons in :mod:`known_failures`; the pass count of
the default run is printed at the end (see ``conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .cases import NodeCase, load_cases, run_case
from .known_failures import KNOWN_FAILURES, REFERENCE_PREFIX


def _params(prefix: str = "") -> Iterator[Any]:
    for case in load_cases():
        reason = KNOWN_FAILURES.get(prefix + case.name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_node_case(case: NodeCase) -> None:
    run_case(case)


@pytest.mark.parametrize("case", list(_params(REFERENCE_PREFIX)))
def test_node_case_reference_only(case: NodeCase) -> None:
    run_case(case, providers=["reference"])


def test_known_failures_name_real_cases() -> None:
    names = {case.name for case in load_cases()}
    stale = sorted(k for k in KNOWN_FAILURES if k.removeprefix(REFERENCE_PREFIX) not in names)
    assert not stale, f"known_failures.py lists cases that do not exist: {stale}"


def test_cases_cover_the_suite() -> None:
    cases = load_cases()
    assert len(cases) > 1800, f"only {len(cases)} node cases were generated"
    kinds = {type(v).__name__ for c in cases for ins, outs in c.data_sets for v in ins + outs}
    assert {"ndarray", "list", "NoneType"} <= kinds, kinds
