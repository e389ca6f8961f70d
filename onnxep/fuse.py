"""Graph rewrites every provider benefits from, done once at session creation.

A Conv whose weights are constants absorbs what follows it when that is a per-output-channel
affine map of its result: an inference-mode BatchNormalization (onnxruntime's
ConvBNFusion), a Mul by a per-channel constant, an Add of a per-channel constant (the
scale-and-shift pairs old Caffe2 exports use instead of BatchNormalization). The folded
Conv gets new constant weights and bias, and no provider pays a pass over the activations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from onnxep.graph import Graph, Node, ValueType, tensor_type_text

__all__ = ["fuse_conv_followers"]

Folded = tuple[np.ndarray, np.ndarray]  # new weight, new bias


def fuse_conv_followers(graph: Graph) -> Graph:
    """The graph with every foldable follower merged into its Conv (chains included)."""
    for _ in range(8):  # each pass folds one follower per Conv: Conv -> Mul -> Add is two
        fused = _fuse_once(graph)
        if fused is graph:
            break
        graph = fused
    return graph


def _fuse_once(graph: Graph) -> Graph:
    producers, consumers = graph.producers(), graph.consumers()
    constants = {k: v for k, v in graph.initializers.items() if k not in graph.inputs}
    replaced: dict[int, Node] = {}
    removed: list[Node] = []
    new_constants: dict[str, Any] = {}
    for node in graph.nodes:
        folder = _FOLDERS.get(node.op_type) if not node.domain else None
        conv = _conv_before(node, producers, constants) if folder else None
        if conv is None or conv.index in replaced:
            continue
        if not _fusable_conv(conv, graph, consumers, constants):
            continue
        folded = folder(conv, node, constants)  # type: ignore[misc]
        if folded is None:
            continue
        tag = f"{node.outputs[0]}__folded"
        new_constants[f"{tag}_weight"], new_constants[f"{tag}_bias"] = folded
        inputs = (conv.inputs[0], f"{tag}_weight", f"{tag}_bias")
        replaced[conv.index] = _renamed(conv, inputs, node.outputs[:1])
        removed.append(node)
    if not removed:
        return graph
    return _rewritten(graph, replaced, removed, new_constants)


def _conv_before(node: Node, producers: dict[str, Node], constants: dict[str, Any]) -> Node | None:
    """The Conv producing the node's non-constant input, if there is one."""
    variable = [x for x in node.inputs[:2] if x and x not in constants]
    if len(variable) != 1 or variable[0] not in producers:
        return None
    conv = producers[variable[0]]
    return conv if conv.op_type == "Conv" and not conv.domain else None


def _fusable_conv(
    conv: Node, graph: Graph, consumers: dict[str, list[Node]], constants: dict[str, Any]
) -> bool:
    if conv.outputs[0] in graph.outputs or len(consumers.get(conv.outputs[0], [])) != 1:
        return False
    if conv.inputs[1] not in constants:
        return False
    if len(conv.inputs) > 2 and conv.inputs[2] and conv.inputs[2] not in constants:
        return False
    weight = constants[conv.inputs[1]]
    return weight.dtype.kind == "f" and weight.ndim >= 3


def _weight_and_bias(conv: Node, constants: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    weight = constants[conv.inputs[1]]
    has_bias = len(conv.inputs) > 2 and conv.inputs[2]
    bias = constants[conv.inputs[2]] if has_bias else np.zeros(weight.shape[0])
    return weight.astype(np.float64), np.asarray(bias, np.float64)


def _finish(weight: np.ndarray, bias: np.ndarray, dtype: np.dtype) -> Folded:
    folded = weight.astype(dtype), bias.astype(dtype)
    for array in folded:
        array.flags.writeable = False
    return folded


def _per_channel(value: np.ndarray, weight: np.ndarray) -> np.ndarray | None:
    """``value`` as a vector over the Conv's output channels, if it broadcasts as one."""
    rank, channels = weight.ndim, weight.shape[0]
    if value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + value.shape  # aligned right, as numpy broadcasts
    if any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1).astype(np.float64), (channels,))


def _fold_batchnorm(conv: Node, bn: Node, constants: dict[str, Any]) -> Folded | None:
    attrs = bn.attrs
    if attrs.get("spatial", 1) != 1 or attrs.get("training_mode", 0) != 0 or any(bn.outputs[1:]):
        return None
    if bn.key.since_version < 7 and attrs.get("is_test", 0) != 1:
        return None  # versions 1 and 6 default to training
    if bn.inputs[0] != conv.outputs[0] or not all(x in constants for x in bn.inputs[1:5]):
        return None
    scale, shift, mean, var = (np.asarray(constants[x], np.float64) for x in bn.inputs[1:5])
    factor = scale / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    weight, bias = _weight_and_bias(conv, constants)
    dtype = constants[conv.inputs[1]].dtype
    return _finish(_scaled(weight, factor), (bias - mean) * factor + shift, dtype)


def _channel_operand(conv: Node, node: Node, constants: dict[str, Any]) -> np.ndarray | None:
    """The constant operand of a Mul/Add after ``conv``, as a per-channel vector, if it is one."""
    other = constants[next(x for x in node.inputs if x != conv.outputs[0])]
    weight = constants[conv.inputs[1]]
    return _per_channel(other, weight) if other.dtype == weight.dtype else None


def _scaled(weight: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Each output channel's filter times its factor."""
    return weight * factor.reshape(-1, *[1] * (weight.ndim - 1))


def _fold_mul(conv: Node, mul: Node, constants: dict[str, Any]) -> Folded | None:
    factor = _channel_operand(conv, mul, constants)
    if factor is None:
        return None
    weight, bias = _weight_and_bias(conv, constants)
    return _finish(_scaled(weight, factor), bias * factor, constants[conv.inputs[1]].dtype)


def _fold_add(conv: Node, add: Node, constants: dict[str, Any]) -> Folded | None:
    shift = _channel_operand(conv, add, constants)
    if shift is None:
        return None
    weight, bias = _weight_and_bias(conv, constants)
    return _finish(weight, bias + shift, constants[conv.inputs[1]].dtype)


_FOLDERS: dict[str, Callable[[Node, Node, dict[str, Any]], Folded | None]] = {
    "BatchNormalization": _fold_batchnorm,
    "Mul": _fold_mul,
    "Add": _fold_add,
}


def _rewritten(
    graph: Graph, replaced: dict[int, Node], removed: list[Node], new_constants: dict[str, Any]
) -> Graph:
    gone = {n.index for n in removed}
    nodes = tuple(replaced.get(n.index, n) for n in graph.nodes if n.index not in gone)
    types = dict(graph.types)
    for name, array in new_constants.items():
        types[name] = ValueType(
            "tensor", array.dtype, array.shape, None, tensor_type_text(array.dtype)
        )
    used = {x for n in nodes for x in (*n.inputs, *n.implicit_inputs)}
    used.update(graph.outputs, graph.inputs)
    initializers = {  # the replaced weights are no longer read: free them
        k: v for k, v in {**graph.initializers, **new_constants}.items() if k in used
    }
    return dataclasses.replace(
        graph,
        nodes=nodes,
        initializers=initializers,
        types=types,
        folded=(*graph.folded, *removed),
    )


def _renamed(node: Node, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> Node:
    proto = onnx.NodeProto()
    if node.proto is not None:
        proto.CopyFrom(node.proto)
    del proto.input[:]
    del proto.output[:]
    proto.input.extend(inputs)
    proto.output.extend(outputs)
    return dataclasses.replace(node, inputs=inputs, outputs=outputs, proto=proto)
