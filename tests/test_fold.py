"""Constant folding at session creation, and IR < 4 initializers as constants."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from graphs import model, node
from onnx import TensorProto, helper, numpy_helper

import onnxep


def _weights_model(ir_version: int = 8):
    value = numpy_helper.from_array(np.array([0.5], dtype=np.float32), "")
    m = model(
        [
            node("ConstantOfShape", ["w_shape"], ["w"], value=value),
            node("Mul", ["w", "two"], ["w2"]),
            node("MatMul", ["x", "w2"], ["y"]),
            node("RandomUniformLike", ["x"], ["noise"]),
            node("Add", ["y", "y"], ["out"]),
        ],
        {"x": [2, 3]},
        ["out", "noise"],
        {"w_shape": np.array([3, 4], dtype=np.int64), "two": np.array(2.0, dtype=np.float32)},
    )
    m.ir_version = ir_version
    return m


def test_constant_subgraphs_fold_and_results_match_onnxruntime():
    m = _weights_model()
    session = onnxep.InferenceSession(m, providers=["reference"])
    report = session.explain().to_dict()
    assert report["folded"] == ["w", "w2"]
    assert report["nodes"] == 3  # MatMul, RandomUniformLike (never folded), Add
    assert "2 more folded into constants" in str(session.explain())
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    out, noise = session.run(None, {"x": x})
    (want, _) = onnxruntime.InferenceSession(m.SerializeToString()).run(None, {"x": x})
    np.testing.assert_allclose(out, want, rtol=1e-6)
    _, noise2 = session.run(None, {"x": x})
    assert not np.array_equal(noise, noise2)  # the random op still draws every run
    with pytest.raises(KeyError, match="folded into a constant"):
        session.assignment("w")


def test_disable_all_keeps_every_node():
    options = onnxep.SessionOptions()
    options.graph_optimization_level = onnxep.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxep.InferenceSession(_weights_model(), options, providers=["reference"])
    assert session.explain().to_dict()["folded"] == []
    assert session.assignment("w") == "ReferenceExecutionProvider"


def test_a_node_that_fails_to_fold_reports_at_run_time():
    m = model(
        [node("Reshape", ["c", "bad_shape"], ["r"]), node("Add", ["x", "r"], ["y"])],
        {"x": [4]},
        ["y"],
        {"c": np.ones(4, np.float32), "bad_shape": np.array([3], dtype=np.int64)},
    )
    session = onnxep.InferenceSession(m, providers=["reference"])
    assert session.explain().to_dict()["folded"] == []
    with pytest.raises(onnxep.Fail, match="'r' \\(Reshape\\)"):
        session.run(None, {"x": np.ones(4, np.float32)})


def test_ir3_initializers_listed_as_inputs_are_constants():
    m = _weights_model(ir_version=3)
    m.graph.input.append(helper.make_tensor_value_info("two", TensorProto.FLOAT, []))
    m.graph.input.append(helper.make_tensor_value_info("w_shape", TensorProto.INT64, [2]))
    del m.opset_import[:]
    m.opset_import.append(helper.make_opsetid("", 9))  # IR 3 goes with opsets <= 8
    session = onnxep.InferenceSession(m, providers=["reference"])
    assert [i.name for i in session.get_inputs()] == ["x"]
    assert session.get_overridable_initializers() == []
    assert "w2" in session.explain().to_dict()["folded"]
    with pytest.raises(onnxep.InvalidArgument, match="Invalid input name"):
        session.run(None, {"x": np.ones((2, 3), np.float32), "two": np.array(3.0, np.float32)})


def test_ir4_initializers_listed_as_inputs_stay_overridable():
    m = _weights_model(ir_version=8)
    m.graph.input.append(helper.make_tensor_value_info("two", TensorProto.FLOAT, []))
    session = onnxep.InferenceSession(m, providers=["reference"])
    assert [i.name for i in session.get_overridable_initializers()] == ["two"]
    assert "w2" not in session.explain().to_dict()["folded"]
    x = np.ones((2, 3), np.float32)
    (base, _) = session.run(None, {"x": x})
    (tripled, _) = session.run(None, {"x": x, "two": np.array(6.0, np.float32)})
    np.testing.assert_allclose(tripled, 3 * base)
