"""The numba segment compiler: elementwise fusion, constant and BatchNorm folding, guards.

The compiled segment is a generated Python function (``.source``); these tests read it to
check what was fused or folded, and compare the numbers with onnx's ReferenceEvaluator or
with the same model run node by node (``fuse=False``).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper as oh
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

import onnxep
from onnxep.testing import kernel_test_options
from onnxep_numba import fusion

NUMBA = "NumbaExecutionProvider"
F32 = onnx.TensorProto.FLOAT
RNG = np.random.default_rng(1)


def make_model(nodes, inputs, outputs, initializers=None, opset=17, ir_version=10):  # type: ignore[no-untyped-def]
    graph = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info(n, F32, s) for n, s in inputs.items()],
        [oh.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = ir_version
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def session_of(model: onnx.ModelProto, **options: object) -> onnxep.InferenceSession:
    session = onnxep.InferenceSession(
        model.SerializeToString(), kernel_test_options(), providers=[("numba", options)]
    )
    for i in range(len(model.graph.node)):
        assert session.assignment(i) == NUMBA, str(session.explain())
    return session


def segment_sources(session: onnxep.InferenceSession) -> list[str]:
    return [v.source for v in session.plan._namespace.values() if hasattr(v, "source")]


def calls(source: str) -> list[str]:
    """The kernel-calling lines of a compiled segment."""
    return [
        line.strip()
        for line in source.splitlines()
        if "= f" in line or line.strip().startswith("f")
    ]


def test_a_chain_of_500_adds_is_one_kernel() -> None:
    n = 500
    nodes = [
        oh.make_node("Add", ["x" if i == 0 else f"a{i - 1}", "b"], [f"a{i}"]) for i in range(n)
    ]
    model = make_model(nodes, {"x": [4, 3], "b": [3]}, [f"a{n - 1}"])
    session = session_of(model)
    (source,) = segment_sources(session)
    assert len(calls(source)) == 1, source
    fused = [k for k in fusion._kernels.values() if len(k.program.nodes) == n]
    assert fused, "no 500-op program was compiled"
    x, b = RNG.standard_normal((4, 3)).astype(np.float32), RNG.standard_normal(3).astype(np.float32)
    (got,) = session.run(None, {"x": x, "b": b})
    want = x.copy()
    for _ in range(n):
        want = want + b
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_values_read_outside_the_group_are_written_intermediates_are_not() -> None:
    nodes = [
        oh.make_node("Add", ["x", "b"], ["s"]),
        oh.make_node("Relu", ["s"], ["r"]),  # read by MatMul: written out
        oh.make_node("Mul", ["r", "s"], ["m"]),
        oh.make_node("Sigmoid", ["m"], ["y"]),
        oh.make_node("MatMul", ["r", "w"], ["z"]),
    ]
    model = make_model(
        nodes, {"x": ["n", 8], "b": [8]}, ["y", "z"], {"w": RNG.random((8, 3)).astype(np.float32)}
    )
    session = session_of(model)
    (source,) = segment_sources(session)
    targets = calls(source)[0].split("=")[0]
    assert len([t for t in targets.split(",") if t.strip()]) == 2, source  # r and y; not s, m
    feeds = {
        "x": RNG.standard_normal((5, 8)).astype(np.float32),
        "b": RNG.standard_normal(8).astype(np.float32),
    }
    for got, want in zip(session.run(None, feeds), ReferenceEvaluator(model).run(None, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_written_value_smaller_than_the_loop_runs_unfused() -> None:
    """``g = sigmoid(b)`` has b's shape, not the loop's: the group falls back at run time."""
    nodes = [oh.make_node("Sigmoid", ["b"], ["g"]), oh.make_node("Mul", ["x", "g"], ["y"])]
    model = make_model(nodes, {"x": [3, 4], "b": [4]}, ["g", "y"])
    session = session_of(model)
    feeds = {
        "x": RNG.standard_normal((3, 4)).astype(np.float32),
        "b": RNG.standard_normal(4).astype(np.float32),
    }
    got = session.run(None, feeds)
    assert got[0].shape == (4,) and got[1].shape == (3, 4)
    for g, w in zip(got, ReferenceEvaluator(model).run(None, feeds)):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_groups_stay_convex() -> None:
    """``a -> MatMul -> c`` and ``a -> c``: a and c must not share a kernel (a cycle)."""
    nodes = [
        oh.make_node("Relu", ["x"], ["a"]),
        oh.make_node("MatMul", ["a", "w"], ["m"]),
        oh.make_node("Add", ["a", "m"], ["c"]),
        oh.make_node("Tanh", ["c"], ["y"]),
    ]
    model = make_model(nodes, {"x": [4, 4]}, ["y"], {"w": RNG.random((4, 4)).astype(np.float32)})
    session = session_of(model)
    (source,) = segment_sources(session)
    assert len(calls(source)) == 3, source  # relu | matmul | add+tanh
    feeds = {"x": RNG.standard_normal((4, 4)).astype(np.float32)}
    np.testing.assert_allclose(
        session.run(None, feeds)[0], ReferenceEvaluator(model).run(None, feeds)[0], rtol=1e-5
    )


def test_fused_kernels_are_shared_between_sessions() -> None:
    nodes = [oh.make_node("Mul", ["x", "x"], ["m"]), oh.make_node("Erf", ["m"], ["y"])]
    model = make_model(nodes, {"x": ["n"]}, ["y"])
    feeds = {"x": RNG.standard_normal(7).astype(np.float32)}
    session_of(model).run(None, feeds)
    before = {k: len(v._variants) for k, v in fusion._kernels.items()}
    session_of(model).run(None, {"x": RNG.standard_normal(9).astype(np.float32)})
    after = {k: len(v._variants) for k, v in fusion._kernels.items()}
    assert after == before, "the second session compiled new kernels"


def test_dynamic_shapes_reuse_one_kernel() -> None:
    nodes = [oh.make_node("Add", ["x", "b"], ["s"]), oh.make_node("Tanh", ["s"], ["y"])]
    model = make_model(nodes, {"x": ["n", "m"], "b": ["m"]}, ["y"])
    session = session_of(model)
    reference = ReferenceEvaluator(model)
    for shape in [(1, 3), (5, 3), (2, 70000), (0, 3)]:
        feeds = {
            "x": RNG.standard_normal(shape).astype(np.float32),
            "b": RNG.standard_normal(shape[1]).astype(np.float32),
        }
        np.testing.assert_allclose(
            session.run(None, feeds)[0], reference.run(None, feeds)[0], rtol=1e-6, atol=1e-7
        )


def _conv_bn_relu(ir_version: int = 10, overridable: bool = False) -> onnx.ModelProto:
    c, m = 3, 4
    inits = {
        "w": RNG.standard_normal((m, c, 3, 3)).astype(np.float32),
        "cb": RNG.standard_normal(m).astype(np.float32),
        "scale": RNG.random(m).astype(np.float32) + 0.5,
        "bias": RNG.standard_normal(m).astype(np.float32),
        "mean": RNG.standard_normal(m).astype(np.float32),
        "var": RNG.random(m).astype(np.float32) + 0.5,
        "k": RNG.random((m, 1, 1)).astype(np.float32),
    }
    nodes = [
        oh.make_node("Conv", ["x", "w", "cb"], ["c"], pads=[1, 1, 1, 1]),
        oh.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["bn"]),
        oh.make_node("Mul", ["bn", "k"], ["scaled"]),  # a per-channel constant: folded too
        oh.make_node("Relu", ["scaled"], ["y"]),
    ]
    inputs = {"x": [1, c, 6, 5]}
    if overridable:  # initializers also listed as graph inputs: a caller may feed them
        inputs.update({k: list(v.shape) for k, v in inits.items()})
    return make_model(nodes, inputs, ["y"], inits, opset=15, ir_version=ir_version)


def _bn_formula(model: onnx.ModelProto, x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    v = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    w = v["w"] if w is None else w
    conv = onnx.reference.ReferenceEvaluator(
        oh.make_model(
            oh.make_graph(
                [oh.make_node("Conv", ["x", "w", "cb"], ["c"], pads=[1, 1, 1, 1])],
                "c",
                [oh.make_tensor_value_info(n, F32, None) for n in ("x", "w", "cb")],
                [oh.make_tensor_value_info("c", F32, None)],
            ),
            opset_imports=[oh.make_opsetid("", 15)],
        )
    ).run(None, {"x": x, "w": w, "cb": v["cb"]})[0]
    r = (slice(None), None, None)
    bn = (conv - v["mean"][r]) / np.sqrt(v["var"][r] + 1e-5) * v["scale"][r] + v["bias"][r]
    return np.maximum(bn * v["k"], 0)


def test_batchnorm_and_channel_scale_fold_into_conv_with_relu() -> None:
    model = _conv_bn_relu()
    session = session_of(model)
    (source,) = segment_sources(session)
    assert len(calls(source)) == 1, source  # conv + bn + mul + relu: one call
    x = RNG.standard_normal((1, 3, 6, 5)).astype(np.float32)
    np.testing.assert_allclose(
        session.run(None, {"x": x})[0], _bn_formula(model, x), rtol=1e-4, atol=1e-5
    )


def test_fed_initializers_are_not_folded_in() -> None:
    """Initializers listed as graph inputs (IR >= 4) may be fed: the folded build checks."""
    model = _conv_bn_relu(overridable=True)
    session = session_of(model)
    x = RNG.standard_normal((1, 3, 6, 5)).astype(np.float32)
    np.testing.assert_allclose(
        session.run(None, {"x": x})[0], _bn_formula(model, x), rtol=1e-4, atol=1e-5
    )
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    got = session.run(None, {"x": x, "w": w})[0]
    np.testing.assert_allclose(got, _bn_formula(model, x, w), rtol=1e-4, atol=1e-5)


def test_standalone_batchnorm_becomes_part_of_an_elementwise_kernel() -> None:
    c = 5
    inits = {k: RNG.random(c).astype(np.float32) + 0.5 for k in ("s", "b", "m", "v")}
    nodes = [
        oh.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["bn"]),
        oh.make_node("Add", ["bn", "x"], ["a"]),
        oh.make_node("Relu", ["a"], ["y"]),
    ]
    model = make_model(nodes, {"x": [2, c, 3, 3]}, ["y"], inits, opset=15)
    session = session_of(model)
    (source,) = segment_sources(session)
    assert len(calls(source)) == 1, source
    x = RNG.standard_normal((2, c, 3, 3)).astype(np.float32)
    r = (slice(None), None, None)
    bn = (x - inits["m"][r]) / np.sqrt(inits["v"][r] + 1e-5) * inits["s"][r] + inits["b"][r]
    np.testing.assert_allclose(
        session.run(None, {"x": x})[0], np.maximum(bn + x, 0), rtol=1e-5, atol=1e-6
    )


def test_constants_are_folded_at_compile_time() -> None:
    nodes = [
        oh.make_node(
            "ConstantOfShape",
            ["shape"],
            ["ones"],
            value=numpy_helper.from_array(np.ones(1, np.float32)),
        ),
        oh.make_node("Mul", ["ones", "two"], ["twos"]),
        oh.make_node("Add", ["x", "twos"], ["y"]),
    ]
    inits = {"shape": np.array([3], np.int64), "two": np.array([2.0], np.float32)}
    session = session_of(make_model(nodes, {"x": [2, 3]}, ["y"], inits))
    (source,) = segment_sources(session)
    assert len(calls(source)) == 1, source  # only x + constant is left
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x + 2)


@pytest.mark.parametrize("fuse", [True, False])
def test_fusion_on_and_off_agree(fuse: bool) -> None:
    nodes = [
        oh.make_node("Div", ["x", "k"], ["d"]),
        oh.make_node("Erf", ["d"], ["e"]),
        oh.make_node("Add", ["e", "one"], ["p"]),
        oh.make_node("Mul", ["x", "p"], ["xp"]),
        oh.make_node("Mul", ["xp", "half"], ["y"]),
    ]
    inits = {"k": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)}
    model = make_model(nodes, {"x": [3, 16]}, ["y"], inits)
    session = session_of(model, fuse=fuse)
    (source,) = segment_sources(session)
    assert len(calls(source)) == (1 if fuse else 5), source
    x = RNG.standard_normal((3, 16)).astype(np.float32)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(session.run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-7)
