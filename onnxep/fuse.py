"""Graph rewrites every provider benefits from, done once at session creation.

A Conv whose weights are constants absorbs what follows it when that is a per-output-channel
affine map of its result: an inference-mode BatchNormalization (onnxruntime's
ConvBNFusion), a Mul by a per-channel constant, an Add of a per-channel constant (the
scale-and-shift pairs old Caffe2 exports use instead of BatchNormalization). The folded
Conv gets new constant weights and bias, and no provider pays a pass over the activations.
An inference-mode BatchNormalization absorbs a following per-channel Mul or Add the same way
(new scale and bias), as in pre-activation networks (DenseNet: BN -> Mul -> Add -> Relu).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from onnxep.graph import Graph, Node, ValueType, tensor_type_text

__all__ = ["fuse_conv_followers"]

Folded = tuple[np.ndarray, np.ndarray]  # new weight and bias (Conv), scale and bias (BN)


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
    gone: set[int] = set()
    new_constants: dict[str, Any] = {}
    for node in graph.nodes:
        head = _producer_before(node, producers, constants) if not node.domain else None
        folder = _FOLDERS.get((head.op_type, node.op_type)) if head is not None else None
        if folder is None or head.index in replaced or head.index in gone:  # type: ignore[union-attr]
            continue  # one fold per head and pass; a head folded away itself waits a pass
        if not _absorbs(head, graph, consumers, constants):  # type: ignore[arg-type]
            continue
        folded = folder(head, node, constants, graph)  # type: ignore[arg-type]
        if folded is None:
            continue
        tag = f"{node.outputs[0]}__folded"
        names = tuple(f"{tag}_{i}" for i in range(len(folded)))
        new_constants.update(zip(names, folded))
        inputs = _refolded_inputs(head, names)  # type: ignore[arg-type]
        replaced[head.index] = _renamed(head, inputs, node.outputs[:1])  # type: ignore[union-attr]
        removed.append(node)
        gone.add(node.index)
    if not removed:
        return graph
    return _rewritten(graph, replaced, removed, new_constants)


def _producer_before(
    node: Node, producers: dict[str, Node], constants: dict[str, Any]
) -> Node | None:
    """The Conv or BatchNormalization producing the node's only non-constant input."""
    variable = [x for x in node.inputs[:2] if x and x not in constants]
    if len(variable) != 1 or variable[0] not in producers:
        return None
    head = producers[variable[0]]
    return head if head.op_type in ("Conv", "BatchNormalization") and not head.domain else None


def _absorbs(
    head: Node, graph: Graph, consumers: dict[str, list[Node]], constants: dict[str, Any]
) -> bool:
    """Whether ``head``'s output feeds only the follower and its parameters are constants."""
    if head.outputs[0] in graph.outputs or len(consumers.get(head.outputs[0], [])) != 1:
        return False
    if head.op_type == "BatchNormalization":
        return _inference_bn(head) and all(x in constants for x in head.inputs[1:5])
    if head.inputs[1] not in constants:
        return False
    if len(head.inputs) > 2 and head.inputs[2] and head.inputs[2] not in constants:
        return False
    weight = constants[head.inputs[1]]
    return weight.dtype.kind == "f" and weight.ndim >= 3


def _inference_bn(bn: Node) -> bool:
    """A BatchNormalization that normalises with its given statistics (one output)."""
    attrs = bn.attrs
    if attrs.get("spatial", 1) != 1 or attrs.get("training_mode", 0) != 0 or any(bn.outputs[1:]):
        return False
    return bn.key.since_version >= 7 or attrs.get("is_test", 0) == 1  # 1 and 6 default to training


def _refolded_inputs(head: Node, names: tuple[str, ...]) -> tuple[str, ...]:
    if head.op_type == "Conv":
        return (head.inputs[0], *names)
    return (head.inputs[0], *names, *head.inputs[3:5])  # new scale and bias, same statistics


def _weight_and_bias(head: Node, constants: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A Conv's weight and bias, or a BatchNormalization's scale and bias (inputs 1 and 2)."""
    weight = constants[head.inputs[1]]
    has_bias = len(head.inputs) > 2 and head.inputs[2]
    bias = constants[head.inputs[2]] if has_bias else np.zeros(weight.shape[0])
    return weight.astype(np.float64), np.asarray(bias, np.float64)


def _finish(weight: np.ndarray, bias: np.ndarray, dtype: np.dtype) -> Folded:
    folded = weight.astype(dtype), bias.astype(dtype)
    for array in folded:
        array.flags.writeable = False
    return folded


def _per_channel(value: np.ndarray, rank: int, channels: int) -> np.ndarray | None:
    """``value`` as a vector over the channels (axis 1 of a rank-``rank`` tensor), if it
    broadcasts as one."""
    if value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + value.shape  # aligned right, as numpy broadcasts
    if any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1).astype(np.float64), (channels,))


def _fold_batchnorm(conv: Node, bn: Node, constants: dict[str, Any], graph: Graph) -> Folded | None:
    if not _inference_bn(bn) or not all(x in constants for x in bn.inputs[1:5]):
        return None
    scale, shift, mean, var = (np.asarray(constants[x], np.float64) for x in bn.inputs[1:5])
    factor = scale / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
    weight, bias = _weight_and_bias(conv, constants)
    dtype = constants[conv.inputs[1]].dtype
    return _finish(_scaled(weight, factor), (bias - mean) * factor + shift, dtype)


def _channel_operand(head: Node, node: Node, constants: dict[str, Any], graph: Graph) -> Any:
    """The constant operand of a Mul/Add after ``head``, as a per-channel vector, if it is one."""
    other = constants[next(x for x in node.inputs if x != head.outputs[0])]
    if head.op_type == "Conv":
        weight = constants[head.inputs[1]]
        rank, channels, dtype = weight.ndim, weight.shape[0], weight.dtype
    else:
        rank = graph.types[head.inputs[0]].rank if head.inputs[0] in graph.types else None
        scale = constants[head.inputs[1]]
        channels, dtype = scale.shape[0], constants[head.inputs[2]].dtype
        if rank is None or scale.ndim != 1 or scale.dtype != dtype:
            return None
    return _per_channel(other, rank, channels) if other.dtype == dtype else None


def _scaled(weight: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Each output channel's filter times its factor."""
    return weight * factor.reshape(-1, *[1] * (weight.ndim - 1))


def _fold_mul(head: Node, mul: Node, constants: dict[str, Any], graph: Graph) -> Folded | None:
    factor = _channel_operand(head, mul, constants, graph)
    if factor is None:
        return None
    weight, bias = _weight_and_bias(head, constants)
    return _finish(_scaled(weight, factor), bias * factor, constants[head.inputs[1]].dtype)


def _fold_add(head: Node, add: Node, constants: dict[str, Any], graph: Graph) -> Folded | None:
    shift = _channel_operand(head, add, constants, graph)
    if shift is None:
        return None
    weight, bias = _weight_and_bias(head, constants)
    return _finish(weight, bias + shift, constants[head.inputs[1]].dtype)


_FOLDERS: dict[tuple[str, str], Callable[[Node, Node, dict[str, Any], Graph], Folded | None]] = {
    ("Conv", "BatchNormalization"): _fold_batchnorm,
    ("Conv", "Mul"): _fold_mul,
    ("Conv", "Add"): _fold_add,
    ("BatchNormalization", "Mul"): _fold_mul,
    ("BatchNormalization", "Add"): _fold_add,
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
