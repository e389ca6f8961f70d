"""One-node models for the CuPy provider's tests, shared by the emulated and the GPU runs."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import onnxep

F32, F16 = np.float32, np.float16


@dataclasses.dataclass(frozen=True)
class Case:
    """An op, its opset, the graph inputs (fed), constants (initializers) and attributes."""

    op: str
    opset: int
    feeds: dict[str, tuple[tuple[int, ...], Any]]  # name -> (shape, dtype or "pos"/"bool")
    consts: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    inputs: tuple[str, ...] | None = None  # node input order ("" for a missing one)
    n_outputs: int = 1

    def model(self) -> onnx.ModelProto:
        """The one-node model (IR 8, so onnxruntime could read it too)."""
        names = self.inputs if self.inputs is not None else (*self.feeds, *self.consts)
        outs = [f"y{i}" for i in range(self.n_outputs)]
        node = helper.make_node(self.op, list(names), outs, name="node", **self.attrs)
        graph = helper.make_graph(
            [node],
            self.op,
            [helper.make_tensor_value_info(n, _elem(d), s) for n, (s, d) in self.feeds.items()],
            [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outs],
            [numpy_helper.from_array(v, k) for k, v in self.consts.items()],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8
        return model

    def data(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Seeded feeds: normal floats, positive floats (``"pos"``), or booleans."""
        rng = np.random.default_rng(seed)
        out = {}
        for name, (shape, dtype) in self.feeds.items():
            if dtype == "pos":
                out[name] = (rng.random(shape) + 0.5).astype(F32)
            elif dtype == "bool":
                out[name] = rng.random(shape) > 0.5
            elif np.dtype(dtype).kind == "i":
                out[name] = rng.integers(-3, 4, shape).astype(dtype)
            else:
                out[name] = (rng.standard_normal(shape) * 2).astype(dtype)
        return out

    @property
    def tolerance(self) -> dict[str, float]:
        """Looser for float16 feeds."""
        half = any(d is F16 for _, d in self.feeds.values())
        return {"rtol": 1e-2, "atol": 1e-2} if half else {"rtol": 1e-4, "atol": 1e-5}


def _elem(dtype: Any) -> int:
    if dtype == "pos":
        return onnx.TensorProto.FLOAT
    if dtype == "bool":
        return onnx.TensorProto.BOOL
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _c(values: Any, dtype: Any = np.int64) -> np.ndarray:
    return np.array(values, dtype=dtype)


X = {"x": ((2, 3, 4), F32)}
IMG = {"x": ((2, 4, 9, 9), F32)}
UNARY = [
    ("Abs", 13),
    ("Neg", 13),
    ("Exp", 13),
    ("Floor", 13),
    ("Ceil", 13),
    ("Round", 11),
    ("Sign", 13),
    ("Sin", 7),
    ("Cos", 7),
    ("Tanh", 13),
    ("Erf", 13),
    ("Sigmoid", 13),
    ("Relu", 14),
    ("Elu", 6),
    ("Selu", 6),
    ("HardSigmoid", 6),
    ("HardSwish", 14),
    ("Softplus", 1),
    ("Mish", 18),
    ("Gelu", 20),
    ("Identity", 16),
]


