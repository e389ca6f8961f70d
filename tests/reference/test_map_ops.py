"""ZipMap, CastMap and CategoryMapper (ai.onnx.ml ops onnx's reference lacks) against
onnxruntime, on the hand-written kernels."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxep
from onnxep.testing import kernel_test_options

from .helpers import hand_written_nodes

ort = pytest.importorskip("onnxruntime", reason="compared with onnxruntime")

ML = "ai.onnx.ml"


def _sessions(node: onnx.NodeProto, inputs: list, outputs: list) -> tuple:
    graph = helper.make_graph([node], "g", inputs, outputs)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, 1)]
    )
    model.ir_version = 8
    data = model.SerializeToString()
    ours = onnxep.InferenceSession(data, kernel_test_options(), providers=["reference"])
    assert all(hand_written_nodes(ours).values()), ours.explain()
    return ours, ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _scores_map(key: int) -> onnx.TypeProto:
    value = helper.make_tensor_type_proto(TensorProto.FLOAT, [])
    return helper.make_sequence_type_proto(helper.make_map_type_proto(key, value))


@pytest.mark.parametrize(
    ("labels", "key"),
    [({"classlabels_int64s": [10, 20, 30]}, TensorProto.INT64),
     ({"classlabels_strings": ["a", "b", "c"]}, TensorProto.STRING)],
)  # fmt: skip
@pytest.mark.parametrize("shape", [(4, 3), (3,), (0, 3)])
def test_zip_map_rows_to_dicts(labels, key, shape):
    node = helper.make_node("ZipMap", ["x"], ["y"], domain=ML, **labels)
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None] * len(shape))
    ours, theirs = _sessions(node, [x_info], [helper.make_value_info("y", _scores_map(key))])
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    (got,), (want,) = ours.run(None, {"x": x}), theirs.run(None, {"x": x})
    assert got == want
    assert all(type(k) is type(next(iter(want[0]))) for row in got for k in row) if want else True
    assert ours.get_outputs()[0].type == theirs.get_outputs()[0].type


def test_zip_map_refuses_a_column_count_unlike_its_labels():
    node = helper.make_node("ZipMap", ["x"], ["y"], domain=ML, classlabels_int64s=[1, 2])
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None])
    ours, _ = _sessions(node, [x_info], [helper.make_value_info("y", _scores_map(7))])
    with pytest.raises(onnxep.Fail, match=r"shape \(N, 2\) for its 2 class labels, got \(2, 3\)"):
        ours.run(None, {"x": np.ones((2, 3), np.float32)})


CAST_OUT = {"TO_FLOAT": TensorProto.FLOAT, "TO_INT64": TensorProto.INT64, "TO_STRING": 8}


@pytest.mark.parametrize("cast_to", list(CAST_OUT))
@pytest.mark.parametrize("form", ["DENSE", "SPARSE"])
def test_cast_map_of_floats_as_onnxruntime(cast_to, form):
    value = helper.make_tensor_type_proto(TensorProto.FLOAT, [])
    x_info = helper.make_value_info("x", helper.make_map_type_proto(TensorProto.INT64, value))
    node = helper.make_node(
        "CastMap", ["x"], ["y"], domain=ML, cast_to=cast_to, map_form=form, max_map=5
    )
    y_info = helper.make_tensor_value_info("y", CAST_OUT[cast_to], None)
    ours, theirs = _sessions(node, [x_info], [y_info])
    for feed in ({3: 1.5, 0: -2.75, 1: 2.5}, {7: 1.0, 2: 0.25}):  # 7: past max_map (dropped)
        (got,), (want,) = ours.run(None, {"x": feed}), theirs.run(None, {"x": feed})
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_cast_map_of_strings_parses_them():
    """onnxruntime's Python binding cannot feed a map of strings: checked on the spec."""
    value = helper.make_tensor_type_proto(TensorProto.STRING, [])
    x_info = helper.make_value_info("x", helper.make_map_type_proto(TensorProto.INT64, value))
    feed = {2: "1.5", 0: "-3", 1: "x"}
    for cast_to, want in (("TO_STRING", ["-3", "x", "1.5"]), ("TO_FLOAT", None)):
        node = helper.make_node("CastMap", ["x"], ["y"], domain=ML, cast_to=cast_to)
        graph = helper.make_graph(
            [node], "g", [x_info], [helper.make_tensor_value_info("y", CAST_OUT[cast_to], None)]
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, 1)]
        )
        session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
        if want is not None:
            assert session.run(None, {"x": feed})[0].tolist() == [want]
        else:
            with pytest.raises(onnxep.Fail, match="could not convert string to float: 'x'"):
                session.run(None, {"x": feed})


def test_cast_map_refuses_negative_keys():
    value = helper.make_tensor_type_proto(TensorProto.FLOAT, [])
    x_info = helper.make_value_info("x", helper.make_map_type_proto(TensorProto.INT64, value))
    node = helper.make_node("CastMap", ["x"], ["y"], domain=ML, map_form="SPARSE", max_map=3)
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    ours, _ = _sessions(node, [x_info], [y_info])
    with pytest.raises(onnxep.Fail, match="negative keys are not permitted, got -1"):
        ours.run(None, {"x": {-1: 1.0, 2: 3.0}})


@pytest.mark.parametrize("defaults", [{}, {"default_int64": -9, "default_string": "none"}])
def test_category_mapper_both_ways(defaults):
    cats = {"cats_strings": ["a", "b", "c"], "cats_int64s": [5, 6, 7], **defaults}
    for x, x_type, y_type in (
        (np.array([["a", "c"], ["zz", "b"]], dtype=object), TensorProto.STRING, TensorProto.INT64),
        (np.array([5, 8, 7], np.int64), TensorProto.INT64, TensorProto.STRING),
    ):
        node = helper.make_node("CategoryMapper", ["x"], ["y"], domain=ML, **cats)
        x_info = helper.make_tensor_value_info("x", x_type, list(x.shape))
        ours, theirs = _sessions(node, [x_info], [helper.make_tensor_value_info("y", y_type, None)])
        (got,), (want,) = ours.run(None, {"x": x}), theirs.run(None, {"x": x})
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
