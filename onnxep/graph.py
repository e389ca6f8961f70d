"""An immutable view of an ONNX graph: nodes in topological order, typed values, initializers.

Attributes are converted once here to Python values (ints, floats, str, tuples, numpy arrays,
nested :class:`Graph` for If/Loop/Scan bodies). A node whose subgraphs read values of an
enclosing scope lists them as ``implicit_inputs``, as onnxruntime does, so the plan can pass
them in like ordinary inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from onnxep.errors import InvalidGraph
from onnxep.registry import OpKey, resolve_key

__all__ = ["Graph", "Node", "NodeInfo", "ValueType", "graph_from_proto", "subgraphs"]


@dataclasses.dataclass(frozen=True)
class ValueType:
    """The declared or inferred type of a value. ``kind`` is tensor, sequence, optional, map."""

    kind: str = "tensor"
    dtype: np.dtype | None = None
    shape: tuple[int | str | None, ...] | None = None
    elem: ValueType | None = None  # element of a sequence / optional, value of a map
    text: str = "unknown"  # onnxruntime's spelling: tensor(float), seq(tensor(int64)), ...

    @property
    def rank(self) -> int | None:
        """The rank, when known."""
        return None if self.shape is None else len(self.shape)


UNKNOWN = ValueType(kind="unknown")

_ORT_NAMES = {
    "float32": "float",
    "float64": "double",
    "bool": "bool",
    "str": "string",
    "object": "string",
}


def dtype_text(elem_type: int) -> str:
    """onnxruntime's name for a tensor element type (``float``, ``int64``, ``float16``...)."""
    try:
        name = onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError as exc:
        raise InvalidGraph(f"unknown tensor element type {elem_type}") from exc
    return {"string": "string", "bool": "bool"}.get(name, name)


def np_dtype(elem_type: int) -> np.dtype | None:
    """The numpy dtype of an ONNX element type, or None when undefined."""
    if elem_type == onnx.TensorProto.UNDEFINED:
        return None
    if elem_type == onnx.TensorProto.STRING:
        return np.dtype(object)
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except KeyError as exc:
        raise InvalidGraph(f"unknown tensor element type {elem_type}") from exc


def _to_array(tensor: onnx.TensorProto) -> np.ndarray:
    """A tensor's value, read-only (runs and callers must not change a model's constants);
    :class:`InvalidGraph` naming it when its data does not fit its type."""
    try:
        array = numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidGraph(
            f"tensor {tensor.name!r} (dims {list(tensor.dims)}) cannot be read: {exc}"
        ) from exc
    array.flags.writeable = False
    return array


def value_type(proto: onnx.TypeProto) -> ValueType:
    """Convert an ONNX TypeProto."""
    which = proto.WhichOneof("value")
    if which == "tensor_type" or which == "sparse_tensor_type":
        t = getattr(proto, which)
        shape = None
        if t.HasField("shape"):
            shape = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in t.shape.dim
            )
        kind = "tensor" if which == "tensor_type" else "sparse_tensor"
        return ValueType(
            kind, np_dtype(t.elem_type), shape, None, f"{kind}({dtype_text(t.elem_type)})"
        )
    if which == "sequence_type":
        elem = value_type(proto.sequence_type.elem_type)
        return ValueType("sequence", elem.dtype, None, elem, f"seq({elem.text})")
    if which == "optional_type":
        elem = value_type(proto.optional_type.elem_type)
        return ValueType("optional", elem.dtype, elem.shape, elem, f"optional({elem.text})")
    if which == "map_type":
        elem = value_type(proto.map_type.value_type)
        key = dtype_text(proto.map_type.key_type)
        return ValueType("map", elem.dtype, None, elem, f"map({key},{elem.text})")
    return UNKNOWN


