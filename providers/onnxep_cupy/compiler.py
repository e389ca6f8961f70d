"""``CuPyProvider.compile``: what a segment becomes before it runs.

1. **Constant folding**: nodes whose inputs are all constants run once, on the host, here
   (the ``light_*`` models build their weights with ConstantOfShape).
2. **BatchNorm folding**: ``Conv -> BatchNormalization`` with constant weights and
   statistics becomes one Conv with scaled weights and a new bias.
3. **Residency**: Shape outputs and integer tensors computed only from host values stay on
   the host (no device sync to read a shape); everything else lives on the GPU.
4. **Fusion**: float elementwise nodes whose results are read only inside one kernel
   (a tree, or a DAG such as GELU reading ``x`` twice) become one generated
   ``ElementwiseKernel`` (:mod:`onnxep_cupy.codegen`), each value computed once.

The result is emitted as straight-line Python by :mod:`onnxep_cupy.program`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from onnxep.graph import Node, NodeInfo
from onnxep.provider import Segment, bind_kernel
from onnxep.registry import Kernel, is_multi_output
from onnxep_cupy import conv as conv_ops
from onnxep_cupy import normalization, tensor
from onnxep_cupy._backend import to_host
from onnxep_cupy._registry import FLOATS, INTS
from onnxep_cupy.codegen import OPS, EwNode

__all__ = ["Analysis", "analyse"]

#: Constant folding stops at outputs larger than this (elements): those run on the device.
FOLD_LIMIT = 1 << 25


@dataclasses.dataclass
class Analysis:
    """A segment after folding, residency and fusion decisions."""

    segment: Segment
    nodes: list[Node]  # nodes still to run, BatchNorms folded away
    kernels: dict[int, Kernel]  # node index -> kernel
    consts: dict[str, np.ndarray]  # host values known at compile time
    host: set[str]  # values resident on the host
    inlined: dict[str, Node]  # value -> the node computing it inside its consumer's kernel
    folded: list[str] = dataclasses.field(default_factory=list)
    bn_folded: int = 0

    def attrs(self, node: Node) -> dict[str, Any]:
        """The node's attributes with the kernel's defaults filled in."""
        params = inspect.signature(self.kernels[node.index].fn).parameters
        defaults = {
            k: p.default
            for k, p in params.items()
            if p.kind is p.KEYWORD_ONLY and p.default is not p.empty
        }
        return {**defaults, **node.attrs}

    def dtype(self, name: str) -> np.dtype | None:
        """The static dtype of a value, when known."""
        if name in self.consts:
            return self.consts[name].dtype
        return self.segment.graph.type_of(name).dtype

    def ew_node(self, node: Node) -> EwNode:
        """The generator's view of an elementwise node."""
        return EwNode(node.op_type, tuple(node.inputs), node.outputs[0], self.attrs(node))


def analyse(segment: Segment, kernels: Mapping[int, Kernel]) -> Analysis:
    """Fold, place and fuse one segment (pure host work: no device is touched)."""
    graph = segment.graph
    consts = {  # initializers that are also graph inputs may be fed: not constants
        n: np.asarray(v)
        for n, v in graph.initializers.items()
        if n in segment.inputs and n not in graph.inputs
    }
    a = Analysis(segment, list(segment.nodes), dict(kernels), consts, set(), {})
    _fold_constants(a)
    _fold_batch_norms(a)
    _place(a)
    _fuse(a)
    return a


# --- 1. constant folding ------------------------------------------------------------------
def _reads_outside(a: Analysis) -> set[str]:
    """Values read by anything but this segment's nodes (or returned as graph outputs)."""
    mine = {n.index for n in a.segment.nodes}
    names = {
        x
        for n in a.segment.graph.nodes
        if n.index not in mine
        for x in (*n.inputs, *n.implicit_inputs)
    }
    return names | set(a.segment.graph.outputs) | set(a.segment.outputs)


def _fold_constants(a: Analysis) -> None:
    outside = _reads_outside(a)
    keep = []
    for node in a.nodes:
        present = [x for x in node.inputs if x]
        foldable = (
            present
            and all(x in a.consts for x in present)
            and not node.implicit_inputs
            and not any(o in outside for o in node.outputs)
            and all(a.consts[x].size <= FOLD_LIMIT for x in present)
        )
        if not foldable or not _try_fold(a, node):
            keep.append(node)
    a.nodes = keep


def _try_fold(a: Analysis, node: Node) -> bool:
    info = NodeInfo(node, a.segment.graph)
    args = [a.consts[x] if x else None for x in node.inputs]
    kernel = a.kernels[node.index]
    if kernel.fn is tensor.constant_of_shape and np.prod(args[0]) > FOLD_LIMIT:
        return False
    try:
        result = bind_kernel(kernel, info)(*args)
    except Exception:  # folding is an optimisation: the node then runs normally
        return False
    results = result if is_multi_output(node.key) else (result,)
    for name, value in zip(node.outputs, results):
        if name:
            a.consts[name] = np.asarray(to_host(value))
    a.folded.append(node.label)
    return True


