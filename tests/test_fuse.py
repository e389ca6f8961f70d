"""Conv + BatchNormalization / per-channel Mul / Add folded into one Conv at session creation."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from graphs import model, node
from onnx import numpy_helper as onnx_numpy

import onnxep

RNG = np.random.default_rng(0)


def _conv_bn(opset: int, *, bias: bool, group: int = 1, extra_consumer: bool = False):
    c_in, c_out = 4, 6 if group == 1 else 4
    inits = {
        "w": RNG.standard_normal((c_out, c_in // group, 3, 3)).astype(np.float32),
        "scale": RNG.uniform(0.5, 1.5, c_out).astype(np.float32),
        "shift": RNG.standard_normal(c_out).astype(np.float32),
        "mean": RNG.standard_normal(c_out).astype(np.float32),
        "var": RNG.uniform(0.5, 2.0, c_out).astype(np.float32),
    }
    conv_inputs = ["x", "w"]
    if bias:
        inits["b"] = RNG.standard_normal(c_out).astype(np.float32)
        conv_inputs.append("b")
    nodes = [
        node("Conv", conv_inputs, ["c"], pads=[1, 1, 1, 1], group=group),
        node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["y"], epsilon=1e-3),
    ]
    outputs = ["y"]
    if extra_consumer:
        nodes.append(node("Relu", ["c"], ["r"]))
        outputs.append("r")
    return model(nodes, {"x": [2, c_in, 5, 5]}, outputs, inits, opset=opset)


@pytest.mark.parametrize("opset", [9, 14, 15])
@pytest.mark.parametrize(("bias", "group"), [(True, 1), (False, 1), (True, 4)])
def test_fused_conv_matches_onnxruntime(opset, bias, group):
    m = _conv_bn(opset, bias=bias, group=group)
    session = onnxep.InferenceSession(m, providers=["reference"])
    report = session.explain().to_dict()
    assert report["folded"] == ["y"]  # the BatchNormalization node is gone
    assert report["segments"][0]["op_types"] == {"Conv": 1}
    x = RNG.standard_normal((2, 4, 5, 5)).astype(np.float32)
    (got,) = session.run(None, {"x": x})
    (want,) = onnxruntime.InferenceSession(m.SerializeToString()).run(None, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_conv_output_read_elsewhere_is_not_fused():
    m = _conv_bn(15, bias=True, extra_consumer=True)
    session = onnxep.InferenceSession(m, providers=["reference"])
    assert session.explain().to_dict()["folded"] == []
    x = RNG.standard_normal((2, 4, 5, 5)).astype(np.float32)
    got = session.run(None, {"x": x})
    want = onnxruntime.InferenceSession(m.SerializeToString()).run(None, {"x": x})
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_fed_weights_are_not_fused():
    m = _conv_bn(15, bias=False)
    m.graph.input.append(onnxep_input("mean", [6]))
    session = onnxep.InferenceSession(m, providers=["reference"])
    assert session.explain().to_dict()["folded"] == []  # mean may be fed: not a constant


def onnxep_input(name, shape):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_fused_conv_stays_on_a_typed_provider():
    """The new weight and bias carry types, so providers that check dtypes still take it."""
    m = _conv_bn(15, bias=True)
    for provider in onnxep.get_available_providers():
        session = onnxep.InferenceSession(m, providers=[provider])
        assert session.explain().to_dict()["folded"] == ["y"]
        assert session.assignment("c") == provider, str(session.explain())
    session = onnxep.InferenceSession(m, providers=["reference"])
    kernel = session.providers[-1].kernels.lookup(onnxep.resolve_key("", "Conv", 15))
    assert kernel is not None  # the hand-written Conv, not onnx's slow one
    graph = session.plan.partition.graph
    (conv,) = graph.nodes
    assert all(graph.type_of(name).dtype == np.float32 for name in conv.inputs)


@pytest.mark.parametrize(
    ("scale_shape", "shift_shape", "folded"),
    [
        ((6, 1, 1), (1, 6, 1, 1), ["m", "y"]),  # per channel: both fold
        ((), (1,), ["m", "y"]),  # scalars fold too
        ((1, 1, 5, 5), (6, 1, 1), []),  # a spatial scale does not; the Add then follows a Mul
    ],
)
def test_per_channel_scale_and_shift_fold_into_conv(scale_shape, shift_shape, folded):
    inits = {
        "w": RNG.standard_normal((6, 4, 3, 3)).astype(np.float32),
        "scale": RNG.uniform(0.5, 1.5, scale_shape).astype(np.float32),
        "shift": RNG.standard_normal(shift_shape).astype(np.float32),
    }
    m = model(
        [
            node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            node("Mul", ["scale", "c"], ["m"]),
            node("Add", ["m", "shift"], ["y"]),
        ],
        {"x": [2, 4, 5, 5]},
        ["y"],
        inits,
    )
    session = onnxep.InferenceSession(m, providers=["reference"])
    graph = session.plan.partition.graph
    assert [n.label for n in graph.folded] == folded
    assert len(graph.initializers) == (2 if folded else 3)  # no stale intermediate weights
    x = RNG.standard_normal((2, 4, 5, 5)).astype(np.float32)
    (got,) = session.run(None, {"x": x})
    (want,) = onnxruntime.InferenceSession(m.SerializeToString()).run(None, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _bn_scale_shift(opset: int, scale_shape, shift_shape, rank: int = 4):
    c = 6
    inits = {
        "s": RNG.uniform(0.5, 1.5, c).astype(np.float32),
        "b": RNG.standard_normal(c).astype(np.float32),
        "mean": RNG.standard_normal(c).astype(np.float32),
        "var": RNG.uniform(0.5, 2.0, c).astype(np.float32),
        "scale": RNG.uniform(0.5, 1.5, scale_shape).astype(np.float32),
        "shift": RNG.standard_normal(shift_shape).astype(np.float32),
    }
    nodes = [  # DenseNet's pre-activation: BN -> Mul -> Add -> Relu, no Conv before
        node("Relu", ["x"], ["r0"]),
        node("BatchNormalization", ["r0", "s", "b", "mean", "var"], ["n"], epsilon=1e-3),
        node("Mul", ["n", "scale"], ["m"]),
        node("Add", ["shift", "m"], ["a"]),
        node("Relu", ["a"], ["y"]),
    ]
    shape = [2, c, 5, 5][:rank]
    return model(nodes, {"x": shape}, ["y"], inits, opset=opset), shape


@pytest.mark.parametrize("opset", [9, 15])
@pytest.mark.parametrize(
    ("scale_shape", "shift_shape", "rank", "folded"),
    [
        ((6, 1, 1), (1, 6, 1, 1), 4, ["m", "a"]),  # per channel: both fold into the BN
        ((), (1,), 4, ["m", "a"]),  # scalars too
        ((6,), (6,), 2, ["m", "a"]),  # (N, C) input: a vector is per channel
        ((5,), (6, 1, 1), 4, []),  # a vector aligns with the last axis (W): not per channel
        ((1, 1, 5, 5), (6, 1, 1), 4, []),  # a spatial scale stays; the Add then follows a Mul
    ],
)
def test_per_channel_scale_and_shift_fold_into_batchnorm(
    opset, scale_shape, shift_shape, rank, folded
):
    m, shape = _bn_scale_shift(opset, scale_shape, shift_shape, rank)
    session = onnxep.InferenceSession(m, providers=["reference"])
    graph = session.plan.partition.graph
    assert [n.label for n in graph.folded] == folded
    assert [n.op_type for n in graph.nodes].count("BatchNormalization") == 1
    x = RNG.standard_normal(shape).astype(np.float32)
    (got,) = session.run(None, {"x": x})
    (want,) = onnxruntime.InferenceSession(m.SerializeToString()).run(None, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_batchnorm_output_read_elsewhere_keeps_its_scale():
    m, shape = _bn_scale_shift(15, (6, 1, 1), (6, 1, 1))
    m.graph.output.append(onnxep_input("n", shape))
    session = onnxep.InferenceSession(m, providers=["reference"])
    assert session.plan.partition.graph.folded == ()
    x = RNG.standard_normal(shape).astype(np.float32)
    got = session.run(None, {"x": x})
    want = onnxruntime.InferenceSession(m.SerializeToString()).run(None, {"x": x})
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_conv_batchnorm_scale_shift_chain_folds_into_one_conv():
    """Conv -> BN -> Mul -> Add (old Caffe2 exports): the BN folds into the Conv while the
    Mul would fold into the BN in the same pass; every fold lands, over several passes."""
    m, shape = _bn_scale_shift(15, (6, 1, 1), (6, 1, 1))
    m.graph.initializer.append(
        onnx_numpy.from_array(RNG.standard_normal((6, 6, 1, 1)).astype(np.float32), "w")
    )
    m.graph.node[0].CopyFrom(node("Conv", ["x", "w"], ["r0"]))
    session = onnxep.InferenceSession(m, providers=["reference"])
    graph = session.plan.partition.graph
    assert [n.op_type for n in graph.nodes] == ["Conv", "Relu"]
    x = RNG.standard_normal(shape).astype(np.float32)
    (got,) = session.run(None, {"x": x})
    (want,) = onnxruntime.InferenceSession(m.SerializeToString()).run(None, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