@dataclasses.dataclass(frozen=True, eq=False)
class Node:
    """One node. ``inputs`` holds ``""`` for a missing optional input."""

    index: int
    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]
    key: OpKey
    implicit_inputs: tuple[str, ...] = ()
    proto: onnx.NodeProto | None = None

    @property
    def label(self) -> str:
        """A name for messages: the node's name, or its op and index when unnamed."""
        return self.name or f"{self.op_type}_{self.index}"


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """A graph with its nodes in topological order."""

    name: str
    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    initializers: Mapping[str, Any]
    types: Mapping[str, ValueType]
    opsets: Mapping[str, int]
    outer_names: tuple[str, ...] = ()  # values this graph reads from enclosing scopes
    folded: tuple[Node, ...] = ()  # nodes computed once at session creation (constants)

    def type_of(self, name: str) -> ValueType:
        """The type of a value, UNKNOWN when inference could not tell."""
        return self.types.get(name, UNKNOWN)

    def producers(self) -> dict[str, Node]:
        """Which node produces each value."""
        return {out: node for node in self.nodes for out in node.outputs if out}

    def consumers(self) -> dict[str, list[Node]]:
        """Which nodes read each value (implicit inputs included)."""
        result: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in (*node.inputs, *node.implicit_inputs):
                if name:
                    result.setdefault(name, []).append(node)
        return result


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    """What a provider's ``supports`` and kernel checks see of a node."""

    node: Node
    graph: Graph

    @property
    def attrs(self) -> Mapping[str, Any]:
        """The node's attributes as Python values."""
        return self.node.attrs

    @property
    def op_type(self) -> str:
        """The op type, for messages."""
        return self.node.op_type

    def input_type(self, i: int) -> ValueType:
        """The type of input ``i`` (UNKNOWN for a missing one)."""
        names = self.node.inputs
        return self.graph.type_of(names[i]) if i < len(names) and names[i] else UNKNOWN

    def output_type(self, i: int) -> ValueType:
        """The type of output ``i``."""
        names = self.node.outputs
        return self.graph.type_of(names[i]) if i < len(names) and names[i] else UNKNOWN

    def input_shape(self, i: int) -> tuple[int | str | None, ...] | None:
        """The shape of input ``i`` when known (dims are ints, symbols, or None)."""
        return self.input_type(i).shape

    def constant(self, i: int) -> np.ndarray | None:
        """The value of input ``i`` when it is an initializer that cannot be fed, else None.

        An initializer that is also a graph input may be overridden at run time, so it is
        not a constant (onnxruntime's rule).
        """
        names = self.node.inputs
        if i >= len(names) or names[i] in self.graph.inputs:
            return None
        return self.graph.initializers.get(names[i])

    @property
    def n_inputs(self) -> int:
        """How many inputs the node lists (missing optional ones included)."""
        return len(self.node.inputs)


def _attribute_value(
    attr: onnx.AttributeProto, opsets: Mapping[str, int], scope: Mapping[str, ValueType]
) -> Any:
    kind = attr.type
    A = onnx.AttributeProto
    if kind == A.FLOAT:
        return float(attr.f)
    if kind == A.INT:
        return int(attr.i)
    if kind == A.STRING:
        return attr.s.decode("utf-8", errors="replace")
    if kind == A.TENSOR:
        return _to_array(attr.t)
    if kind == A.GRAPH:
        return graph_from_proto(attr.g, opsets, outer_scope=True, outer_types=scope)
    if kind == A.FLOATS:
        return tuple(float(f) for f in attr.floats)
    if kind == A.INTS:
        return tuple(int(i) for i in attr.ints)
    if kind == A.STRINGS:
        return tuple(s.decode("utf-8", errors="replace") for s in attr.strings)
    if kind == A.TENSORS:
        return tuple(_to_array(t) for t in attr.tensors)
    if kind == A.GRAPHS:
        return tuple(
            graph_from_proto(g, opsets, outer_scope=True, outer_types=scope) for g in attr.graphs
        )
    return onnx.helper.get_attribute_value(attr)  # sparse tensors, type protos


def _initializers(proto: onnx.GraphProto) -> dict[str, Any]:
    values: dict[str, Any] = {t.name: _to_array(t) for t in proto.initializer}
    for sparse in proto.sparse_initializer:
        values[sparse.values.name] = _densify(sparse)
        values[sparse.values.name].flags.writeable = False
    return values


def _densify(sparse: onnx.SparseTensorProto) -> np.ndarray:
    values = _to_array(sparse.values)
    indices = _to_array(sparse.indices)
    dense = np.zeros(tuple(sparse.dims), dtype=values.dtype)
    if indices.ndim == 2:
        dense[tuple(indices.T)] = values
    else:
        dense.reshape(-1)[indices] = values
    return dense


