"""The CuPy provider's compiler and kernels, run on numpy (no GPU needed).

``EmulatedCuPyProvider`` (conftest) is ``CuPyProvider`` with host memory as its "device":
placement, constant and BatchNorm folding, residency, fusion and every kernel's array code
run as on the GPU, with the fused expressions evaluated by numpy. What this cannot check
is CuPy itself (kernel compilation and launch); ``test_cupy_gpu.py`` does, on a GPU.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from cupy_cases import CASES, KNOWN_DIFFERENCES, Case, chain_model, reference_outputs
from onnx import helper, numpy_helper

import onnxep
from onnxep.models import build_encoder, encoder_inputs, light_model_paths
from onnxep.testing import kernel_test_options


def _session(model: onnx.ModelProto, name: str) -> onnxep.InferenceSession:
    return onnxep.InferenceSession(
        model.SerializeToString(), kernel_test_options(), providers=[name]
    )


@pytest.mark.parametrize("case", CASES)
def test_kernel_matches_reference(emulated_cupy: str, case: Case) -> None:
    session = _session(case.model(), emulated_cupy)
    assert session.assignment(0) == emulated_cupy, session.explain()
    feeds = case.data()
    got = session.run(None, feeds)
    for g, want in zip(got, reference_outputs(case, feeds)):
        assert np.asarray(g).dtype == np.asarray(want).dtype
        np.testing.assert_allclose(np.asarray(g, np.float64), want, **case.tolerance)


def test_elementwise_chain_is_one_kernel(emulated_cupy: str) -> None:
    model = chain_model()
    session = _session(model, emulated_cupy)
    assert {session.assignment(i) for i in range(5)} == {emulated_cupy}
    (program,) = session.providers[0].programs
    assert len(program.fused) == 1 and program.fused[0].n_nodes == 5
    assert program.kernel_steps == 1
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    want = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"]).run(
        None, {"x": x}
    )
    np.testing.assert_allclose(session.run(None, {"x": x})[0], want[0], rtol=1e-5, atol=1e-6)


def test_value_read_twice_inside_one_kernel_is_computed_once(emulated_cupy: str) -> None:
    """s = sigmoid(x) read twice by Mul: still one kernel, s a temporary computed once."""
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"]),
        helper.make_node("Mul", ["s", "s"], ["q"]),
        helper.make_node("Add", ["q", "x"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = _session(model, emulated_cupy)
    (program,) = session.providers[0].programs
    assert [spec.n_nodes for spec in program.fused] == [3]
    assert program.fused[0].operation.count("expf") == 1
    x = np.array([-1.0, 0.0, 2.0], np.float32)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(session.run(None, {"x": x})[0], s * s + x, rtol=1e-6)


def test_value_read_outside_the_kernel_is_not_inlined(emulated_cupy: str) -> None:
    """s is also a graph output: it is its own kernel's result, read by the next one."""
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"]),
        helper.make_node("Mul", ["s", "x"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in ("s", "y")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = _session(model, emulated_cupy)
    (program,) = session.providers[0].programs
    assert [spec.n_nodes for spec in program.fused] == [1, 1]
    x = np.array([-1.0, 0.0, 2.0], np.float32)
    s, y = session.run(None, {"x": x})
    np.testing.assert_allclose(y, s * x, rtol=1e-6)


def test_conv_batchnorm_folded_and_shape_math_on_host(emulated_cupy: str) -> None:
    """Conv+BN becomes one Conv; Shape -> Gather -> Concat -> Reshape never syncs."""
    rng = np.random.default_rng(1)
    inits = {
        "W": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "s": (rng.random(4) + 0.5).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "m": rng.standard_normal(4).astype(np.float32),
        "v": (rng.random(4) + 0.1).astype(np.float32),
        "i0": np.array(0, np.int64),
        "ax": np.array([0], np.int64),
        "m1": np.array([-1], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("Shape", ["r"], ["sh"]),
        helper.make_node("Gather", ["sh", "i0"], ["n"]),
        helper.make_node("Unsqueeze", ["n", "ax"], ["nu"]),
        helper.make_node("Concat", ["nu", "m1"], ["shp"], axis=0),
        helper.make_node("Reshape", ["r", "shp"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = _session(model, emulated_cupy)
    (program,) = session.providers[0].programs
    assert program.bn_folded == 1 and program.syncs == 0 and program.uploads == 0
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    want = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"]).run(
        None, {"x": x}
    )[0]
    np.testing.assert_allclose(session.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-5)


def test_light_model_runs_whole_and_resident(emulated_cupy: str) -> None:
    models = {m.name: m for m in light_model_paths()}
    if "squeezenet" not in models:
        pytest.skip("this onnx build ships no light_* models")
    light = models["squeezenet"]
    model = onnx.load(str(light.path))
    # Its constant weights give ~7e9 logits a few ulps apart, so the softmax output depends on
    # rounding alone: compare the logits too (relative), not only the probabilities.
    (softmax,) = [n for n in model.graph.node if n.op_type == "Softmax"]
    model.graph.output.append(helper.make_tensor_value_info(softmax.input[0], 1, None))
    session = _session(model, emulated_cupy)
    explained = session.explain().to_dict()
    assert {s["provider"] for s in explained["segments"]} == {emulated_cupy}
    # Its weight shapes are initializers listed as graph inputs (overridable): they reach the
    # ConstantOfShape nodes on the host; only the image goes in, the logits and scores come out.
    assert explained["transfers"]["per_run"] == 3, explained["transfers"]
    (program,) = session.providers[0].programs
    assert program.syncs == 0 and program.uploads == 0 and len(program.host_inputs) >= 26
    feeds = {
        n: np.random.default_rng(0).standard_normal(s).astype(np.float32)
        for n, s in light.input_shapes.items()
    }
    reference = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    got, want = session.run(None, feeds), reference.run(None, feeds)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5)
    np.testing.assert_allclose(got[0].sum(), 1, rtol=1e-5)


def test_constant_weights_are_folded_at_compile(emulated_cupy: str) -> None:
    """ConstantOfShape from a true initializer runs once, when the session is built."""
    nodes = [
        helper.make_node(
            "ConstantOfShape",
            ["shape"],
            ["w"],
            value=numpy_helper.from_array(np.array([0.5], np.float32)),
        ),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([3, 4], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = _session(model, emulated_cupy)
    (program,) = session.providers[0].programs
    assert program.folded == ["ConstantOfShape_0"] and program.kernel_steps == 1
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x @ np.full((3, 4), 0.5))


def test_transformer_encoder_runs_fused(emulated_cupy: str) -> None:
    model = build_encoder(layers=1, hidden=32, heads=4, ffn=64, seq=8)
    session = _session(model, emulated_cupy)
    feeds = encoder_inputs(model)
    assert {s["provider"] for s in session.explain().to_dict()["segments"]} == {emulated_cupy}
    program = session.providers[0].programs[0]
    assert any(spec.n_nodes == 6 for spec in program.fused)  # bias Add + the Erf-GELU DAG
    want = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"]).run(
        None, feeds
    )
    np.testing.assert_allclose(session.run(None, feeds)[0], want[0], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_onnx_node_cases_of_every_claimed_op(emulated_cupy: str) -> None:
    """onnx's ~4,000 node cases (and expanded functions) that touch an op the provider claims."""
    from onnxep.verify import verify_provider

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some cases warn by design (overflow, casts)
        results = verify_provider(emulated_cupy)
    passed = sum(len(r.passed) for r in results.values())
    failed = {(op, case, why) for op, r in results.items() for case, why in r.failed}
    unexpected = sorted(f for f in failed if f[1] not in KNOWN_DIFFERENCES)
    assert not unexpected, unexpected
    assert passed > 3000


def test_constant_of_shape_refills_only_when_its_shape_changes(emulated_cupy: str) -> None:
    """The shape is an overridable initializer (a graph input too), as in the light models."""
    from onnxep_cupy.program import _SameShapeSameFill

    nodes = [
        helper.make_node(
            "ConstantOfShape",
            ["shape"],
            ["w"],
            value=numpy_helper.from_array(np.array([2.0], np.float32)),
        ),
        helper.make_node("Mul", ["x", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("shape", onnx.TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([3], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = _session(model, emulated_cupy)
    (program,) = session.providers[0].programs
    (fill,) = [v for v in program.run.__globals__.values() if isinstance(v, _SameShapeSameFill)]
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], 2 * x)
    first = fill.value
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], 2 * x)
    assert fill.value is first  # not filled again
    y = session.run(None, {"x": x[:1], "shape": np.array([1], np.int64)})[0]
    np.testing.assert_array_equal(y, [0.0])
    assert fill.value.shape == (1,)


def test_a_value_only_measured_is_not_uploaded(emulated_cupy: str) -> None:
    """Shape reads dimensions only: its input stays where it is (no copy to the device)."""
    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("s", onnx.TensorProto.INT64, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = _session(model, emulated_cupy)
    values = session.explain().to_dict()["transfers"]["per_run_values"]
    assert not any(v.startswith("x:") for v in values), values
    np.testing.assert_array_equal(session.run(None, {"x": np.zeros((5, 3), np.float32)})[0], [5, 3])
