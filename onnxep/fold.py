"""Constant folding at session creation, as onnxruntime's basic graph optimisation does.

A node whose inputs are all constants (initializers that cannot be fed) runs once, on the
reference path, and its outputs become initializers. This turns weight generators
(``ConstantOfShape``), shape arithmetic on constants and ``Constant`` nodes into data, so
providers see constant weights they can fold (BatchNormalization into Conv) and upload
once. Random ops and nodes with subgraphs are never folded; a node that fails to fold is
left to run, where its error is reported with the node's name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from onnxep.graph import Graph, Node, NodeInfo, ValueType, tensor_type_text
from onnxep.provider import Provider
from onnxep.registry import is_multi_output

__all__ = ["fold_constants"]

#: Ops whose outputs differ from run to run: folding them would freeze one draw.
_RANDOM_OPS = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "Dropout",
    }
)


def fold_constants(graph: Graph, reference: Provider) -> Graph:
    """The graph with every foldable node replaced by the constants it computes."""
    constants: dict[str, Any] = {
        k: v for k, v in graph.initializers.items() if k not in graph.inputs
    }
    types = dict(graph.types)
    kept: list[Node] = []
    folded: list[Node] = []
    for node in graph.nodes:
        outputs = _fold(node, graph, reference, constants) if _foldable(node, constants) else None
        if outputs is None:
            kept.append(node)
            continue
        for name, value in zip(node.outputs, outputs, strict=False):
            if name:
                constants[name] = value
                types[name] = ValueType(
                    "tensor", value.dtype, value.shape, None, tensor_type_text(value.dtype)
                )
        folded.append(node)
    if not folded:
        return graph
    initializers = {**graph.initializers, **constants}
    return dataclasses.replace(
        graph,
        nodes=tuple(kept),
        initializers=initializers,
        types=types,
        folded=(*graph.folded, *folded),
    )


def _foldable(node: Node, constants: dict[str, Any]) -> bool:
    if node.domain not in ("", "ai.onnx.ml") or node.op_type in _RANDOM_OPS:
        return False
    if node.implicit_inputs or any(
        isinstance(v, Graph | tuple) and _has_graph(v) for v in node.attrs.values()
    ):
        return False
    return all(name in constants for name in node.inputs if name)


def _has_graph(value: Any) -> bool:
    items = value if isinstance(value, tuple) else (value,)
    return any(isinstance(item, Graph) for item in items)


def _fold(
    node: Node, graph: Graph, reference: Provider, constants: dict[str, Any]
) -> tuple[np.ndarray, ...] | None:
    """The node's outputs as read-only arrays, or None if it cannot be folded."""
    try:
        fn = reference.bind(NodeInfo(node, graph))
        with np.errstate(all="ignore"):
            result = fn(*[constants[x] if x else None for x in node.inputs])
    except Exception:  # run time reports it with the node's name
        return None
    values = tuple(result) if is_multi_output(node.key) else (result,)
    if not all(isinstance(v, np.ndarray | np.generic) for v in values):
        return None  # sequences, maps, optionals stay dynamic
    arrays = tuple(np.array(v) if isinstance(v, np.generic) else v for v in values)
    for array in arrays:
        array.flags.writeable = False
    return arrays