def _cases() -> list[Any]:
    c = [pytest.param(Case(op, v, X), id=f"{op}-{v}") for op, v in UNARY]
    c += [
        pytest.param(Case("Log", 13, {"x": ((5, 7), "pos")}), id="Log"),
        pytest.param(Case("Sqrt", 13, {"x": ((5, 7), "pos")}), id="Sqrt"),
        pytest.param(Case("Reciprocal", 13, {"x": ((5, 7), "pos")}), id="Reciprocal"),
        pytest.param(Case("LeakyRelu", 16, X, attrs={"alpha": 0.2}), id="LeakyRelu"),
        pytest.param(Case("Gelu", 20, X, attrs={"approximate": "tanh"}), id="Gelu-tanh"),
        pytest.param(Case("Relu", 14, {"x": ((3, 5), F16)}), id="Relu-f16"),
        pytest.param(Case("Gelu", 20, {"x": ((3, 5), F16)}), id="Gelu-f16"),
        pytest.param(Case("Add", 14, {"a": ((2, 3, 4), F32), "b": ((4,), F32)}), id="Add-bcast"),
        pytest.param(Case("Sub", 14, {"a": ((2, 1, 4), F32), "b": ((3, 1), F32)}), id="Sub-bcast"),
        pytest.param(Case("Mul", 14, {"a": ((2, 3), F16), "b": ((2, 3), F16)}), id="Mul-f16"),
        pytest.param(
            Case("Div", 14, {"a": ((2, 3), F32)}, {"b": _c([[2.0]], F32)}), id="Div-const"
        ),
        pytest.param(Case("Add", 14, {"a": ((4,), np.int64), "b": ((4,), np.int64)}), id="Add-int"),
        pytest.param(
            Case("Div", 14, {"a": ((6,), np.int64)}, {"b": _c([2, -2, 3, -3, 2, 2])}),
            id="Div-int-trunc",
        ),
        pytest.param(Case("Pow", 15, {"a": ((3, 4), "pos"), "b": ((4,), F32)}), id="Pow"),
        pytest.param(Case("Pow", 15, {"a": ((3, 4), F32)}, {"b": _c(3)}), id="Pow-int-exponent"),
        pytest.param(
            Case("Max", 13, {"a": ((2, 3), F32), "b": ((3,), F32), "c": ((2, 1), F32)}), id="Max-3"
        ),
        pytest.param(Case("Min", 13, {"a": ((2, 3), F32), "b": ((3,), F32)}), id="Min"),
        pytest.param(Case("Sum", 13, {"a": ((2, 3), F32), "b": ((3,), F32)}), id="Sum"),
        pytest.param(Case("Mean", 13, {"a": ((2, 3), F32), "b": ((2, 3), F32)}), id="Mean"),
        pytest.param(
            Case(
                "PRelu", 16, {"x": ((2, 3, 4, 4), F32)}, {"s": _c([[[0.1]], [[0.2]], [[0.3]]], F32)}
            ),
            id="PRelu",
        ),
        pytest.param(
            Case("Where", 16, {"c": ((2, 3, 4), "bool"), "a": ((2, 3, 4), F32), "b": ((4,), F32)}),
            id="Where",
        ),
        pytest.param(Case("Clip", 13, X, {"lo": _c(-0.5, F32), "hi": _c(0.7, F32)}), id="Clip-13"),
        pytest.param(
            Case("Clip", 13, X, {"hi": _c(0.7, F32)}, inputs=("x", "", "hi")), id="Clip-13-max-only"
        ),
        pytest.param(Case("Clip", 6, X, attrs={"min": -0.2, "max": 0.3}), id="Clip-6"),
        pytest.param(Case("Less", 13, {"a": ((2, 3), F32), "b": ((3,), F32)}), id="Less"),
        pytest.param(Case("GreaterOrEqual", 16, {"a": ((2, 3), F32), "b": ((3,), F32)}), id="GE"),
        pytest.param(Case("Equal", 13, {"a": ((6,), np.int64), "b": ((6,), np.int64)}), id="Equal"),
        pytest.param(Case("Not", 1, {"a": ((6,), "bool")}), id="Not"),
        pytest.param(Case("Cast", 13, X, attrs={"to": onnx.TensorProto.FLOAT16}), id="Cast-f16"),
        pytest.param(
            Case("Cast", 21, {"x": ((5,), F16)}, attrs={"to": onnx.TensorProto.FLOAT}),
            id="Cast-f32",
        ),
        pytest.param(Case("Cast", 13, X, attrs={"to": onnx.TensorProto.INT64}), id="Cast-int"),
    ]
    c += _linalg_cases() + _conv_cases() + _norm_cases() + _shape_cases() + _resize_cases()
    return c


