"""Regression tests for what broke on real exported models (torch, onnxruntime's tools).

Each test rebuilds, in a few onnx.helper nodes, the pattern of a real model that failed
(see the sweep in the commit messages) and compares onnxep with onnxruntime.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from graphs import model, node
from onnx import TensorProto, helper

import onnxep
from onnxep.ort_extensions import EXTENSIONS

ort = pytest.importorskip("onnxruntime", reason="the patterns are compared with onnxruntime")

CHAINS = [None, ["reference"], ["numba"], ["cpp"]]
CHAIN_IDS = ["default", "reference", "numba", "cpp"]


def _ort(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, feeds)


def _check(proto, feeds, providers, rtol=1e-5, atol=1e-6) -> None:
    expected = _ort(proto, feeds)
    session = onnxep.InferenceSession(proto.SerializeToString(), providers=providers)
    got = session.run(None, feeds)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


# --- quantize_static (QDQ) and quantize_dynamic at opsets 13..18 ---------------------------


def _qdq_model(opset: int) -> onnx.ModelProto:
    """Activation Q/DQ pair, a per-channel int8 weight DequantizeLinear, MatMul, int32 bias."""
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (6, 4)).astype(np.int8)
    init = {
        "s": np.array(0.05, np.float32),
        "z": np.array(128, np.uint8),
        "w": w,
        "ws": rng.uniform(0.01, 0.02, 4).astype(np.float32),
        "wz": np.zeros(4, np.int8),
        "b": rng.integers(-500, 500, 4).astype(np.int32),
        "bs": np.array(0.001, np.float32),
    }
    nodes = [
        node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=1),
        node("DequantizeLinear", ["b", "bs"], ["bd"]),
        node("MatMul", ["xd", "wd"], ["m"]),
        node("Add", ["m", "bd"], ["y"]),
    ]
    proto = model(nodes, {"x": ["n", 6]}, ["y"], init, opset=opset)
    return proto


@pytest.mark.parametrize("opset", [13, 17, 18])
@pytest.mark.parametrize("providers", CHAINS, ids=CHAIN_IDS)
def test_qdq_dequantize_linear_before_opset_19(providers, opset):
    # onnx's reference ops implement DequantizeLinear from version 19 on only
    x = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
    _check(_qdq_model(opset), {"x": x}, providers)


def test_dequantize_linear_10_per_tensor():
    nodes = [node("DequantizeLinear", ["x", "s", "z"], ["y"])]
    init = {"s": np.array(0.5, np.float32), "z": np.array(3, np.uint8)}
    proto = model(nodes, {"x": [2, 3]}, ["y"], init, opset=10, elem=TensorProto.UINT8)
    proto.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
    x = np.array([[0, 3, 255], [1, 2, 4]], np.uint8)
    got = onnxep.InferenceSession(proto.SerializeToString(), providers=["reference"]).run(
        None, {"x": x}
    )[0]
    np.testing.assert_array_equal(got, (x.astype(np.float32) - 3) * 0.5)


# --- onnxruntime contrib ops (models saved at ORT_ENABLE_EXTENDED) -------------------------


def _with_domain(proto: onnx.ModelProto, domain: str) -> onnx.ModelProto:
    proto.opset_import.append(helper.make_opsetid(domain, 1))
    return proto


@pytest.mark.parametrize("providers", CHAINS, ids=CHAIN_IDS)
def test_unimplemented_contrib_op_is_named_with_its_domain(providers):
    # the error used to name the first node of the failing segment (a Relu here) and said
    # only "unknown domain"
    attention = helper.make_node(
        "QAttention", ["r", "w"], ["y"], name="attention_quant", domain="com.microsoft"
    )
    nodes = [node("Relu", ["x"], ["r"]), attention]
    init = {"w": np.ones((1, 4, 4), np.int8)}
    proto = _with_domain(model(nodes, {"x": [2, 3]}, ["y"], init), "com.microsoft")
    with pytest.raises(onnxep.errors.NotImplemented) as err:
        onnxep.InferenceSession(proto.SerializeToString(), providers=providers)
    message = str(err.value)
    assert "'attention_quant'" in message
    assert "com.microsoft.QAttention" in message
    assert "ORT_ENABLE_BASIC" in message


def test_unknown_domain_names_the_failing_node():
    custom = helper.make_node("Frob", ["r"], ["y"], name="frob", domain="acme.custom")
    nodes = [node("Relu", ["x"], ["r"]), node("Relu", ["r"], ["r2"]), custom]
    proto = _with_domain(model(nodes, {"x": [2, 3]}, ["y"]), "acme.custom")
    with pytest.raises(onnxep.errors.NotImplemented, match=r"'frob' \(op acme.custom.Frob-1\)"):
        onnxep.InferenceSession(proto.SerializeToString(), providers=["reference"])


def _ms(op: str, inputs: list[str], outputs: list[str], **attrs: object) -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs, name=outputs[0], domain="com.microsoft", **attrs)


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


CONTRIB_CASES = {
    "gelu": ([_ms("Gelu", ["x"], ["y"])], {"x": [2, 8]}, {}),
    "bias_gelu": ([_ms("BiasGelu", ["x", "b"], ["y"])], {"x": [2, 3, 8]}, {"b": _rand(8)}),
    "fast_gelu": ([_ms("FastGelu", ["x"], ["y"])], {"x": [2, 3, 8]}, {}),
    "fast_gelu_bias": ([_ms("FastGelu", ["x", "b"], ["y"])], {"x": [2, 3, 8]}, {"b": _rand(8)}),
    "quick_gelu": ([_ms("QuickGelu", ["x"], ["y"])], {"x": [2, 8]}, {}),
    "quick_gelu_silu": ([_ms("QuickGelu", ["x"], ["y"], alpha=1.0)], {"x": [4, 8]}, {}),
    "fused_matmul": (
        [_ms("FusedMatMul", ["x", "w"], ["y"], alpha=0.25, transB=1)],
        {"x": [2, 3, 4, 8]},
        {"w": _rand(2, 3, 5, 8)},
    ),
    "fused_matmul_trans_a": (
        [_ms("FusedMatMul", ["x", "w"], ["y"], transA=1)],
        {"x": [3, 8, 4]},
        {"w": _rand(8, 6)},
    ),
    "fused_gemm_tanh": (
        [_ms("FusedGemm", ["x", "w", "b"], ["y"], activation="Tanh", transB=1)],
        {"x": [3, 8]},
        {"w": _rand(5, 8), "b": _rand(5)},
    ),
    "fused_gemm_leaky": (
        [_ms("FusedGemm", ["x", "w"], ["y"], activation="LeakyRelu", activation_alpha=0.2)],
        {"x": [3, 8]},
        {"w": _rand(8, 5)},
    ),
    "fused_conv_clip_depthwise": (
        [
            _ms(
                "FusedConv",
                ["x", "w", "b"],
                ["y"],
                activation="Clip",
                activation_params=[0.0, 6.0],
                group=4,
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                strides=[2, 2],
            )
        ],
        {"x": [1, 4, 9, 9]},
        {"w": _rand(4, 1, 3, 3) * 3, "b": _rand(4)},
    ),
    "fused_conv_relu_sum": (
        [_ms("FusedConv", ["x", "w", "", "z"], ["y"], activation="Relu", kernel_shape=[1, 1])],
        {"x": [2, 3, 4, 4], "z": [2, 5, 4, 4]},
        {"w": _rand(5, 3, 1, 1)},
    ),
    "skip_layer_norm": (
        [
            _ms(
                "SkipLayerNormalization",
                ["x", "s", "g", "be", "bi"],
                ["y", "", "", "sum"],
                epsilon=1e-5,
            )
        ],
        {"x": [2, 3, 8], "s": [2, 3, 8]},
        {"g": _rand(8), "be": _rand(8), "bi": _rand(8)},
    ),
    "skip_layer_norm_plain": (
        [_ms("SkipLayerNormalization", ["x", "s", "g"], ["y"])],
        {"x": [2, 3, 8], "s": [2, 3, 8]},
        {"g": _rand(8)},
    ),
}


@pytest.mark.parametrize("case", sorted(CONTRIB_CASES))
@pytest.mark.parametrize("providers", [None, ["reference"]], ids=["default", "reference"])
def test_contrib_op_matches_onnxruntime(providers, case):
    nodes, inputs, init = CONTRIB_CASES[case]
    outputs = [o for o in nodes[-1].output if o]
    proto = _with_domain(model(nodes, inputs, outputs, init), "com.microsoft")
    feeds = {name: _rand(*shape, seed=i + 1) for i, (name, shape) in enumerate(inputs.items())}
    _check(proto, feeds, providers, rtol=1e-5, atol=2e-6)


def test_contrib_kernel_defaults_match_onnxruntime_schemas():
    from onnxruntime.capi import _pybind_state
    from reference.schema_defaults import _declared, _same

    from onnxep.reference import ReferenceProvider

    schemas = {
        s.name: s for s in _pybind_state.get_all_operator_schema() if s.domain == "com.microsoft"
    }
    extensions = {  # onnxruntime's ONNX-domain ops the loader moves to com.microsoft
        s.name: s
        for s in _pybind_state.get_all_operator_schema()
        if s.domain == "" and s.name in EXTENSIONS and s.since_version == 1
    }
    schemas.update(extensions)
    kernels = [k for k in ReferenceProvider.kernels if k.key.domain == "com.microsoft"]
    assert len(kernels) >= 7
    for kernel in kernels:
        declared, _ = _declared(kernel)
        for name, attr in schemas[kernel.key.op_type].attributes.items():
            default = onnx.AttributeProto.FromString(attr._default_value)
            if default.type == onnx.AttributeProto.UNDEFINED:
                continue
            value = helper.get_attribute_value(default)
            value = value.decode() if isinstance(value, bytes) else value
            assert _same(value, declared[name]), (kernel.key, name, value, declared[name])


# --- onnxruntime's own ONNX-domain ops (transformers optimiser output) ----------------------


def _extension_model(op: str, opset: int, dtype: type) -> tuple[onnx.ModelProto, dict]:
    weights = {"s": _rand(8).astype(dtype)}
    if op == "LayerNormalization":
        weights["b"] = _rand(8, seed=2).astype(dtype)
    outputs = ["y", "stat"] if op == "SimplifiedLayerNormalization" else ["y", "mean", "inv"]
    ln = helper.make_node(op, ["x", *weights], outputs, axis=-1, epsilon=1e-5)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = helper.make_graph(
        [ln, node("Relu", ["y"], ["r"])],
        "ext",
        [helper.make_tensor_value_info("x", elem, ["b", 3, 8])],
        [helper.make_tensor_value_info("r", elem, None)]
        + [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs[1:]],
        [onnx.numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    return proto, {"x": _rand(2, 3, 8, seed=3).astype(dtype)}


@pytest.mark.parametrize(
    ("op", "opset"),
    [("LayerNormalization", 13), ("SimplifiedLayerNormalization", 13),
     ("SimplifiedLayerNormalization", 17)],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("providers", [None, ["reference"]], ids=["default", "reference"])
def test_onnxruntime_onnx_domain_extensions_run(providers, op, opset, dtype):
    """onnxruntime's transformers optimiser writes LayerNormalization at any opset and
    SimplifiedLayerNormalization (RMSNorm) in the ONNX domain; onnx's checker refused both."""
    proto, feeds = _extension_model(op, opset, dtype)
    tol = 2e-3 if dtype == np.float16 else 1e-5
    _check(proto, feeds, providers, rtol=tol, atol=tol)
    session = onnxep.InferenceSession(proto.SerializeToString(), providers=providers)
    assert str(session.plan.partition.graph.nodes[0].key) == f"com.microsoft.{op}-1"


