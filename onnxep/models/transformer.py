"""A BERT-base-like encoder stack built with ``onnx.helper``, for tests and benchmarks.

Each layer is post-LayerNorm attention followed by a GELU feed-forward block, written with
plain ONNX ops (MatMul+Add projections, Reshape/Transpose into heads, MatMul scores scaled
by Div, Softmax over the last axis, LayerNormalization-17, GELU through Erf, residual Adds),
so every provider sees the ops a real exported transformer contains.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["ENCODER_INPUT", "ENCODER_OUTPUT", "build_encoder", "encoder_inputs"]

ENCODER_INPUT = "hidden_states"
ENCODER_OUTPUT = "last_hidden_state"
#: onnxruntime 1.31 refuses the IR version onnx 1.23's make_model writes by default.
IR_VERSION = 8


class _Builder:
    """Collects nodes and initializers, naming each value uniquely."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, array: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def weight(self, stem: str, shape: tuple[int, ...], scale: float, offset: float = 0.0) -> str:
        data = offset + scale * self.rng.standard_normal(shape)
        return self.const(stem, data.astype(np.float32))

    def op(self, op_type: str, inputs: list[str], stem: str, **attrs: object) -> str:
        out = self.name(stem)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x: str, n_in: int, n_out: int, stem: str) -> str:
        """``x @ W + b`` with BERT's initialisation scale."""
        w = self.weight(f"{stem}.weight", (n_in, n_out), 0.02)
        b = self.weight(f"{stem}.bias", (n_out,), 0.02)
        return self.op("Add", [self.op("MatMul", [x, w], f"{stem}.matmul"), b], stem)

    def layer_norm(self, x: str, hidden: int, stem: str) -> str:
        gamma = self.weight(f"{stem}.gamma", (hidden,), 0.1, offset=1.0)
        beta = self.weight(f"{stem}.beta", (hidden,), 0.1)
        return self.op("LayerNormalization", [x, gamma, beta], stem, axis=-1, epsilon=1e-12)

    def gelu(self, x: str, stem: str) -> str:
        """``x * 0.5 * (1 + erf(x / sqrt(2)))``."""
        scaled = self.op("Div", [x, self.const("sqrt2", np.array(math.sqrt(2), np.float32))], stem)
        erf = self.op("Erf", [scaled], f"{stem}.erf")
        one_plus = self.op("Add", [erf, self.const("one", np.array(1.0, np.float32))], stem)
        half_x = self.op("Mul", [x, self.const("half", np.array(0.5, np.float32))], stem)
        return self.op("Mul", [half_x, one_plus], f"{stem}.gelu")


def _attention(b: _Builder, x: str, hidden: int, heads: int, stem: str) -> str:
    """Multi-head self-attention without a mask; returns the output projection."""
    head_dim = hidden // heads
    split = b.const("heads_shape", np.array([0, 0, heads, head_dim], np.int64))
    merge = b.const("merge_shape", np.array([0, 0, hidden], np.int64))

    def heads_of(name: str, perm: tuple[int, ...]) -> str:
        proj = b.linear(x, hidden, hidden, f"{stem}.{name}")
        split_heads = b.op("Reshape", [proj, split], f"{stem}.{name}.split")
        return b.op("Transpose", [split_heads], f"{stem}.{name}.heads", perm=list(perm))

    q = heads_of("query", (0, 2, 1, 3))  # [batch, heads, seq, head_dim]
    k = heads_of("key", (0, 2, 3, 1))  # [batch, heads, head_dim, seq]
    v = heads_of("value", (0, 2, 1, 3))
    scores = b.op("MatMul", [q, k], f"{stem}.scores")
    scale = b.const("scale", np.array(math.sqrt(head_dim), np.float32))
    scaled = b.op("Div", [scores, scale], f"{stem}.scaled")
    probs = b.op("Softmax", [scaled], f"{stem}.probs", axis=-1)
    context = b.op("MatMul", [probs, v], f"{stem}.context")
    context = b.op("Transpose", [context], f"{stem}.context.t", perm=[0, 2, 1, 3])
    context = b.op("Reshape", [context, merge], f"{stem}.context.merged")
    return b.linear(context, hidden, hidden, f"{stem}.output")


def _layer(b: _Builder, x: str, hidden: int, heads: int, ffn: int, index: int) -> str:
    stem = f"layer{index}"
    attn = _attention(b, x, hidden, heads, f"{stem}.attention")
    x = b.layer_norm(b.op("Add", [x, attn], f"{stem}.residual1"), hidden, f"{stem}.ln1")
    inner = b.gelu(b.linear(x, hidden, ffn, f"{stem}.intermediate"), f"{stem}.act")
    out = b.linear(inner, ffn, hidden, f"{stem}.ffn_out")
    return b.layer_norm(b.op("Add", [x, out], f"{stem}.residual2"), hidden, f"{stem}.ln2")


def build_encoder(
    layers: int = 4,
    hidden: int = 768,
    heads: int = 12,
    seq: int = 128,
    batch: int = 1,
    ffn: int = 3072,
    opset: int = 17,
    seed: int = 0,
) -> onnx.ModelProto:
    """A BERT-base-like encoder: ``hidden_states[batch, seq, hidden]`` in, same shape out.

    The input's ``batch`` and ``seq`` dims are symbolic; ``batch`` and ``seq`` here are the
    example shape :func:`encoder_inputs` feeds (kept in the model's metadata). Weights are
    seeded random float32 initializers.
    """
    if opset < 17:
        raise ValueError(f"build_encoder needs opset >= 17 (LayerNormalization), got {opset}")
    if layers < 1 or hidden % heads:
        raise ValueError(
            f"need layers >= 1 and hidden divisible by heads, got {layers=}, {hidden=}, {heads=}"
        )
    b = _Builder(seed)
    x = ENCODER_INPUT
    for i in range(layers):
        x = _layer(b, x, hidden, heads, ffn, i)
    b.nodes.append(helper.make_node("Identity", [x], [ENCODER_OUTPUT], name="output"))
    dims = ["batch", "seq", hidden]
    graph = helper.make_graph(
        b.nodes,
        f"encoder_{layers}x{hidden}",
        [helper.make_tensor_value_info(ENCODER_INPUT, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(ENCODER_OUTPUT, TensorProto.FLOAT, dims)],
        b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnxep.models"
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"example_batch": str(batch), "example_seq": str(seq)})
    return model


def encoder_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random feeds of the example shape recorded by :func:`build_encoder`."""
    props = {p.key: p.value for p in model.metadata_props}
    batch, seq = int(props.get("example_batch", 1)), int(props.get("example_seq", 8))
    (value,) = [v for v in model.graph.input if v.name == ENCODER_INPUT]
    hidden = value.type.tensor_type.shape.dim[2].dim_value
    data = np.random.default_rng(seed).standard_normal((batch, seq, hidden))
    return {ENCODER_INPUT: data.astype(np.float32)}
