"""Each numba kernel against onnx's ReferenceEvaluator (or a numpy formula where it is wrong).

Every test asserts that the numba provider really ran the nodes (a silent fallback to the
reference path would pass any numeric check). Elementwise ops are tested many per model:
the segment compiler fuses them into one generated kernel, which keeps the number of numba
compilations (the cost of a cold run) small.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper as oh
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

import onnxep

NUMBA = "NumbaExecutionProvider"
F32 = onnx.TensorProto.FLOAT
RNG = np.random.default_rng(0)


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple[int, list[Any]]],
    outputs: list[str],
    opset: int = 20,
    initializers: dict[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """A model of ``nodes``; output types come from onnx's shape inference."""
    graph = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
        [oh.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 10
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def run_numba(
    model: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    expected: list[np.ndarray] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    on_numba: int | None = None,
) -> list[np.ndarray]:
    """Run on numba, assert placement (all nodes, or the first ``on_numba``), compare."""
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["numba"])
    count = len(model.graph.node) if on_numba is None else on_numba
    for i in range(count):
        assert session.assignment(i) == NUMBA, str(session.explain())
    got = session.run(None, feeds)
    if expected is None:
        expected = ReferenceEvaluator(model).run(None, feeds)
    names = [o.name for o in model.graph.output]
    for name, g, e in zip(names, got, expected, strict=True):
        e = np.asarray(e)
        assert g.shape == e.shape, f"{name}: shape {g.shape} != {e.shape}"
        assert g.dtype == e.dtype, f"{name}: dtype {g.dtype} != {e.dtype}"
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=name)
    return got


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime's outputs, the oracle where onnx's evaluator is wrong."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the oracle for this op")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, feeds)


def _fused_kernels(model: onnx.ModelProto) -> int:
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["numba"])
    sources = [v.source for v in session.plan._namespace.values() if hasattr(v, "source")]
    return sum(s.count(" = f") for s in sources)