def test_onnx_layer_normalization_17_stays_in_its_domain():
    proto, feeds = _extension_model("LayerNormalization", 17, np.float32)
    session = onnxep.InferenceSession(proto.SerializeToString(), providers=["reference"])
    assert session.plan.partition.graph.nodes[0].key.domain == ""
    _check(proto, feeds, ["reference"])


@pytest.mark.parametrize("provider", ["NumbaExecutionProvider", "CppExecutionProvider"])
def test_nodes_after_contrib_ops_are_typed_and_claimed(provider):
    """onnx's shape inference knows no com.microsoft op: without the contrib output types,
    everything after an ORT-fused op was untyped and only the reference path would take it."""
    if provider not in onnxep.get_available_providers():
        pytest.skip(f"{provider} is not available here (see `onnxep providers`)")
    nodes = [
        _ms("SkipLayerNormalization", ["x", "s", "g"], ["ln"]),
        node("MatMul", ["ln", "w"], ["mm"]),
        _ms("FusedMatMul", ["mm", "w2"], ["fm"], transB=1),
        _ms("Gelu", ["fm"], ["ge"]),
        node("Relu", ["ge"], ["y"]),
    ]
    init = {"g": _rand(8), "w": _rand(8, 8, seed=2), "w2": _rand(6, 8, seed=3)}
    inputs = {"x": ["b", 3, 8], "s": ["b", 3, 8]}
    proto = _with_domain(model(nodes, inputs, ["y"], init), "com.microsoft")
    session = onnxep.InferenceSession(proto.SerializeToString(), providers=[provider])
    graph = session.plan.partition.graph
    for name in ("ln", "fm", "ge", "y"):
        assert graph.type_of(name).dtype == np.float32 and graph.type_of(name).rank == 3
    assert session.assignment("mm") == provider, str(session.explain())
    assert session.assignment("y") == provider, str(session.explain())
    feeds = {"x": _rand(2, 3, 8, seed=4), "s": _rand(2, 3, 8, seed=5)}
    _check(proto, feeds, [provider], rtol=1e-4, atol=1e-5)


