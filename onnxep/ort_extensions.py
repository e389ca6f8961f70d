"""onnxruntime's own ops in the ONNX domain, moved to ``com.microsoft`` at load time.

onnxruntime registers a few ops in the default domain that onnx does not define there:
``LayerNormalization`` before opset 17 (its transformers optimiser fuses BERT and GPT layer
norms into it whatever the model's opset) and ``SimplifiedLayerNormalization`` (RMSNorm, in
LLaMA-style models it optimised). onnx's checker refuses them ("No Op registered"), so the
loader gives such nodes the domain ``com.microsoft``, where onnxep implements onnxruntime's
ops (:mod:`onnxep.reference.contrib_ops`), and imports that domain.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx
import onnx.defs

from onnxep.graph import subgraphs

__all__ = ["move_onnxruntime_extensions"]

DOMAIN = "com.microsoft"
#: onnxruntime's ONNX-domain registrations onnx lacks (at some or all opsets).
EXTENSIONS = ("LayerNormalization", "SimplifiedLayerNormalization")


def move_onnxruntime_extensions(model: onnx.ModelProto) -> int:
    """Re-domain, in place, every extension node onnx has no schema for; how many moved."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    moved = sum(_move(graph, opset) for graph in _graphs(model.graph))
    if moved and not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(DOMAIN, 1))
    return moved


def _move(graph: onnx.GraphProto, opset: int) -> int:
    moved = 0
    for node in graph.node:
        if node.domain in ("", "ai.onnx") and _extension(node.op_type, opset):
            node.domain = DOMAIN
            moved += 1
    return moved


def _extension(op_type: str, opset: int) -> bool:
    """Whether ``op_type`` is an onnxruntime extension with no onnx schema at ``opset``."""
    if op_type not in EXTENSIONS:
        return False
    try:
        onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:
        return True
    return False


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for sub in subgraphs(node):
            yield from _graphs(sub)
