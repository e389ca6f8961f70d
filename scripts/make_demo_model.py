"""Writes ``onnxep/data/demo_cnn.onnx``, the model ``onnxep demo`` runs.

A small image classifier with the ops real CNNs use: Conv+BatchNormalization+Relu blocks,
a depthwise Conv, a residual Add, MaxPool, GlobalAveragePool, Flatten, Gemm and Softmax,
with a symbolic batch dimension. Weights are seeded random; run this script to rebuild it.
"""

from __future__ import annotations

import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = pathlib.Path(__file__).resolve().parents[1] / "onnxep" / "data" / "demo_cnn.onnx"


def build(seed: int = 0) -> onnx.ModelProto:
    """The demo classifier, opset 17, IR 8 (readable by onnxruntime)."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def weight(name: str, shape: tuple[int, ...], scale: float = 0.1) -> str:
        inits.append(
            numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
        )
        return name

    def positive(name: str, size: int, low: float, high: float) -> str:
        inits.append(numpy_helper.from_array(rng.uniform(low, high, size).astype(np.float32), name))
        return name

    def conv_bn_relu(x: str, cin: int, cout: int, name: str, k: int = 3, group: int = 1) -> str:
        w = weight(f"{name}.w", (cout, cin // group, k, k), (2.0 / (cin // group * k * k)) ** 0.5)
        nodes.append(
            helper.make_node(
                "Conv",
                [x, w],
                [f"{name}.conv"],
                name=f"{name}/Conv",
                pads=[k // 2] * 4,
                group=group,
            )
        )
        bn = [
            positive(f"{name}.scale", cout, 0.8, 1.2),
            weight(f"{name}.bias", (cout,)),
            weight(f"{name}.mean", (cout,)),
            positive(f"{name}.var", cout, 0.5, 1.5),
        ]
        nodes.append(
            helper.make_node(
                "BatchNormalization",
                [f"{name}.conv", *bn],
                [f"{name}.bn"],
                name=f"{name}/BatchNormalization",
            )
        )
        nodes.append(helper.make_node("Relu", [f"{name}.bn"], [f"{name}.out"], name=f"{name}/Relu"))
        return f"{name}.out"

    x = conv_bn_relu("image", 3, 16, "stem")
    nodes.append(
        helper.make_node(
            "MaxPool", [x], ["pool1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]
        )
    )
    y = conv_bn_relu("pool1", 16, 16, "dw", group=16)
    y = conv_bn_relu(y, 16, 16, "pw", k=1)
    nodes.append(helper.make_node("Add", ["pool1", y], ["residual"], name="residual/Add"))
    z = conv_bn_relu("residual", 16, 32, "block2")
    nodes.append(helper.make_node("GlobalAveragePool", [z], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["features"], name="flatten"))
    fc_w = weight("fc.w", (10, 32), 0.3)
    fc_b = weight("fc.b", (10,), 0.1)
    nodes.append(
        helper.make_node("Gemm", ["features", fc_w, fc_b], ["logits"], name="fc", transB=1)
    )
    nodes.append(
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1)
    )
    graph = helper.make_graph(
        nodes,
        "demo_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="onnxep",
        doc_string="onnxep demo classifier",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build(), OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
