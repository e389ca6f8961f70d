"""The ONNX node test cases for every op the C++ provider claims, and two ``light_*`` models.

A case is collected when its model contains an op CppExecutionProvider registers and the
provider accepts at least one of its nodes; the test asserts those nodes were placed on it
(a silent fallback to the reference path would otherwise pass) and compares every output
with onnx's expected values and tolerances.
"""

from __future__ import annotations

import functools
import pathlib
import sys
from typing import Any

import numpy as np
import onnx
import pytest

import onnxep
from onnxep.testing import kernel_test_options
from onnxep_cpp import CppProvider
from onnxep_cpp._registry import load_error, native

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from conformance.cases import NodeCase, provider_case_params, run_case

CPP = CppProvider.name
SKIP = pytest.mark.skipif(native is None, reason=f"the C++ extension is not built: {load_error}")
OPS = {kernel.key.op_type for kernel in CppProvider.kernels}


@functools.cache
def _params() -> list[Any]:
    return provider_case_params(CppProvider())


@SKIP
@pytest.mark.parametrize(("case", "labels"), _params())
def test_node_case_on_cpp(case: NodeCase, labels: list[str]) -> None:
    session = onnxep.InferenceSession(case.model, kernel_test_options(), providers=["cpp"])
    for label in labels:
        assert session.assignment(label) == CPP, str(session.explain())
    run_case(case, ["cpp"])


def test_the_claimed_cases_cover_every_op() -> None:
    covered = {n.op_type for p in _params() for n in p.values[0].model_proto().graph.node}
    missing = sorted(OPS - covered)
    assert not missing, f"no ONNX node case exercises {missing} on the C++ provider"


LIGHT = pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


@SKIP
@pytest.mark.parametrize("name", ["light_resnet50", "light_inception_v1"])
def test_light_model_matches_reference_path_at_every_node(name: str) -> None:
    """Every intermediate value, not only the (saturated) final softmax, is compared."""
    model = onnx.shape_inference.infer_shapes(onnx.load(LIGHT / f"{name}.onnx"))
    typed = {v.name: v for v in model.graph.value_info}
    outputs = [o.name for o in model.graph.output]
    for node in model.graph.node:
        if node.op_type in OPS and node.output[0] in typed:
            model.graph.output.append(typed[node.output[0]])
    cpp = onnxep.InferenceSession(model, providers=["cpp"])
    ran = [n for n in cpp.plan.graph.nodes if cpp.assignment(n.index) == CPP]
    assert {n.op_type for n in ran} >= {"Conv", "Relu", "MaxPool"}, str(cpp.explain())
    reference = onnxep.InferenceSession(model, providers=["reference"])
    name_in = cpp.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    names = [o.name for o in model.graph.output]
    for value, got, expected in zip(
        names, cpp.run(None, {name_in: x}), reference.run(None, {name_in: x}), strict=True
    ):
        scale = float(np.max(np.abs(expected))) or 1.0
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=value)
    assert outputs[0] in names