def _linalg_cases() -> list[Any]:
    return [
        pytest.param(Case("MatMul", 13, {"a": ((2, 3, 4), F32), "b": ((4, 5), F32)}), id="MatMul"),
        pytest.param(
            Case("MatMul", 13, {"a": ((2, 1, 3, 4), F32), "b": ((5, 4, 6), F32)}),
            id="MatMul-batch-bcast",
        ),
        pytest.param(Case("MatMul", 13, {"a": ((4,), F32), "b": ((4, 3), F32)}), id="MatMul-1d"),
        pytest.param(
            Case("MatMul", 13, {"a": ((8, 16), F16), "b": ((16, 8), F16)}), id="MatMul-f16"
        ),
        pytest.param(
            Case(
                "Gemm",
                13,
                {"a": ((4, 3), F32), "b": ((5, 4), F32), "c": ((5,), F32)},
                attrs={"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0},
            ),
            id="Gemm",
        ),
        pytest.param(Case("Gemm", 13, {"a": ((3, 4), F32), "b": ((4, 5), F32)}), id="Gemm-no-C"),
    ]


def _conv_cases() -> list[Any]:
    rng = np.random.default_rng(7)
    w = rng.standard_normal((6, 4, 3, 3)).astype(F32)
    b = rng.standard_normal(6).astype(F32)
    wg = rng.standard_normal((6, 2, 3, 3)).astype(F32)
    wd = rng.standard_normal((4, 1, 3, 3)).astype(F32)
    return [
        pytest.param(
            Case("Conv", 11, IMG, {"w": w, "b": b}, attrs={"pads": [1, 1, 1, 1]}), id="Conv"
        ),
        pytest.param(
            Case("Conv", 11, IMG, {"w": w}, attrs={"strides": [2, 2], "dilations": [2, 1]}),
            id="Conv-stride-dilation",
        ),
        pytest.param(
            Case(
                "Conv",
                11,
                IMG,
                {"w": wg, "b": b},
                attrs={"group": 2, "auto_pad": "SAME_UPPER", "strides": [2, 2]},
            ),
            id="Conv-groups-same",
        ),
        pytest.param(
            Case("Conv", 11, IMG, {"w": wd}, attrs={"group": 4, "pads": [0, 1, 2, 1]}),
            id="Conv-depthwise",
        ),
        pytest.param(Case("Conv", 11, IMG, {"w": w[:, :, :1, :1].copy()}), id="Conv-1x1"),
        pytest.param(
            Case(
                "Conv",
                11,
                {"x": ((1, 4, 10), F32)},
                {"w": w[:, :, 0].copy()},
                attrs={"auto_pad": "SAME_LOWER"},
            ),
            id="Conv-1d",
        ),
        pytest.param(
            Case("Conv", 22, {"x": ((1, 4, 6, 6), F16)}, {"w": w.astype(F16)}), id="Conv-f16"
        ),
        pytest.param(
            Case("MaxPool", 12, IMG, attrs={"kernel_shape": [2, 2], "strides": [2, 2]}),
            id="MaxPool",
        ),
        pytest.param(
            Case(
                "MaxPool",
                12,
                IMG,
                attrs={
                    "kernel_shape": [3, 3],
                    "strides": [2, 2],
                    "pads": [1, 1, 1, 1],
                    "ceil_mode": 1,
                },
            ),
            id="MaxPool-ceil",
        ),
        pytest.param(
            Case("MaxPool", 12, IMG, attrs={"kernel_shape": [2, 2], "dilations": [2, 2]}),
            id="MaxPool-dilated",
        ),
        pytest.param(
            Case("AveragePool", 19, IMG, attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
            id="AveragePool-pads",
        ),
        pytest.param(
            Case(
                "AveragePool",
                19,
                IMG,
                attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
            ),
            id="AveragePool-count-pad",
        ),
        pytest.param(
            Case(
                "AveragePool",
                19,
                IMG,
                attrs={"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
            ),
            id="AveragePool-ceil",
        ),
        pytest.param(Case("GlobalAveragePool", 1, IMG), id="GlobalAveragePool"),
        pytest.param(Case("GlobalMaxPool", 1, IMG), id="GlobalMaxPool"),
        pytest.param(Case("LRN", 13, IMG, attrs={"size": 3, "alpha": 0.001}), id="LRN"),
    ]


def _norm_cases() -> list[Any]:
    rng = np.random.default_rng(3)
    stats = {k: rng.standard_normal(4).astype(F32) for k in ("scale", "b", "mean")}
    stats["var"] = rng.random(4).astype(F32) + 0.5
    gamma, beta = rng.standard_normal(4).astype(F32), rng.standard_normal(4).astype(F32)
    return [
        pytest.param(Case("BatchNormalization", 15, IMG, stats), id="BatchNorm-15"),
        pytest.param(Case("BatchNormalization", 9, IMG, stats), id="BatchNorm-9"),
        pytest.param(Case("Softmax", 13, X), id="Softmax-13"),
        pytest.param(Case("Softmax", 13, X, attrs={"axis": 1}), id="Softmax-13-axis1"),
        pytest.param(Case("Softmax", 13, {"x": ((3, 9), F16)}), id="Softmax-f16"),
        pytest.param(Case("LogSoftmax", 13, X), id="LogSoftmax-13"),
        pytest.param(
            Case(
                "LayerNormalization",
                17,
                {"x": ((2, 5, 4), F32)},
                {"g": gamma, "b": beta},
                attrs={"epsilon": 1e-3},
            ),
            id="LayerNorm",
        ),
        pytest.param(
            Case("LayerNormalization", 17, {"x": ((2, 5, 4), F16)}, {"g": gamma.astype(F16)}),
            id="LayerNorm-f16-no-B",
        ),
        pytest.param(
            Case("ReduceMean", 13, X, attrs={"axes": [1], "keepdims": 0}), id="ReduceMean-13"
        ),
        pytest.param(Case("ReduceMean", 18, X, {"axes": _c([-1, 0])}), id="ReduceMean-18"),
        pytest.param(
            Case("ReduceSum", 13, X, {"axes": _c([2])}, attrs={"keepdims": 0}), id="ReduceSum-13"
        ),
        pytest.param(Case("ReduceMax", 18, X), id="ReduceMax-18-all"),
    ]


def _shape_cases() -> list[Any]:
    return [
        pytest.param(Case("Transpose", 13, X, attrs={"perm": [2, 0, 1]}), id="Transpose"),
        pytest.param(Case("Reshape", 14, X, {"s": _c([0, -1])}), id="Reshape"),
        pytest.param(Case("Flatten", 13, IMG, attrs={"axis": 2}), id="Flatten"),
        pytest.param(
            Case("Concat", 13, {"a": ((2, 3), F32), "b": ((2, 5), F32)}, attrs={"axis": 1}),
            id="Concat",
        ),
        pytest.param(
            Case(
                "Slice",
                13,
                {"x": ((6, 8), F32)},
                {"s": _c([5, 1]), "e": _c([0, 100]), "a": _c([0, 1]), "t": _c([-2, 3])},
            ),
            id="Slice",
        ),
        pytest.param(
            Case("Gather", 13, X, {"i": _c([[2, -1], [0, 1]])}, attrs={"axis": 1}), id="Gather"
        ),
        pytest.param(Case("Gather", 13, X, {"i": _c(-1)}), id="Gather-scalar"),
        pytest.param(Case("Unsqueeze", 13, X, {"a": _c([0, -1])}), id="Unsqueeze"),
        pytest.param(Case("Squeeze", 13, {"x": ((1, 3, 1, 2), F32)}, {"a": _c([2])}), id="Squeeze"),
        pytest.param(Case("Squeeze", 13, {"x": ((1, 3, 1, 2), F32)}), id="Squeeze-all"),
        pytest.param(Case("Expand", 13, {"x": ((3, 1), F32)}, {"s": _c([2, 1, 4])}), id="Expand"),
        pytest.param(
            Case("Split", 18, {"x": ((7, 2), F32)}, attrs={"num_outputs": 3}, n_outputs=3),
            id="Split-18",
        ),
        pytest.param(
            Case("Split", 13, {"x": ((7, 2), F32)}, {"s": _c([2, 5])}, n_outputs=2), id="Split-13"
        ),
        pytest.param(Case("Shape", 15, X, attrs={"start": 1}), id="Shape-15"),
        pytest.param(
            Case(
                "ConstantOfShape",
                9,
                {},
                {"s": _c([2, 3])},
                attrs={"value": numpy_helper.from_array(_c([1.5], F32))},
            ),
            id="ConstantOfShape",
        ),
        pytest.param(Case("Dropout", 13, X), id="Dropout-13"),
    ]


def _resize_cases() -> list[Any]:
    img = {"x": ((1, 2, 4, 5), F32)}
    empty = _c([], F32)
    return [
        pytest.param(
            Case(
                "Resize",
                13,
                img,
                {"r": empty, "s": _c([1, 1, 2, 1.5], F32)},
                attrs={"mode": "nearest"},
            ),
            id="Resize-nearest",
        ),
        pytest.param(
            Case(
                "Resize",
                13,
                img,
                {"r": empty, "s": _c([1, 1, 2, 2], F32)},
                attrs={
                    "mode": "nearest",
                    "coordinate_transformation_mode": "asymmetric",
                    "nearest_mode": "floor",
                },
            ),
            id="Resize-nearest-asym",
        ),
        pytest.param(
            Case(
                "Resize",
                13,
                img,
                {"r": empty, "s": _c([1, 1, 1.7, 0.6], F32)},
                attrs={"mode": "linear"},
            ),
            id="Resize-linear",
        ),
        pytest.param(
            Case(
                "Resize",
                13,
                img,
                {"r": empty, "s": empty, "z": _c([1, 2, 7, 3])},
                attrs={"mode": "linear", "coordinate_transformation_mode": "align_corners"},
            ),
            id="Resize-linear-sizes-align",
        ),
        pytest.param(
            Case(
                "Resize",
                19,
                img,
                {"r": empty, "s": _c([1, 1, 0.5, 0.8], F32)},
                attrs={"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"},
            ),
            id="Resize-linear-down",
        ),
    ]


CASES = _cases()


def reference_outputs(case: Case, feeds: dict[str, np.ndarray]) -> list[Any]:
    """The reference provider's answer."""
    session = onnxep.InferenceSession(case.model(), providers=["reference"])
    return session.run(None, feeds)


#: Node cases allowed to differ, with why (shared with the GPU run).
KNOWN_DIFFERENCES = {
    "test_attention_4d_causal_fp16_expanded": "float16 computed in float32 and rounded once: "
    "1 ulp from onnx's op-by-op float16 rounding, above the case's atol of 1e-7",
    "test_bernoulli_expanded": "random numbers (RandomUniformLike) differ between runs",
    "test_bernoulli_double_expanded": "random numbers (RandomUniformLike) differ between runs",
    "test_bernoulli_seed_expanded": "random numbers differ from onnx's generator",
}


def chain_model(width: int = 8, rows: int | str = 4) -> onnx.ModelProto:
    """x -> Mul(2) -> Add(b) -> Erf -> Mul(x) -> Relu: one tree, fusible into one kernel."""
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Erf", ["a"], ["e"]),
        helper.make_node("Mul", ["e", "x"], ["p"]),
        helper.make_node("Relu", ["p"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.linspace(-1, 1, width).astype(np.float32), "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [rows, width])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
