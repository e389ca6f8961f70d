"""Output types of the onnxruntime contrib ops onnxep runs, for shape inference.

onnx has no schemas for the ``com.microsoft`` domain, so its shape inference leaves the
outputs of an onnxruntime-fused op (a model saved at ``ORT_ENABLE_EXTENDED``) untyped, and
every node after them too; providers that check dtypes and ranks then decline them all. The
rules below give those outputs the element type (and the shape or rank where it follows from
the inputs) that onnxruntime's contrib schemas give; the loader writes them as ``value_info``
and runs onnx's shape inference again, which carries them on downstream.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx

__all__ = ["annotate_contrib_outputs"]

DOMAIN = "com.microsoft"
FLOAT = onnx.TensorProto.FLOAT

# an output: (element type, dims) where dims is None (rank unknown), a rank, or the TypeProto
# of an input whose shape it has
Output = tuple[int, "int | onnx.TypeProto | None"]
Rule = Callable[[onnx.NodeProto, list["onnx.TypeProto | None"]], "list[Output] | None"]


def _like_first(node: onnx.NodeProto, types: list[onnx.TypeProto | None]) -> list[Output] | None:
    """Elementwise ops: the first input's type and shape."""
    first = types[0]
    return [(first.tensor_type.elem_type, first)] if first is not None else None


def _same_rank(node: onnx.NodeProto, types: list[onnx.TypeProto | None]) -> list[Output] | None:
    """FusedConv, MatMulNBits, BiasSplitGelu: the input's type and rank (the other dims
    depend on the geometry, the attributes or a weight)."""
    first = types[0]
    if first is None:
        return None
    return [(first.tensor_type.elem_type, _rank(first))]


def _matrix(node: onnx.NodeProto, types: list[onnx.TypeProto | None]) -> list[Output] | None:
    """FusedGemm: a matrix of the first input's type."""
    first = types[0]
    return [(first.tensor_type.elem_type, 2)] if first is not None else None


def _matmul(node: onnx.NodeProto, types: list[onnx.TypeProto | None]) -> list[Output] | None:
    """FusedMatMul: numpy matmul's rank (the larger of two ranks of at least 2)."""
    a, b = types[0], types[1] if len(types) > 1 else None
    if a is None:
        return None
    ranks = (_rank(a), _rank(b) if b is not None else None)
    rank = max(ranks) if None not in ranks and min(ranks) >= 2 else None  # type: ignore[type-var]
    return [(a.tensor_type.elem_type, rank)]


def _skip_layer_norm(
    node: onnx.NodeProto, types: list[onnx.TypeProto | None]
) -> list[Output] | None:
    """The normalised sum and the sum itself like the input; mean and 1/std float32."""
    first = types[0]
    if first is None:
        return None
    elem = first.tensor_type.elem_type
    return [(elem, first), (FLOAT, _rank(first)), (FLOAT, _rank(first)), (elem, first)]


def _normalized(node: onnx.NodeProto, types: list[onnx.TypeProto | None]) -> list[Output] | None:
    """LayerNormalization, SimplifiedLayerNormalization: like the input; then float32
    statistics of the input's rank."""
    first = types[0]
    if first is None:
        return None
    return [(first.tensor_type.elem_type, first), (FLOAT, _rank(first)), (FLOAT, _rank(first))]


def _ranks(*ranks: int) -> Rule:
    """Attention ops: outputs of the first input's type and of fixed ``ranks``."""

    def rule(node: onnx.NodeProto, types: list[onnx.TypeProto | None]) -> list[Output] | None:
        first = types[0]
        if first is None:
            return None
        return [(first.tensor_type.elem_type, rank) for rank in ranks]

    return rule


def _embed_layer_norm(
    node: onnx.NodeProto, types: list[onnx.TypeProto | None]
) -> list[Output] | None:
    """EmbedLayerNormalization: the word embedding's type for the result and the sum (3-D),
    int32 mask_index (1-D)."""
    words = _input(types, 2)
    if words is None:
        return None
    elem = words.tensor_type.elem_type
    return [(elem, 3), (onnx.TensorProto.INT32, 1), (elem, 3)]


def _recurrent(node: onnx.NodeProto, types: list[onnx.TypeProto | None]) -> list[Output] | None:
    """DynamicQuantizeLSTM: float32 Y [seq, directions, batch, hidden], Y_h and Y_c."""
    return [(FLOAT, 4), (FLOAT, 3), (FLOAT, 3)]


