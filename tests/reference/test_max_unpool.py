"""MaxUnpool, hand-written, fed by a real MaxPool's Indices, against onnxruntime (and onnx's
evaluator where the two agree)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from .helpers import assert_close, check, make_model, rand, run_onnxep, run_onnxruntime


def _pool_unpool(
    x: np.ndarray, opset: int, kernel: list[int], strides: list[int], pads: list[int] | None,
    output_shape: str | None,
) -> onnx.ModelProto:  # fmt: skip
    """MaxPool(X) -> (P, I) -> MaxUnpool(P, I[, S]) -> Y, also returning P and I.

    ``output_shape`` is None, "input" (S is fed) or "constant" (S is an initializer); S is
    X's shape either way.
    """
    attrs = {"kernel_shape": kernel, "strides": strides, **({"pads": pads} if pads else {})}
    pool = helper.make_node("MaxPool", ["X"], ["P", "I"], **attrs)
    shape_input = ["S"] if output_shape else []
    unpool = helper.make_node("MaxUnpool", ["P", "I", *shape_input], ["Y"], **attrs)
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape)]
    initializers = []
    if output_shape == "input":
        inputs.append(helper.make_tensor_value_info("S", TensorProto.INT64, [x.ndim]))
    elif output_shape == "constant":
        initializers.append(numpy_helper.from_array(np.array(x.shape, dtype=np.int64), "S"))
    outputs = [
        helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("P", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("I", TensorProto.INT64, None),
    ]
    graph = helper.make_graph([pool, unpool], "unpool", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


CASES = {
    "2x2-stride-2": ((2, 3, 8, 8), [2, 2], [2, 2], None),
    "3x3-stride-2-pads": ((1, 2, 7, 7), [3, 3], [2, 2], [1, 1, 1, 1]),
    "overlapping-3x3-stride-1": ((1, 2, 6, 6), [3, 3], [1, 1], [1, 1, 1, 1]),
    "asymmetric": ((1, 2, 9, 6), [3, 2], [3, 2], None),
    "1-D": ((2, 2, 10), [2], [2], None),
    "3-D": ((1, 2, 4, 6, 4), [2, 2, 2], [2, 2, 2], None),
}


@pytest.mark.parametrize("opset", [9, 11, 22])
@pytest.mark.parametrize("name", list(CASES))
def test_after_max_pool(name: str, opset: int) -> None:
    shape, kernel, strides, pads = CASES[name]
    x = rand(*shape, seed=len(name))
    model = _pool_unpool(x, opset, kernel, strides, pads, None)
    actual = run_onnxep(model, {"X": x})
    assert_close(actual, run_onnxruntime(model, {"X": x}), 0, 0)
    y, p, i = actual
    assert y.shape == x.shape
    np.testing.assert_array_equal(y.reshape(-1)[i.reshape(-1)], p.reshape(-1))
    np.testing.assert_array_equal(y, np.where(y != 0, x, 0))  # each max is back in place


@pytest.mark.parametrize("how", ["input", "constant"])
@pytest.mark.parametrize(
    ("shape", "kernel", "strides", "pads"),
    [
        ((2, 3, 7, 7), [2, 2], [2, 2], None),  # the last row and column are not pooled
        ((1, 2, 8, 9), [3, 3], [2, 2], [1, 1, 1, 1]),
        ((1, 2, 11), [3], [3], None),
        ((1, 1, 5, 3, 7), [2, 2, 3], [2, 2, 3], None),
    ],
)
def test_output_shape_restores_the_input_shape(shape, kernel, strides, pads, how: str) -> None:
    """With output_shape, MaxPool's indices (counted in its input) land back in place."""
    x = rand(*shape, seed=2)
    model = _pool_unpool(x, 22, kernel, strides, pads, how)
    feeds = {"X": x, "S": np.array(x.shape, dtype=np.int64)}
    actual = run_onnxep(model, feeds)
    assert_close(actual, run_onnxruntime(model, feeds), 0, 0)
    y, p, i = actual
    assert y.shape == x.shape
    np.testing.assert_array_equal(y.reshape(-1)[i.reshape(-1)], p.reshape(-1))
    np.testing.assert_array_equal(y, np.where(y != 0, x, 0))


def test_output_shape_follows_onnxruntime_not_onnx() -> None:
    """onnx's example (and its reference op) counts the indices in the inferred 4x4 shape
    and pads to 5x5 afterwards; onnxruntime, followed here, counts them in the 5x5 output,
    as MaxPool does (onnx/onnx#2398)."""
    inputs = {
        "X": np.array([[[[5, 6], [7, 8]]]], dtype=np.float32),
        "I": np.array([[[[5, 7], [13, 15]]]], dtype=np.int64),
        "output_shape": np.array([1, 1, 5, 5], dtype=np.int64),
    }
    model = make_model("MaxUnpool", inputs, 22, kernel_shape=[2, 2], strides=[2, 2])
    y = run_onnxep(model, inputs)[0]
    assert_close([y], run_onnxruntime(model, inputs), 0, 0)
    expected = np.zeros(25, dtype=np.float32)
    expected[[5, 7, 13, 15]] = [5, 6, 7, 8]
    np.testing.assert_array_equal(y, expected.reshape(1, 1, 5, 5))


@pytest.mark.parametrize("opset", [9, 11, 22])
def test_against_evaluator(opset: int) -> None:
    """Without output_shape onnx's op and onnxruntime agree."""
    x = rand(2, 3, 3, 4, seed=1)
    rng = np.random.default_rng(0)
    # any distinct flat indices into the (2, 3, 6, 8) output, as MaxPool's could be
    index = rng.permutation(2 * 3 * 6 * 8)[: x.size].reshape(x.shape).astype(np.int64)
    inputs = {"X": x, "I": index}
    check("MaxUnpool", inputs, opset, kernel_shape=[2, 2], strides=[2, 2], rtol=0, atol=0)
    check("MaxUnpool", inputs, opset, oracle="ort", kernel_shape=[2, 2], strides=[2, 2])


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float16_and_float64(dtype) -> None:
    x = rand(1, 2, 3, 3, seed=4, dtype=dtype)
    index = np.arange(x.size, dtype=np.int64).reshape(x.shape) * 3
    inputs = {"X": x, "I": index}
    y = check("MaxUnpool", inputs, 22, kernel_shape=[3, 3], strides=[3, 3], rtol=0, atol=0)[0]
    assert y.dtype == dtype


def test_bad_indices_and_output_shape_are_refused() -> None:
    x = rand(1, 1, 2, 2)
    inputs = {"X": x, "I": np.array([[[[0, 1], [2, 16]]]])}
    model = make_model("MaxUnpool", inputs, 22, kernel_shape=[2, 2], strides=[2, 2])
    with pytest.raises(Exception, match="index 16"):
        run_onnxep(model, inputs)
    inputs = {"X": x, "I": np.array([[[[0, 1], [2, 3]]]]), "S": np.array([1, 1, 3, 3])}
    model = make_model("MaxUnpool", inputs, 22, kernel_shape=[2, 2], strides=[2, 2])
    with pytest.raises(Exception, match="smaller"):
        run_onnxep(model, inputs)


def test_empty_batch() -> None:
    inputs = {"X": np.zeros((0, 2, 2, 2), np.float32), "I": np.zeros((0, 2, 2, 2), np.int64)}
    check("MaxUnpool", inputs, 22, oracle="ort", kernel_shape=[2, 2], strides=[2, 2])
