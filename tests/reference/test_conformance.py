"""The ONNX node cases of every op with a hand-written reference kernel, on those kernels.

Each case runs on the reference provider alone; outputs are compared with onnx's expected
values and tolerances, and every node whose op has a hand-written kernel must have run on it,
unless the case is one the kernels decline on purpose (listed below with the reason), where
onnx's own op runs instead.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conformance.cases import RANDOM_CASES, NodeCase, assert_matches, load_cases

import onnxep
from onnxep.reference import ReferenceProvider
from onnxep.registry import resolve_key

#: Cases whose nodes the hand-written kernels decline (onnx's op runs them), and why.
DECLINED = {
    r"(?i)bfloat16|_bf16|float8|float4|int4|int2|e8m0": "bfloat16/float8/float4/int4/int2 data",
    r"(?i)string": "string tensors (Cast to/from text, Equal on strings)",
    r"antialias": "Resize with antialias",
    r"^test_training_dropout": "Dropout in training mode (random)",
    r"^test_qlinearmatmul_.*float16": "QLinearMatMul-21 with float16 scales (onnx's op runs it)",
    r"^test_(de)?quantizelinear_(e4m3|e5m2)": "float8 (de)quantisation (onnx's op runs it)",
    r"^test_(de)?quantizelinear_blocked": "blocked (de)quantisation, block_size (onnx's op)",
}

#: Cases whose expected values onnx got wrong and onnxruntime excludes: the hand-written
#: kernel follows onnxruntime, so these are compared with onnxruntime's outputs instead (and
#: must still differ from onnx's, so the entry goes once onnx fixes its data).
ONNXRUNTIME_EXPECTED = {
    "test_maxunpool_export_with_output_shape": (
        "MaxUnpool with output_shape: indices count in output_shape, as MaxPool's do "
        "(onnx/onnx#2398; onnx's data counts them in the inferred shape)"
    ),
}


def _mine(case: NodeCase) -> bool:
    model = case.model_proto()
    opsets = {o.domain: o.version for o in model.opset_import}
    return any(
        ReferenceProvider.kernels.lookup(resolve_key(n.domain, n.op_type, opsets.get(n.domain, 1)))
        for n in model.graph.node
    )


#: Random-output cases (Bernoulli) are left to the conformance suite, which checks their shape.
CASES = [
    pytest.param(c, id=c.name) for c in load_cases() if _mine(c) and not RANDOM_CASES.match(c.name)
]


def _declined_nodes(session: onnxep.InferenceSession) -> list[str]:
    declined = []
    for segment in session.plan.partition.segments:
        for node in segment.nodes:
            kernel = ReferenceProvider.kernels.lookup(node.key)
            if kernel is not None and segment.provider.kernel_for(segment.info(node)) is not kernel:
                declined.append(f"{node.label} ({node.key})")
    return declined


@pytest.mark.parametrize("case", CASES)
def test_node_case_on_hand_written_kernels(case: NodeCase) -> None:
    session = onnxep.InferenceSession(case.model, providers=["reference"])
    names = [arg.name for arg in session.get_inputs()]
    for inputs, expected in case.data_sets:
        feeds = dict(zip(names, inputs, strict=True))
        with np.errstate(all="ignore"):
            outputs = session.run(None, feeds)
        if case.name in ONNXRUNTIME_EXPECTED:
            expected = _onnxruntime_outputs(case, feeds, expected)
        for i, (actual, wanted) in enumerate(zip(outputs, expected, strict=True)):
            assert_matches(actual, wanted, case.rtol, case.atol, f"output {i}")
    declined = _declined_nodes(session)
    if declined:
        reasons = [r for pattern, r in DECLINED.items() if re.search(pattern, case.name)]
        assert reasons, f"hand-written kernels declined {declined}:\n{session.explain()}"


def _onnxruntime_outputs(case: NodeCase, feeds: dict, onnx_expected: list) -> list:
    """onnxruntime's outputs for a case of :data:`ONNXRUNTIME_EXPECTED`, checked to differ
    from onnx's expected ones."""
    import onnxruntime

    session = onnxruntime.InferenceSession(case.model, providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    differs = any(
        a.shape != e.shape or not np.allclose(a, e, rtol=case.rtol, atol=case.atol)
        for a, e in zip(outputs, onnx_expected, strict=True)
    )
    assert differs, f"{case.name}: onnx's expected outputs are onnxruntime's now; drop the entry"
    return outputs


def test_onnxruntime_expected_cases_exist() -> None:
    assert set(ONNXRUNTIME_EXPECTED) <= {p.id for p in CASES}


def test_most_cases_run_hand_written() -> None:
    assert len(CASES) > 1000