def _input(types: list[onnx.TypeProto | None], index: int | None) -> onnx.TypeProto | None:
    return types[index] if index is not None and index < len(types) else None


def _quantized(zero_point: int, rank_of: int | None, rank: int | None = None) -> Rule:
    """QOperator ops: the element type of input ``zero_point`` (the output's zero point;
    uint8 when absent, as in QuantizeLinear), and the rank of input ``rank_of`` (else
    ``rank``, None when unknown)."""

    def rule(node: onnx.NodeProto, types: list[onnx.TypeProto | None]) -> list[Output] | None:
        point = _input(types, zero_point)
        elem = point.tensor_type.elem_type if point is not None else onnx.TensorProto.UINT8
        source = _input(types, rank_of)
        return [(elem, _rank(source) if source is not None else rank)]

    return rule


def _qgemm(node: onnx.NodeProto, types: list[onnx.TypeProto | None]) -> list[Output] | None:
    """QGemm: a matrix, float32 without ``y_scale`` (input 7), else of ``y_zero_point``'s."""
    if _input(types, 7) is None:
        return [(FLOAT, 2)]
    return _quantized(8, None, 2)(node, types)


RULES: dict[str, Rule] = {
    "Gelu": _like_first,
    "BiasGelu": _like_first,
    "FastGelu": _like_first,
    "QuickGelu": _like_first,
    "FusedConv": _same_rank,
    "FusedGemm": _matrix,
    "FusedMatMul": _matmul,
    "SkipLayerNormalization": _skip_layer_norm,
    "LayerNormalization": _normalized,
    "SimplifiedLayerNormalization": _normalized,
    "SkipSimplifiedLayerNormalization": _skip_layer_norm,
    "Attention": _ranks(3, 5),
    "MultiHeadAttention": _ranks(3, 4, 4, 4),
    "GroupQueryAttention": _ranks(3, 4, 4, 4),
    "EmbedLayerNormalization": _embed_layer_norm,
    "RotaryEmbedding": _like_first,
    "BiasAdd": _like_first,
    "BiasSplitGelu": _same_rank,
    "MatMulNBits": _same_rank,
    "QLinearAdd": _quantized(7, 0),
    "QLinearMul": _quantized(7, 0),
    "QLinearSigmoid": _quantized(4, 0),
    "QLinearLeakyRelu": _quantized(4, 0),
    "QLinearSoftmax": _quantized(4, 0),
    "QLinearGlobalAveragePool": _quantized(4, 0),
    "QLinearConcat": _quantized(1, 2),
    "QGemm": _qgemm,
    "DynamicQuantizeLSTM": _recurrent,
}


def _rank(t: onnx.TypeProto) -> int | None:
    tensor = t.tensor_type
    return len(tensor.shape.dim) if tensor.HasField("shape") else None


def annotate_contrib_outputs(graph: onnx.GraphProto) -> bool:
    """Add ``value_info`` for untyped outputs of known contrib ops whose inputs are typed;
    whether anything was added."""
    typed = {v.name: v.type for v in (*graph.input, *graph.value_info, *graph.output)}
    typed.update(
        {t.name: onnx.helper.make_tensor_type_proto(t.data_type, t.dims) for t in graph.initializer}
    )
    added = False
    for node in graph.node:
        rule = RULES.get(node.op_type) if node.domain == DOMAIN else None
        if rule is None or all(not o or _known(typed.get(o)) for o in node.output):
            continue
        outputs = rule(node, [typed.get(x) if x else None for x in node.input])
        for name, (elem, dims) in zip(node.output, outputs or ()):
            if not name or _known(typed.get(name)):
                continue
            info = _value_info(name, elem, dims)
            graph.value_info.append(info)
            typed[name] = info.type
            added = True
    return added


def _known(t: onnx.TypeProto | None) -> bool:
    return t is not None and t.HasField("tensor_type") and t.tensor_type.elem_type != 0


def _value_info(name: str, elem: int, dims: int | onnx.TypeProto | None) -> onnx.ValueInfoProto:
    if isinstance(dims, onnx.TypeProto):
        info = onnx.helper.make_tensor_value_info(name, elem, None)
        if dims.tensor_type.HasField("shape"):
            info.type.tensor_type.shape.CopyFrom(dims.tensor_type.shape)
        return info
    shape = None if dims is None else [None] * dims
    return onnx.helper.make_tensor_value_info(name, elem, shape)