# --- 2. BatchNorm into Conv ---------------------------------------------------------------
def _fold_batch_norms(a: Analysis) -> None:
    producers = {o: n for n in a.nodes for o in n.outputs if o}
    readers: dict[str, int] = {}
    for n in a.segment.graph.nodes:
        for x in (*n.inputs, *n.implicit_inputs):
            readers[x] = readers.get(x, 0) + 1
    outside = set(a.segment.graph.outputs) | set(a.segment.outputs)
    replaced: dict[int, Node] = {}
    dropped: set[int] = set()
    for bn in a.nodes:
        if a.kernels[bn.index].fn not in normalization.BATCH_NORMS:
            continue
        conv = producers.get(bn.inputs[0])
        if conv is None or a.kernels[conv.index].fn is not conv_ops.conv or conv.index in replaced:
            continue
        if readers.get(bn.inputs[0], 0) != 1 or bn.inputs[0] in outside:
            continue
        fused = _folded_conv(a, conv, bn)
        if fused is not None:
            replaced[conv.index], dropped = fused, dropped | {bn.index}
    a.nodes = [replaced.get(n.index, n) for n in a.nodes if n.index not in dropped]
    a.bn_folded = len(dropped)


def _folded_conv(a: Analysis, conv: Node, bn: Node) -> Node | None:
    stats = bn.inputs[1:5]
    weights = [x for x in conv.inputs[1:] if x]
    if not all(x in a.consts for x in (*stats, *weights)):
        return None
    w = a.consts[conv.inputs[1]]
    eps = a.attrs(bn)["epsilon"]
    s, t = normalization.bn_affine(*(a.consts[x] for x in stats), eps)
    bias = a.consts[conv.inputs[2]] if len(conv.inputs) > 2 and conv.inputs[2] else 0.0
    w_name, b_name = f"{bn.outputs[0]}::conv_weight", f"{bn.outputs[0]}::conv_bias"
    a.consts[w_name] = (w * s.reshape(-1, *(1,) * (w.ndim - 1))).astype(w.dtype)
    a.consts[b_name] = (bias * s + t).astype(w.dtype)
    return dataclasses.replace(
        conv, inputs=(conv.inputs[0], w_name, b_name), outputs=(bn.outputs[0],)
    )


# --- 3. residency -------------------------------------------------------------------------
def _is_index_dtype(dtype: np.dtype | None) -> bool:
    return dtype is not None and (dtype.name in INTS or dtype == np.bool_)


def host_preferred(a: Analysis, name: str) -> bool:
    """Whether a value is used from its host copy (constants of integer or bool type)."""
    return name in a.host or (name in a.consts and _is_index_dtype(a.consts[name].dtype))


def _place(a: Analysis) -> None:
    for node in a.nodes:
        kernel = a.kernels[node.index]
        present = [x for x in node.inputs if x]
        on_host = kernel.fn is tensor.shape or (
            kernel.fn is not tensor.constant_of_shape
            and all(host_preferred(a, x) for x in present)
            and all(_is_index_dtype(a.segment.graph.type_of(o).dtype) for o in node.outputs if o)
        )
        if on_host:
            a.host.update(o for o in node.outputs if o)


# --- 4. fusion ----------------------------------------------------------------------------
def fusible(a: Analysis, node: Node) -> bool:
    """A float elementwise node whose inputs the generator can express."""
    template = OPS.get(node.op_type)
    kernel = a.kernels.get(node.index)
    if template is None or kernel is None or node.outputs[0] in a.host or len(node.outputs) != 1:
        return False
    out_type = a.dtype(node.outputs[0])
    floats = [a.dtype(x) for i, x in enumerate(node.inputs) if x and template.kind_of(i) == "f"]
    t = out_type if template.out == "f" else (floats[0] if floats else None)
    if t is None or t.name not in FLOATS:
        return False
    for i, x in enumerate(node.inputs):
        if not x:
            continue
        dtype = a.dtype(x)
        if template.kind_of(i) == "b":
            if dtype != np.bool_:
                return False
        elif (
            dtype != t
            and not (x in a.consts and a.consts[x].size == 1)
            and not (
                node.op_type == "Pow"
                and i == 1
                and dtype is not None
                and dtype.name in (*FLOATS, *INTS)
            )
        ):
            return False
    return True


def _fuse(a: Analysis) -> None:
    """Group fusible nodes into kernels: a node joins the kernel of its readers when every
    reader belongs to that one kernel (so it is computed once, as a temporary, inside it)."""
    readers: dict[str, list[tuple[Node, int]]] = {}
    for n in a.segment.graph.nodes:
        for i, x in enumerate(n.inputs):
            readers.setdefault(x, []).append((n, i))
        for x in n.implicit_inputs:
            readers.setdefault(x, []).append((n, -1))
    outside = set(a.segment.graph.outputs) | set(a.segment.outputs)
    ok = {n.index for n in a.nodes if fusible(a, n)}
    group: dict[int, int] = {}  # fusible node -> the node whose kernel computes it
    for node in reversed(a.nodes):
        if node.index not in ok:
            continue
        out = node.outputs[0]
        found = readers.get(out, [])
        roots = {group.get(r.index) for r, _ in found}
        if out in outside or len(roots) != 1 or None in roots:
            group[node.index] = node.index
        elif all(_can_inline(a, node, r, pos) for r, pos in found):
            group[node.index] = roots.pop()  # type: ignore[assignment]
            a.inlined[out] = node
        else:
            group[node.index] = node.index


def _can_inline(a: Analysis, node: Node, reader: Node, pos: int) -> bool:
    """Whether ``reader`` can take ``node``'s result as a temporary at input ``pos``."""
    kind = OPS[node.op_type].out
    if pos < 0 or OPS[reader.op_type].kind_of(pos) != kind:
        return False
    return kind != "f" or a.dtype(reader.outputs[0]) == a.dtype(node.outputs[0])