UNARY = [
    ("Relu", {}),
    ("LeakyRelu", {"alpha": 0.1}),
    ("Sigmoid", {}),
    ("Tanh", {}),
    ("Erf", {}),
    ("Gelu", {}),
    ("Gelu", {"approximate": "tanh"}),
    ("HardSwish", {}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
    ("Abs", {}),
    ("Neg", {}),
    ("Exp", {}),
    ("Log", {}),
    ("Sqrt", {}),
    ("Reciprocal", {}),
    ("Floor", {}),
    ("Ceil", {}),
    ("Sin", {}),
    ("Cos", {}),
    ("Softplus", {}),
    ("Elu", {"alpha": 0.5}),
    ("Selu", {}),
    ("Sign", {}),
    ("ThresholdedRelu", {"alpha": 0.2}),
    ("IsNaN", {}),
    ("Identity", {}),
]
assert UNARY[24][0] == "IsNaN"


def test_unary_ops_fused_into_one_kernel() -> None:
    nodes = [oh.make_node(op, ["x"], [f"y{i}"], **attrs) for i, (op, attrs) in enumerate(UNARY)]
    nodes.append(oh.make_node("Clip", ["x", "lo", "hi"], ["clip"]))
    nodes.append(oh.make_node("Clip", ["x", "", "hi"], ["clip_hi"]))
    nodes.append(oh.make_node("Cast", ["y24"], ["nan_f"], to=F32))  # y24: IsNaN
    floats = [n.output[0] for n in nodes if n.output[0] != "y24"]
    nodes.append(oh.make_node("Sum", floats, ["total"]))  # one consumer: one fused tree
    outputs = [n.output[0] for n in nodes]
    model = make_model(
        nodes,
        {"x": (F32, [3, "n", 7])},
        outputs,
        initializers={"lo": np.float32(-0.5), "hi": np.float32(0.7)},
    )
    x = RNG.standard_normal((3, 5, 7)).astype(np.float32) * 3
    x[0, 0, :3] = [np.nan, np.inf, -np.inf]
    with np.errstate(all="ignore"):
        run_numba(model, {"x": x}, rtol=1e-5, atol=1e-6)
    assert _fused_kernels(model) == 1


def test_binary_ops_broadcast_and_variadic() -> None:
    ops = [
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "PRelu",
        "Equal",
        "Less",
        "Greater",
        "LessOrEqual",
        "GreaterOrEqual",
        "Max",
        "Min",
        "Sum",
    ]
    nodes = [oh.make_node(op, ["a", "b"], [f"y_{op}"]) for op in ops]
    nodes += [
        oh.make_node("Max", ["a", "b", "c"], ["max3"]),
        oh.make_node("Sum", ["a", "b", "c"], ["sum3"]),
        oh.make_node("Mean", ["a", "a", "a2"], ["mean3"]),  # onnx's Mean does not broadcast
        oh.make_node("Greater", ["a", "b"], ["gt"]),
        oh.make_node("Where", ["gt", "a", "c"], ["where"]),
        oh.make_node("Not", ["gt"], ["not"]),
        oh.make_node("Less", ["a", "c"], ["lt"]),
        oh.make_node("Xor", ["gt", "lt"], ["xor"]),
        oh.make_node("And", ["gt", "lt"], ["and"]),
        oh.make_node("Or", ["gt", "lt"], ["or"]),
        oh.make_node("Cast", ["a"], ["to_i64"], to=onnx.TensorProto.INT64),
        oh.make_node("Cast", ["gt"], ["to_f64"], to=onnx.TensorProto.DOUBLE),
    ]
    outputs = [n.output[0] for n in nodes]
    shapes = {"a": (F32, [2, 1, 5]), "b": (F32, [3, 1]), "c": (F32, [5]), "a2": (F32, [2, 1, 5])}
    model = make_model(nodes, shapes, outputs)
    feeds = {
        "a": np.abs(RNG.standard_normal((2, 1, 5))).astype(np.float32) * 4,
        "a2": RNG.standard_normal((2, 1, 5)).astype(np.float32),
        "b": RNG.standard_normal((3, 1)).astype(np.float32),
        "c": RNG.standard_normal(5).astype(np.float32),
    }
    feeds["b"][0, 0] = 0.0  # a / 0
    with np.errstate(all="ignore"):
        run_numba(model, feeds, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float64])
def test_arithmetic_on_other_dtypes(dtype: type) -> None:
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes = [
        oh.make_node("Add", ["a", "b"], ["s"]),
        oh.make_node("Mul", ["s", "a"], ["m"]),
        oh.make_node("Max", ["m", "b"], ["y"]),
        oh.make_node("Abs", ["y"], ["z"]),
    ]
    model = make_model(nodes, {"a": (elem, [4, 3]), "b": (elem, [3])}, ["z", "s"])
    feeds = {
        "a": RNG.integers(-50, 50, (4, 3)).astype(dtype),
        "b": RNG.integers(-9, 9, 3).astype(dtype),
    }
    run_numba(model, feeds)


def test_empty_tensors() -> None:
    nodes = [
        oh.make_node("Add", ["x", "b"], ["s"]),
        oh.make_node("Relu", ["s"], ["r"]),
        oh.make_node("ReduceSum", ["r"], ["total"], keepdims=0),
        oh.make_node("Transpose", ["r"], ["t"], perm=[1, 0]),
        oh.make_node("Softmax", ["x"], ["sm"]),
    ]
    model = make_model(nodes, {"x": (F32, ["n", 3]), "b": (F32, [3])}, ["r", "total", "t", "sm"])
    feeds = {"x": np.zeros((0, 3), np.float32), "b": np.ones(3, np.float32)}
    got = run_numba(model, feeds)
    assert got[0].shape == (0, 3) and got[1].shape == () and got[1] == 0


