"""The ONNX node test cases for every op the numba provider claims.

A case is collected when its model contains an op NumbaExecutionProvider registers and the
provider accepts at least one of its nodes; the test asserts those nodes were placed on it
(a silent fallback to the reference path would otherwise pass) and compares every output
with onnx's expected values and tolerances. Cases the provider gets wrong are listed in
``KNOWN`` with the reason, as strict xfails.
"""

from __future__ import annotations

import functools
import pathlib
import sys
from typing import Any

import pytest

import onnxep
from onnxep.testing import kernel_test_options
from onnxep_numba import NumbaProvider

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from conformance.cases import NodeCase, provider_case_params, run_case

NUMBA = NumbaProvider.name
OPS = {kernel.key.op_type for kernel in NumbaProvider.kernels}

#: Cases the numba provider is known to get wrong, with the reason.
KNOWN: dict[str, str] = {}


@functools.cache
def _params() -> list[Any]:
    return provider_case_params(NumbaProvider(), KNOWN)


@pytest.mark.parametrize(("case", "labels"), _params())
def test_node_case_on_numba(case: NodeCase, labels: list[str]) -> None:
    session = onnxep.InferenceSession(
        case.model, kernel_test_options(), providers=[("numba", {"fuse": False})]
    )
    for label in labels:
        assert session.assignment(label) == NUMBA, str(session.explain())
    run_case(case, [("numba", {"fuse": False})])


def test_the_claimed_cases_cover_every_op() -> None:
    covered = {n.op_type for p in _params() for n in p.values[0].model_proto().graph.node}
    missing = sorted(OPS - covered)
    assert not missing, f"no ONNX node case exercises {missing} on the numba provider"


def test_known_failures_are_real_cases() -> None:
    names = {p.id for p in _params()}
    assert not sorted(set(KNOWN) - names)
