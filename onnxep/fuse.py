"""Graph rewrites every provider benefits from, done once at session creation.

Today one: a BatchNormalization in inference mode that follows a Conv whose weights are
constants is folded into the Conv's weights and bias (onnxruntime's ConvBNFusion), so no
provider pays a separate pass over the activations for it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import onnx

from onnxep.graph import Graph, Node, ValueType, tensor_type_text

__all__ = ["fuse_conv_batchnorm"]


def fuse_conv_batchnorm(graph: Graph) -> Graph:
    """The graph with each foldable Conv -> BatchNormalization pair merged into one Conv."""
    producers = graph.producers()
    consumers = graph.consumers()
    constants = {k: v for k, v in graph.initializers.items() if k not in graph.inputs}
    replaced: dict[int, Node] = {}
    removed: list[Node] = []
    new_constants: dict[str, Any] = {}
    for bn in graph.nodes:
        conv = producers.get(bn.inputs[0]) if _is_inference_bn(bn) else None
        if conv is None or not _fusable_conv(conv, bn, graph, consumers, constants):
            continue
        weight, bias = _folded(conv, bn, constants)
        w_name, b_name = f"{conv.outputs[0]}__bn_weight", f"{conv.outputs[0]}__bn_bias"
        new_constants[w_name], new_constants[b_name] = weight, bias
        replaced[conv.index] = _renamed(conv, (conv.inputs[0], w_name, b_name), bn.outputs[:1])
        removed.append(bn)
    if not removed:
        return graph
    gone = {n.index for n in removed}
    nodes = tuple(replaced.get(n.index, n) for n in graph.nodes if n.index not in gone)
    types = dict(graph.types)
    for name, array in new_constants.items():
        types[name] = ValueType(
            "tensor", array.dtype, array.shape, None, tensor_type_text(array.dtype)
        )
    return dataclasses.replace(
        graph,
        nodes=nodes,
        initializers={**graph.initializers, **new_constants},
        types=types,
        folded=(*graph.folded, *removed),
    )


def _is_inference_bn(node: Node) -> bool:
    if node.domain or node.op_type != "BatchNormalization":
        return False
    attrs = node.attrs
    if attrs.get("spatial", 1) != 1 or attrs.get("training_mode", 0) != 0:
        return False
    if node.key.since_version < 7 and attrs.get("is_test", 0) != 1:
        return False  # versions 1 and 6 default to training
    return not any(node.outputs[1:])  # running mean/var outputs only exist in training


def _fusable_conv(
    conv: Node, bn: Node, graph: Graph, consumers: dict[str, list[Node]], constants: dict[str, Any]
) -> bool:
    if conv.domain or conv.op_type != "Conv" or conv.outputs[0] in graph.outputs:
        return False
    if len(consumers.get(conv.outputs[0], [])) != 1:
        return False
    needed = [conv.inputs[1], *bn.inputs[1:5]] + [x for x in conv.inputs[2:3] if x]
    if not all(name in constants for name in needed):
        return False
    weight = constants[conv.inputs[1]]
    return weight.dtype.kind == "f" and weight.ndim >= 3


def _folded(conv: Node, bn: Node, constants: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    weight = constants[conv.inputs[1]]
    scale, shift, mean, var = (np.asarray(constants[x], np.float64) for x in bn.inputs[1:5])
    epsilon = float(bn.attrs.get("epsilon", 1e-5))
    factor = scale / np.sqrt(var + epsilon)
    has_bias = len(conv.inputs) > 2 and conv.inputs[2]
    bias = np.asarray(constants[conv.inputs[2]], np.float64) if has_bias else 0.0
    new_weight = weight.astype(np.float64) * factor.reshape(-1, *([1] * (weight.ndim - 1)))
    new_bias = (bias - mean) * factor + shift
    folded = new_weight.astype(weight.dtype), new_bias.astype(weight.dtype)
    for array in folded:
        array.flags.writeable = False
    return folded


def _renamed(node: Node, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> Node:
    proto = onnx.NodeProto()
    if node.proto is not None:
        proto.CopyFrom(node.proto)
    del proto.input[:]
    del proto.output[:]
    proto.input.extend(inputs)
    proto.output.extend(outputs)
    return dataclasses.replace(node, inputs=inputs, outputs=outputs, proto=proto)