@pytest.mark.parametrize("opset", [13, 18])
def test_reductions(opset: int) -> None:
    nodes, outputs = [], []
    for i, (op, axes, keep) in enumerate(
        [
            ("ReduceMean", [-1], 1),
            ("ReduceSum", [0, 2], 0),
            ("ReduceMax", [1], 1),
            ("ReduceMean", [], 0),
            ("ReduceSum", [1], 1),
            ("ReduceMax", [0, 2], 0),
        ]
    ):
        attr_axes = op != "ReduceSum" and opset < 18
        ins = ["x"] if attr_axes or not axes else ["x", f"axes{i}"]
        extra = {"axes": axes} if attr_axes and axes else {}
        nodes.append(oh.make_node(op, ins, [f"y{i}"], keepdims=keep, **extra))
        outputs.append(f"y{i}")
    inits = {
        f"axes{i}": np.array(a, np.int64)
        for i, (_, a, _) in enumerate(
            [(0, [-1], 0), (0, [0, 2], 0), (0, [1], 0), (0, [], 0), (0, [1], 0), (0, [0, 2], 0)]
        )
        if a
    }
    model = make_model(nodes, {"x": (F32, [3, 4, 5])}, outputs, opset, inits)
    run_numba(model, {"x": RNG.standard_normal((3, 4, 5)).astype(np.float32)}, rtol=1e-5, atol=1e-5)


def test_tensor_ops() -> None:
    nodes = [
        oh.make_node("Transpose", ["x"], ["t"], perm=[2, 0, 1]),
        oh.make_node("Transpose", ["x"], ["t_default"]),
        oh.make_node("Concat", ["x", "x", "x"], ["cat"], axis=1),
        oh.make_node("Reshape", ["x", "shape"], ["r"]),
        oh.make_node("Flatten", ["x"], ["f"], axis=2),
        oh.make_node("Unsqueeze", ["x", "ax"], ["u"]),
        oh.make_node("Squeeze", ["u", "ax"], ["sq"]),
        oh.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["sl"]),
        oh.make_node("Expand", ["c", "eshape"], ["ex"]),
        oh.make_node("Gather", ["x", "idx"], ["ga"], axis=1),
        oh.make_node("Shape", ["x"], ["sh"], start=1),
        oh.make_node("ConstantOfShape", ["sh"], ["cos"]),
    ]
    inits = {
        "shape": np.array([0, -1], np.int64),
        "ax": np.array([1, -1], np.int64),
        "starts": np.array([4, 0], np.int64),
        "ends": np.array([-100, 2], np.int64),
        "axes": np.array([2, 0], np.int64),
        "steps": np.array([-2, 1], np.int64),
        "eshape": np.array([2, 1, 3], np.int64),
        "idx": np.array([[0, -1], [1, 1]], np.int64),
    }
    outputs = [n.output[0] for n in nodes]
    model = make_model(nodes, {"x": (F32, [2, 3, 5]), "c": (F32, [3])}, outputs, 20, inits)
    feeds = {
        "x": RNG.standard_normal((2, 3, 5)).astype(np.float32),
        "c": RNG.standard_normal(3).astype(np.float32),
    }
    run_numba(model, feeds)


@pytest.mark.parametrize(
    ("node", "opset", "reason"),
    [
        (oh.make_node("Softmax", ["x"], ["y"]), 11, "Softmax-11"),
        (oh.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]), 13, "'i'"),
        (oh.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic"), 19, "mode='cubic'"),
        (oh.make_node("Pad", ["x", "p"], ["y"], mode="bogus"), 19, "mode='bogus'"),
    ],
)
def test_declined_nodes_fall_back_with_a_reason(
    node: onnx.NodeProto, opset: int, reason: str
) -> None:
    inits = {"s": np.array([1, 1, 2, 2], np.float32), "p": np.zeros(8, np.int64)}
    graph = oh.make_graph(
        [node],
        "g",
        [oh.make_tensor_value_info("x", F32, [1, 2, 4, 4])],
        [oh.make_tensor_value_info(o, F32, None) for o in node.output],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items() if k in node.input],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 10
    explain = onnxep.InferenceSession(model.SerializeToString(), providers=["numba"]).explain()
    refusals = explain.to_dict()["fallback"][0]["declined_by"]
    assert refusals[0]["provider"] == NUMBA and reason in refusals[0]["reason"], refusals