def graph_from_proto(
    proto: onnx.GraphProto,
    opsets: Mapping[str, int],
    *,
    outer_scope: bool = False,
    outer_types: Mapping[str, ValueType] | None = None,
    overridable: bool = True,
) -> Graph:
    """Build a :class:`Graph`; ``outer_scope`` allows reads of enclosing-scope values,
    whose types come from ``outer_types``.

    ``overridable=False`` (models of IR version < 4, as onnxruntime reads them) makes
    initializers listed among the graph inputs plain constants rather than feedable inputs.
    """
    initializers = _initializers(proto)
    types: dict[str, ValueType] = dict(outer_types or {})
    for info in (*proto.input, *proto.value_info, *proto.output):
        types[info.name] = value_type(info.type)
    for name, array in initializers.items():
        types.setdefault(
            name,
            ValueType("tensor", array.dtype, array.shape, None, tensor_type_text(array.dtype)),
        )
    nodes = [_node(i, n, opsets, types) for i, n in enumerate(proto.node)]
    inputs = tuple(i.name for i in proto.input if overridable or i.name not in initializers)
    known = set(inputs) | set(initializers)
    ordered = _topological(nodes, known, outer_scope)
    defined = known | {o for n in ordered for o in n.outputs if o}
    outer = sorted(
        {name for n in ordered for name in (*n.inputs, *n.implicit_inputs) if name} - defined
    )
    outputs = tuple(o.name for o in proto.output)
    missing = [o for o in outputs if o not in defined and o not in outer]
    if missing and not outer_scope:
        raise InvalidGraph(f"graph output {missing[0]!r} is produced by no node")
    outer.extend(o for o in missing if o not in outer)
    return Graph(
        proto.name,
        tuple(ordered),
        inputs,
        outputs,
        initializers,
        types,
        dict(opsets),
        tuple(outer),
    )


def tensor_type_text(dtype: np.dtype) -> str:
    """onnxruntime's type string of a numpy dtype: ``tensor(float)``, ``tensor(int64)``..."""
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype) if dtype.kind != "O" else 8
    return f"tensor({dtype_text(elem)})"


def _node(
    index: int, proto: onnx.NodeProto, opsets: Mapping[str, int], scope: Mapping[str, ValueType]
) -> Node:
    domain = "" if proto.domain == "ai.onnx" else proto.domain
    if domain not in opsets:
        raise InvalidGraph(
            f"node {proto.name or proto.op_type!r} uses domain {domain or 'ai.onnx'!r}, "
            "which the model does not import (opset_import)"
        )
    attrs = {a.name: _attribute_value(a, opsets, scope) for a in proto.attribute}
    implicit: list[str] = []
    for value in attrs.values():
        for sub in value if isinstance(value, tuple) else (value,):
            if isinstance(sub, Graph):
                implicit.extend(n for n in sub.outer_names if n not in implicit)
    return Node(
        index,
        proto.name,
        proto.op_type,
        domain,
        tuple(proto.input),
        tuple(proto.output),
        attrs,
        resolve_key(domain, proto.op_type, opsets[domain]),
        tuple(implicit),
        proto,
    )


def _topological(nodes: list[Node], known: set[str], outer_scope: bool) -> list[Node]:
    """Nodes in an order where every input is defined before use; raise on cycles."""
    available = set(known)
    produced = {o for n in nodes for o in n.outputs if o}
    ordered: list[Node] = []
    pending = list(nodes)
    while pending:
        waiting = []
        for node in pending:
            needs = [x for x in (*node.inputs, *node.implicit_inputs) if x and x in produced]
            if all(x in available for x in needs):
                ordered.append(node)
                available.update(o for o in node.outputs if o)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise InvalidGraph(f"the graph has a cycle through node {waiting[0].label!r}")
        pending = waiting
    if not outer_scope:
        for node in ordered:
            for name in (*node.inputs, *node.implicit_inputs):
                if name and name not in available:
                    raise InvalidGraph(
                        f"node {node.label!r} ({node.op_type}) reads {name!r}, "
                        "which is neither a graph input, an initializer nor a node output"
                    )
    return ordered


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The graphs a node's attributes hold (If branches, Loop and Scan bodies)."""
    for attr in node.attribute:
        yield from (attr.g,) if attr.HasField("g") else attr.graphs
