"""``onnxep.backend``: onnx's Backend API, called directly."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import onnxep
import onnxep.backend as backend

F = TensorProto.FLOAT


def _add_model() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["z"])],
        "add",
        [helper.make_tensor_value_info("x", F, [2]), helper.make_tensor_value_info("y", F, [2])],
        [helper.make_tensor_value_info("z", F, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    return model.SerializeToString()


def test_prepare_runs_lists_dicts_and_names_outputs() -> None:
    rep = backend.prepare(_add_model(), "CPU")
    x, y = np.array([1, 2], np.float32), np.array([10, 20], np.float32)
    by_list = rep.run([x, y])
    by_dict = rep.run({"x": x, "y": y})
    np.testing.assert_array_equal(by_list[0], [11, 22])
    np.testing.assert_array_equal(by_dict.z, [11, 22])
    assert rep.input_names == ["x", "y"]


def test_run_model_and_wrong_input_count() -> None:
    x = np.ones(2, np.float32)
    (z,) = backend.run_model(_add_model(), [x, x])
    np.testing.assert_array_equal(z, [2, 2])
    with pytest.raises(onnxep.InvalidArgument, match="takes 2 input"):
        backend.prepare(_add_model()).run([x])


def test_run_node_infers_types_and_takes_an_opset() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    old_style = helper.make_node("ReduceSum", ["x"], ["y"], axes=[1], keepdims=0)
    (y,) = backend.run_node(old_style, [x], opset_version=11)  # axes as an attribute
    np.testing.assert_array_equal(y, [3, 12])
    new_style = helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)
    (y,) = backend.run_node(new_style, {"x": x, "axes": np.array([0], np.int64)})  # an input
    np.testing.assert_array_equal(y, [3, 5, 7])
    (n,) = backend.run_node(helper.make_node("SequenceLength", ["s"], ["n"]), [[x, x, x]])
    assert int(n) == 3


def test_devices() -> None:
    assert backend.supports_device("CPU")
    expected = "CuPyExecutionProvider" in onnxep.get_available_providers()
    assert backend.supports_device("CUDA") == expected
    if not expected:
        with pytest.raises(onnxep.InvalidArgument, match="not available"):
            backend.prepare(_add_model(), "CUDA")
