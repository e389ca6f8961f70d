"""A long chain of tiny Adds: measures a runtime's per-node overhead, not its arithmetic."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["ADD_CHAIN_INPUT", "build_add_chain"]

ADD_CHAIN_INPUT = "x"


def build_add_chain(length: int = 500, size: int = 4, opset: int = 17) -> onnx.ModelProto:
    """``y = x + c + c + ... + c`` as ``length`` Add nodes on ``float32[size]`` values."""
    if length < 1:
        raise ValueError(f"the chain needs at least one Add, got {length}")
    const = numpy_helper.from_array(np.full(size, 1e-3, np.float32), "c")
    nodes, prev = [], ADD_CHAIN_INPUT
    for i in range(length):
        out = "y" if i == length - 1 else f"t{i}"
        nodes.append(helper.make_node("Add", [prev, "c"], [out], name=f"add{i}"))
        prev = out
    graph = helper.make_graph(
        nodes,
        f"add_chain_{length}",
        [helper.make_tensor_value_info(ADD_CHAIN_INPUT, TensorProto.FLOAT, [size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size])],
        [const],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnxep.models"
    )
    model.ir_version = 8
    return model