# --- quantize_static(QuantFormat.QOperator): uint8 Resize and the QLinear* contrib ops -----


def _ints(dtype: type, shape: tuple[int, ...], seed: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max + 1, shape).astype(dtype)


@pytest.mark.parametrize("ctm", ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 1.5], [1, 1, 0.5, 0.75], [1, 1, 2, 2]])
@pytest.mark.parametrize("providers", [None, ["reference"]], ids=["default", "reference"])
def test_integer_bilinear_resize_truncates_like_onnxruntime(providers, scales, ctm):
    # a QOperator YOLO upsamples its uint8 feature map bilinearly: onnx's op rounds where
    # onnxruntime truncates its float32 sum, one step off in a third of the outputs
    nodes = [
        node("Resize", ["x", "", "s"], ["y"], mode="linear", coordinate_transformation_mode=ctm)
    ]
    init = {"s": np.array(scales, np.float32)}
    for elem, dtype in ((TensorProto.UINT8, np.uint8), (TensorProto.INT8, np.int8)):
        proto = model(nodes, {"x": [1, 8, 10, 12]}, ["y"], init, opset=13, elem=elem)
        _check(proto, {"x": _ints(dtype, (1, 8, 10, 12), seed=3)}, providers, rtol=0, atol=0)


def test_integer_upsample_9_truncates_like_onnxruntime():
    nodes = [node("Upsample", ["x", "s"], ["y"], mode="linear")]
    init = {"s": np.array([1, 1, 2, 3], np.float32)}
    proto = model(nodes, {"x": [1, 4, 5, 7]}, ["y"], init, opset=9, elem=TensorProto.UINT8)
    _check(proto, {"x": _ints(np.uint8, (1, 4, 5, 7), seed=4)}, ["reference"], rtol=0, atol=0)


