"""Each op the C++ provider claims, through ``onnxep.InferenceSession(providers=["cpp"])``.

Every case asserts that the node really ran on CppExecutionProvider (a silent fallback would
pass any numeric check) and compares with onnx's ``ReferenceEvaluator``. Nodes the provider
must decline are checked for the reason it gives.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import onnxep
from onnxep.graph import NodeInfo, graph_from_proto
from onnxep.testing import kernel_test_options
from onnxep_cpp import CppProvider, _fusion
from onnxep_cpp._registry import load_error, native

pytestmark = pytest.mark.skipif(
    native is None, reason=f"the C++ extension is not built: {load_error}"
)

CPP = CppProvider.name


def single_node(op, shapes, opset, n_outputs=1, **attrs):
    """A float32 model with one node; inputs named x0, x1, ... ('' shapes skip an input)."""
    names = [f"x{i}" if s is not None else "" for i, s in enumerate(shapes)]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s))
        for n, s in zip(names, shapes)
        if s is not None
    ]
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outs, name="node", **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def feeds_for(model, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        x = rng.standard_normal(shape).astype(np.float32) * 2
        feeds[value.name] = np.abs(x) + 0.1 if positive else x
    return feeds


def run_both(model, feeds):
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["cpp"])
    assert session.assignment("node") == CPP, str(session.explain())
    got = session.run(None, feeds)
    expected = ReferenceEvaluator(model).run(None, feeds)
    return got, expected


CASES = [
    # op, input shapes, opset, attrs
    ("Gemm", [(5, 7), (7, 3), (3,)], 13, {"alpha": 0.5, "beta": 2.0}),
    ("Gemm", [(7, 5), (3, 7), (5, 1)], 9, {"transA": 1, "transB": 1}),
    ("Gemm", [(1, 127), (127, 9)], 11, {}),
    ("MatMul", [(2, 3, 4, 5), (5, 6)], 13, {}),
    ("MatMul", [(3, 1, 4, 5), (2, 5, 7)], 9, {}),
    ("MatMul", [(5,), (5, 3)], 13, {}),
    ("Conv", [(2, 3, 9, 8), (4, 3, 3, 3), (4,)], 11, {"pads": [1, 0, 1, 2], "strides": [2, 1]}),
    ("Conv", [(1, 4, 10, 10), (6, 2, 3, 3)], 22, {"group": 2, "dilations": [2, 1]}),
    ("Conv", [(1, 6, 8, 8), (6, 1, 3, 3), (6,)], 11, {"group": 6, "auto_pad": "SAME_UPPER"}),
    ("Conv", [(1, 3, 9, 9), (2, 3, 2, 2)], 11, {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ("Conv", [(2, 3, 31), (5, 3, 4)], 11, {"pads": [2, 1], "strides": [2]}),
    ("Conv", [(1, 3, 7, 7), (2, 3, 3, 3)], 1, {"auto_pad": "VALID"}),
    (
        "MaxPool",
        [(1, 2, 9, 9)],
        12,
        {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]},
    ),
    ("MaxPool", [(2, 3, 8, 7)], 22, {"kernel_shape": [2, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("MaxPool", [(1, 2, 10, 10)], 11, {"kernel_shape": [3, 3], "dilations": [2, 2]}),
    ("MaxPool", [(1, 2, 17)], 10, {"kernel_shape": [3], "strides": [2], "auto_pad": "SAME_UPPER"}),
    ("MaxPool", [(1, 2, 6, 6)], 7, {"kernel_shape": [2, 2]}),
    (
        "AveragePool",
        [(1, 2, 9, 9)],
        11,
        {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
    ),
    (
        "AveragePool",
        [(2, 3, 8, 7)],
        19,
        {"kernel_shape": [3, 2], "strides": [2, 2], "ceil_mode": 1},
    ),
    ("AveragePool", [(1, 2, 9, 9)], 7, {"kernel_shape": [2, 2], "auto_pad": "SAME_LOWER"}),
    ("AveragePool", [(1, 3, 20)], 22, {"kernel_shape": [4], "pads": [1, 2], "strides": [3]}),
    ("Relu", [(3, 127)], 14, {}),
    ("Relu", [(0, 3)], 13, {}),
    ("Sigmoid", [(7, 9)], 13, {}),
    ("Tanh", [(7, 9)], 6, {}),
    ("Exp", [(130,)], 13, {}),
    ("Neg", [(2, 2)], 13, {}),
    ("Abs", [(2, 2)], 6, {}),
    ("Erf", [(64,)], 13, {}),
    ("LeakyRelu", [(5, 5)], 16, {"alpha": 0.3}),
    ("LeakyRelu", [(5, 5)], 6, {}),
    ("Clip", [(4, 8)], 6, {"min": -0.5, "max": 0.75}),
    ("Clip", [(4, 8)], 6, {}),
    ("Add", [(2, 3, 4), (3, 1)], 14, {}),
    ("Sub", [(4,), (2, 3, 4)], 7, {}),
    ("Mul", [(1, 5), (6, 1)], 13, {}),
    ("Div", [(3, 4), (4,)], 14, {}),
    ("Max", [(3, 4), (4,), (2, 1, 1)], 13, {}),
    ("Min", [(3, 4)], 8, {}),
    ("Softmax", [(3, 4, 5)], 13, {"axis": 1}),
    ("Softmax", [(2, 130)], 13, {}),
    ("GlobalAveragePool", [(2, 3, 5, 7)], 22, {}),
    ("GlobalAveragePool", [(2, 3, 9)], 1, {}),
    ("GlobalMaxPool", [(2, 3, 5, 7)], 1, {}),
]


@pytest.mark.parametrize(
    ("op", "shapes", "opset", "attrs"),
    [pytest.param(*c, id=f"{c[0]}-{c[2]}-{i}") for i, c in enumerate(CASES)],
)
def test_op_runs_on_cpp_and_matches_reference(op, shapes, opset, attrs):
    model = single_node(op, shapes, opset, **attrs)
    got, expected = run_both(model, feeds_for(model))
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape and g.dtype == e.dtype
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["Log", "Sqrt"])
def test_positive_domain_ops(op):
    model = single_node(op, [(3, 50)], 13)
    got, expected = run_both(model, feeds_for(model, positive=True))
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)


def test_pow_with_positive_base():
    model = single_node("Pow", [(3, 4), (4,)], 15)
    feeds = feeds_for(model)
    feeds["x0"] = np.abs(feeds["x0"]) + 0.5
    got, expected = run_both(model, feeds)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)


@pytest.mark.parametrize("bounds", [(True, True), (True, False), (False, True), (False, False)])
def test_clip_with_optional_bound_inputs(bounds):
    shapes = [(4, 8), () if bounds[0] else None, () if bounds[1] else None]
    while shapes[-1] is None:
        shapes.pop()
    model = single_node("Clip", shapes, 13)
    feeds = feeds_for(model)
    if "x1" in feeds and "x2" in feeds:
        feeds["x2"] = np.abs(feeds["x2"]) + feeds["x1"]  # keep min <= max
    got, expected = run_both(model, feeds)
    np.testing.assert_array_equal(got[0], expected[0])


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("axis", [-1, 1])
def test_layer_normalization_all_outputs(with_bias, axis):
    shapes = [(2, 3, 16), (3, 16) if axis == 1 else (16,)]
    if with_bias:
        shapes.append((16,))  # broadcast against the normalized shape
    model = single_node("LayerNormalization", shapes, 17, n_outputs=3, axis=axis, epsilon=1e-3)
    got, expected = run_both(model, feeds_for(model))
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("opset", "shape"), [(9, (2, 3, 4, 5)), (14, (2, 3, 7)), (15, (4, 3))])
def test_batch_normalization_inference(opset, shape):
    """Against the formula: ReferenceEvaluator mixes batch statistics in for opsets 9-13."""
    shapes = [shape, (3,), (3,), (3,), (3,)]
    model = single_node("BatchNormalization", shapes, opset, epsilon=1e-3)
    feeds = feeds_for(model)
    feeds["x4"] = np.abs(feeds["x4"]) + 0.1  # variances
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["cpp"])
    assert session.assignment("node") == CPP
    x, scale, bias, mean, var = (feeds[f"x{i}"].astype(np.float64) for i in range(5))
    c = (1, 3) + (1,) * (len(shape) - 2)
    expected = (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + 1e-3) * scale.reshape(c)
    expected += bias.reshape(c)
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, rtol=1e-5, atol=1e-5)


def test_non_contiguous_feed():
    model = single_node("Add", [(4, 5), (5,)], 14)
    feeds = feeds_for(model)
    feeds["x0"] = np.ascontiguousarray(np.random.default_rng(3).random((8, 5), np.float32))[::2]
    got, expected = run_both(model, feeds)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)


def test_chain_runs_as_one_cpp_segment():
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["g"], name="gemm", transB=1),
        helper.make_node("Softmax", ["g"], ["y"], name="softmax"),
    ]
    rng = np.random.default_rng(0)
    inits = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "fc": rng.standard_normal((10, 64)).astype(np.float32) * 0.1,
    }
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["cpp"])
    placed = {n: session.assignment(n) for n in ("conv", "relu", "pool", "gemm", "softmax")}
    assert set(placed.values()) == {CPP}, str(session.explain())
    assert session.assignment("flatten") != CPP  # no Flatten kernel: the reference runs it
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    (expected,) = ReferenceEvaluator(model).run(None, {"x": x})
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (single_node("Softmax", [(2, 3)], 11), "has versions 13"),
        (single_node("Add", [(2, 3), (3,)], 6), "no kernel for Add-6"),
        (single_node("MaxPool", [(1, 1, 4, 4)], 12, n_outputs=2, kernel_shape=[2, 2]), "Indices"),
        (single_node("Conv", [(1, 1, 4, 4, 4), (1, 1, 2, 2, 2)], 11), "1-D and 2-D"),
        (
            single_node("AveragePool", [(1, 1, 4, 4)], 11, kernel_shape=[2, 2], pads=[2, 0, 0, 0]),
            "pads",
        ),
        (single_node("LayerNormalization", [(2, 4), (4,)], 17, stash_type=0), "stash_type"),
        (single_node("Gemm", [(2, 3, 4), (4, 2)], 13), "rank"),
    ],
    ids=[
        "softmax-11",
        "add-6",
        "maxpool-indices",
        "conv-3d",
        "pool-big-pads",
        "ln-stash",
        "gemm-3d",
    ],
)
def test_declines_with_a_reason(model, reason):
    graph = graph_from_proto(model.graph, {"": model.opset_import[0].version})
    support = CppProvider().supports(NodeInfo(graph.nodes[0], graph))
    assert not support.ok and reason in support.reason, support.reason


def test_float64_is_declined_and_falls_back():
    model = single_node("Relu", [(3,)], 14)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["cpp"])
    assert session.assignment("node") == "ReferenceExecutionProvider"
    assert "float64" in str(session.explain())


def _schema_default(attr: onnx.defs.OpSchema.Attribute) -> object:
    value = helper.get_attribute_value(attr.default_value)
    if isinstance(value, bytes):
        return value.decode()
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize("kernel", list(CppProvider.kernels), ids=str)
def test_kernel_signature_follows_the_schema(kernel):
    params = inspect.signature(kernel.fn).parameters
    schema = onnx.defs.get_schema(kernel.key.op_type, kernel.key.since_version, kernel.key.domain)
    assert schema.since_version == kernel.key.since_version
    for name, attr in schema.attributes.items():
        assert name in params, f"{kernel.key}: attribute {name} missing"
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        if attr.default_value.type != onnx.AttributeProto.UNDEFINED:
            assert params[name].default == _schema_default(attr), f"{kernel.key}: {name}"


def test_thread_count_reaches_the_kernels():
    model = single_node("Relu", [(3,)], 14)
    options = onnxep.SessionOptions()
    options.intra_op_num_threads = 3
    session = onnxep.InferenceSession(model.SerializeToString(), options, providers=["cpp"])
    provider = session.providers[0]
    assert provider.threads == 3
    graph = session.plan.graph
    bound = provider.bind(NodeInfo(graph.nodes[0], graph))
    assert bound.keywords["threads"] == 3
    np.testing.assert_array_equal(
        session.run(None, {"x0": np.array([-1, 0, 2], np.float32)})[0], [0, 0, 2]
    )


def test_missing_extension_is_reported_and_nothing_else_breaks():
    script = textwrap.dedent(
        """
        import sys, warnings
        import numpy as np
        from onnx import TensorProto, helper

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "onnxep_cpp._kernels":
                    raise ImportError("blocked by the test")
                return None

        sys.meta_path.insert(0, Block())
        import onnxep
        from onnxep_cpp import CppProvider, _fusion
        status = CppProvider.is_available()
        assert not status.ok and "blocked by the test" in status.reason, status
        assert "CppExecutionProvider" not in onnxep.get_available_providers()
        node = helper.make_node("Relu", ["x"], ["y"])
        graph = helper.make_graph([node], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session = onnxep.InferenceSession(model.SerializeToString(), providers=["cpp"])
        assert any("CppExecutionProvider is not available" in str(w.message) for w in caught)
        out = session.run(None, {"x": np.array([-1.0, 2.0], np.float32)})[0]
        assert out.tolist() == [0.0, 2.0]
        print("fallback ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "fallback ok" in done.stdout


def _residual_model(relu_input_is_output: bool) -> onnx.ModelProto:
    """x -> Conv -> Relu -> Conv -> BN -> Relu -> Add(x) -> Relu: three fusable pairs."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", "g", "be", "mu", "var"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["r2"], name="relu_bn"),
        helper.make_node("Add", ["r2", "x"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["y"], name="relu2"),
    ]
    rng = np.random.default_rng(5)
    inits = {
        "w1": rng.standard_normal((4, 4, 3, 3)).astype(np.float32),
        "b1": rng.standard_normal(4).astype(np.float32),
        "w2": rng.standard_normal((4, 4, 3, 3)).astype(np.float32),
        "g": rng.standard_normal(4).astype(np.float32),
        "be": rng.standard_normal(4).astype(np.float32),
        "mu": rng.standard_normal(4).astype(np.float32),
        "var": rng.random(4).astype(np.float32) + 0.5,
    }
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if relu_input_is_output:
        outputs.append(helper.make_tensor_value_info("c1", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes,
        "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 6, 6])],
        outputs,
        [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("relu_input_is_output", [False, True])
def test_compile_fuses_relu_into_conv_batch_norm_and_add(relu_input_is_output):
    model = _residual_model(relu_input_is_output)
    session = onnxep.InferenceSession(  # no graph-level Conv+BN fusion: the provider's own
        model.SerializeToString(), kernel_test_options(), providers=["cpp"]
    )
    (segment,) = session.plan.partition.segments
    assert segment.provider.name == CPP
    provider = CppProvider()
    pairs = _fusion._fusable_pairs(provider, segment)
    fused = sorted(segment.graph.nodes[i].name for i in pairs)
    assert fused == (["add", "bn"] if relu_input_is_output else ["add", "bn", "conv1"])
    assert provider.compile(segment) is not None
    kinds = {step.kind for step in session.plan.steps.values()}
    assert kinds == {"segment"}, session.plan.source
    x = np.random.default_rng(1).standard_normal((2, 4, 6, 6)).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})
    got = session.run(None, {"x": x})
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_compile_declines_segments_without_pairs():
    model = single_node("Relu", [(3,)], 14)
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["cpp"])
    (segment,) = session.plan.partition.segments
    assert CppProvider().compile(segment) is None
    assert {step.kind for step in session.plan.steps.values()} == {"node"}


@pytest.mark.parametrize(
    ("op", "attrs"),
    [
        ("MaxPool", {}),
        ("AveragePool", {"count_include_pad": 0}),
        ("AveragePool", {"count_include_pad": 1}),
    ],
)
def test_ceil_mode_overhang_matches_onnxruntime(op, attrs):
    """A ceil_mode window hanging 3 past the end: onnx's ReferenceEvaluator shifts the input
    by extra_pad // 2 there; onnxruntime (and the C++ kernels) do not."""
    ort = pytest.importorskip("onnxruntime")
    model = single_node(
        op, [(1, 1, 6, 7)], 19, kernel_shape=[5, 5], strides=[4, 4], ceil_mode=1,
        pads=[1, 0, 1, 0], **attrs,
    )  # fmt: skip
    model.ir_version = 9
    feeds = {"x0": np.arange(42, dtype=np.float32).reshape(1, 1, 6, 7)}
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["cpp"])
    assert session.assignment("node") == CPP
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, feeds)[0], expected.run(None, feeds)[0], rtol=1e-6)
