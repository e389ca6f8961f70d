"""Regression tests for what broke on real exported models (torch, onnxruntime's tools).

Each test rebuilds, in a few onnx.helper nodes, the pattern of a real model that failed
(see the sweep in the commit messages) and compares onnxep with onnxruntime.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxep
from tests.graphs import model, node

ort = pytest.importorskip("onnxruntime", reason="the patterns are compared with onnxruntime")

CHAINS = [None, ["reference"], ["numba"], ["cpp"]]
CHAIN_IDS = ["default", "reference", "numba", "cpp"]


def _ort(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, feeds)


def _check(proto, feeds, providers, rtol=1e-5, atol=1e-6) -> None:
    expected = _ort(proto, feeds)
    session = onnxep.InferenceSession(proto.SerializeToString(), providers=providers)
    got = session.run(None, feeds)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


# --- quantize_static (QDQ) and quantize_dynamic at opsets 13..18 ---------------------------


def _qdq_model(opset: int) -> onnx.ModelProto:
    """Activation Q/DQ pair, a per-channel int8 weight DequantizeLinear, MatMul, int32 bias."""
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (6, 4)).astype(np.int8)
    init = {
        "s": np.array(0.05, np.float32),
        "z": np.array(128, np.uint8),
        "w": w,
        "ws": rng.uniform(0.01, 0.02, 4).astype(np.float32),
        "wz": np.zeros(4, np.int8),
        "b": rng.integers(-500, 500, 4).astype(np.int32),
        "bs": np.array(0.001, np.float32),
    }
    nodes = [
        node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=1),
        node("DequantizeLinear", ["b", "bs"], ["bd"]),
        node("MatMul", ["xd", "wd"], ["m"]),
        node("Add", ["m", "bd"], ["y"]),
    ]
    proto = model(nodes, {"x": ["n", 6]}, ["y"], init, opset=opset)
    return proto


@pytest.mark.parametrize("opset", [13, 17, 18])
@pytest.mark.parametrize("providers", CHAINS, ids=CHAIN_IDS)
def test_qdq_dequantize_linear_before_opset_19(providers, opset):
    # onnx's reference ops implement DequantizeLinear from version 19 on only
    x = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
    _check(_qdq_model(opset), {"x": x}, providers)


def test_dequantize_linear_10_per_tensor():
    nodes = [node("DequantizeLinear", ["x", "s", "z"], ["y"])]
    init = {"s": np.array(0.5, np.float32), "z": np.array(3, np.uint8)}
    proto = model(nodes, {"x": [2, 3]}, ["y"], init, opset=10, elem=TensorProto.UINT8)
    proto.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
    x = np.array([[0, 3, 255], [1, 2, 4]], np.uint8)
    got = onnxep.InferenceSession(proto.SerializeToString(), providers=["reference"]).run(
        None, {"x": x}
    )[0]
    np.testing.assert_array_equal(got, (x.astype(np.float32) - 3) * 0.5)


# --- onnxruntime contrib ops (models saved at ORT_ENABLE_EXTENDED) -------------------------


def _with_domain(proto: onnx.ModelProto, domain: str) -> onnx.ModelProto:
    proto.opset_import.append(helper.make_opsetid(domain, 1))
    return proto


@pytest.mark.parametrize("providers", CHAINS, ids=CHAIN_IDS)
def test_unimplemented_contrib_op_is_named_with_its_domain(providers):
    # the error used to name the first node of the failing segment (a Relu here) and said
    # only "unknown domain"
    lstm = helper.make_node(
        "DynamicQuantizeLSTM", ["r", "w"], ["y"], name="lstm_quant", domain="com.microsoft"
    )
    nodes = [node("Relu", ["x"], ["r"]), lstm]
    init = {"w": np.ones((1, 4, 4), np.int8)}
    proto = _with_domain(model(nodes, {"x": [2, 3]}, ["y"], init), "com.microsoft")
    with pytest.raises(onnxep.errors.NotImplemented) as err:
        onnxep.InferenceSession(proto.SerializeToString(), providers=providers)
    message = str(err.value)
    assert "'lstm_quant'" in message
    assert "com.microsoft.DynamicQuantizeLSTM" in message
    assert "ORT_ENABLE_BASIC" in message


def test_unknown_domain_names_the_failing_node():
    custom = helper.make_node("Frob", ["r"], ["y"], name="frob", domain="acme.custom")
    nodes = [node("Relu", ["x"], ["r"]), node("Relu", ["r"], ["r2"]), custom]
    proto = _with_domain(model(nodes, {"x": [2, 3]}, ["y"]), "acme.custom")
    with pytest.raises(onnxep.errors.NotImplemented, match=r"'frob' \(op acme.custom.Frob-1\)"):
        onnxep.InferenceSession(proto.SerializeToString(), providers=["reference"])