def _q_params(dtype: type) -> dict[str, np.ndarray]:
    """Scales and zero points of three quantised tensors a, b and the output c."""
    zero = dtype(-5) if dtype is np.int8 else dtype(130)
    return {
        "sa": np.array(0.0213, np.float32),
        "za": np.array(3, dtype),
        "sb": np.array(0.0171, np.float32),
        "zb": np.array(zero, dtype),
        "sc": np.array(0.0277, np.float32),
        "zc": np.array(7, dtype),
        "ss": np.array(1 / 256, np.float32),  # a softmax output's scale and zero point
        "zs": np.array(np.iinfo(dtype).min, dtype),
    }


QLINEAR_CASES = {
    "add": [_ms("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"])],
    "mul": [_ms("QLinearMul", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"])],
    "sigmoid": [_ms("QLinearSigmoid", ["a", "sa", "za", "sc", "zc"], ["y"])],
    "leaky_relu": [_ms("QLinearLeakyRelu", ["a", "sa", "za", "sc", "zc"], ["y"], alpha=0.1)],
    "global_average_pool": [_ms("QLinearGlobalAveragePool", ["a", "sa", "za", "sc", "zc"], ["y"])],
    "global_average_pool_nhwc": [
        _ms("QLinearGlobalAveragePool", ["a", "sa", "za", "sc", "zc"], ["y"], channels_last=1)
    ],
    "concat": [_ms("QLinearConcat", ["sc", "zc", "a", "sa", "za", "b", "sc", "zc"], ["y"], axis=1)],
    "softmax_12": [_ms("QLinearSoftmax", ["a", "sa", "za", "ss", "zs"], ["y"], axis=1, opset=12)],
    "softmax_13": [_ms("QLinearSoftmax", ["a", "sa", "za", "ss", "zs"], ["y"], axis=1, opset=13)],
}


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("case", sorted(QLINEAR_CASES))
@pytest.mark.parametrize("providers", [None, ["reference"]], ids=["default", "reference"])
def test_qlinear_contrib_op_matches_onnxruntime(providers, case, dtype):
    # quantize_static(QuantFormat.QOperator) writes these next to QLinearConv: a ResNet's
    # residual QLinearAdd, an SE block's QLinearMul/QLinearSigmoid, a YOLO's QLinearConcat
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes = QLINEAR_CASES[case]
    inputs = (
        {"a": [2, 6, 4, 5]} if "b" not in nodes[0].input else {"a": [2, 6, 4, 5], "b": [2, 6, 4, 5]}
    )
    proto = _with_domain(model(nodes, inputs, ["y"], _q_params(dtype), elem=elem), "com.microsoft")
    feeds = {
        name: _ints(dtype, tuple(shape), seed=i) for i, (name, shape) in enumerate(inputs.items())
    }
    _check(proto, feeds, providers, rtol=0, atol=0)


@pytest.mark.parametrize("output", ["quantized", "float"])
@pytest.mark.parametrize("per_column", [False, True])
def test_qgemm_matches_onnxruntime(per_column, output):
    rng = np.random.default_rng(5)
    w = rng.integers(-127, 128, (4, 16)).astype(np.int8)
    init = {
        "sa": np.array(0.02, np.float32),
        "za": np.array(120, np.uint8),
        "w": w,
        "sw": rng.uniform(0.005, 0.02, 4).astype(np.float32) if per_column else np.float32(0.01),
        "zw": np.zeros(4 if per_column else (), np.int8),
        "c": rng.integers(-500, 500, 4).astype(np.int32),
        "sy": np.array(0.05, np.float32),
        "zy": np.array(128, np.uint8),
    }
    quantized = output == "quantized"
    names = ["a", "sa", "za", "w", "sw", "zw", "c", *(["sy", "zy"] if quantized else [])]
    nodes = [_ms("QGemm", names, ["y"], transB=1, alpha=1.0 if quantized else 0.5)]
    proto = model(nodes, {"a": [6, 16]}, ["y"], init, elem=TensorProto.UINT8)
    if not quantized:
        proto.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
    proto = _with_domain(proto, "com.microsoft")
    _check(proto, {"a": _ints(np.uint8, (6, 16), seed=6)}, ["reference"], rtol=0, atol=0)


# --- quantize_dynamic on an LSTM: com.microsoft.DynamicQuantizeLSTM ---------------------------


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("providers", [None, ["reference"]], ids=["default", "reference"])
def test_dynamic_quantize_lstm_matches_onnxruntime(providers, direction, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dirs, hidden, size = (2 if direction == "bidirectional" else 1), 6, 5
    weights = {
        "W": _rand(dirs, 4 * hidden, size, seed=1),
        "R": _rand(dirs, 4 * hidden, hidden, seed=2),
        "B": _rand(dirs, 8 * hidden, seed=3),
    }
    lstm = node("LSTM", ["x", "W", "R", "B"], ["y", "y_h"], hidden_size=hidden, direction=direction)
    float_path, quantized_path = tmp_path / "lstm.onnx", tmp_path / "lstm_q.onnx"
    onnx.save(model([lstm], {"x": [7, 2, size]}, ["y", "y_h"], weights, opset=14), float_path)
    quantize_dynamic(float_path, quantized_path, weight_type=QuantType.QInt8)
    proto = onnx.load(quantized_path)
    assert [n.op_type for n in proto.graph.node] == ["DynamicQuantizeLSTM"]
    # onnxruntime also quantizes the activations inside the op: a quantization step apart
    _check(proto, {"x": _rand(7, 2, size, seed=4)}, providers, rtol=0, atol=2e-2)
