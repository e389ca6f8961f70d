"""ScatterElements, ScatterND and Scatter against onnxruntime (and onnx's evaluator where
onnxruntime has no kernel), on the hand-written kernels."""

from __future__ import annotations

import numpy as np
import pytest

import onnxep

from .helpers import check, make_model, rand, run_onnxep

REDUCTIONS = ["none", "add", "mul", "max", "min"]


def _distinct(rng: np.random.Generator, n: int, size: int, rows: int) -> np.ndarray:
    """Per row, ``n`` distinct indices in [-size, size) (distinct: 'none' is defined)."""
    picks = np.stack([rng.permutation(size)[:n] for _ in range(rows)])
    return np.where(rng.random(picks.shape) < 0.3, picks - size, picks)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("opset", [11, 13, 16, 18])
def test_scatter_elements_along_each_axis(axis, opset):
    rng = np.random.default_rng(axis + opset)
    data = rand(6, 7, 5)
    moved = np.moveaxis(data, axis, 0)
    index = _distinct(rng, 3, moved.shape[0], moved[0].size).T.reshape(3, *moved.shape[1:])
    indices = np.moveaxis(index, 0, axis)
    inputs = {"d": data, "i": indices, "u": rand(*indices.shape, seed=1)}
    check("ScatterElements", inputs, opset, oracle="ort", axis=axis)


@pytest.mark.parametrize("reduction", REDUCTIONS[1:])
def test_scatter_elements_reductions_apply_duplicates_in_turn(reduction):
    rng = np.random.default_rng(3)
    data = rand(4, 50)
    indices = rng.integers(-50, 50, (4, 200)).astype(np.int64)  # many duplicates
    updates = rand(4, 200, seed=1, low=0.5, high=1.5)
    inputs = {"d": data, "i": indices, "u": updates}
    opset = 18 if reduction in ("max", "min") else 16
    check("ScatterElements", inputs, opset, oracle="ort", rtol=1e-5, axis=1, reduction=reduction)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.bool_])
def test_scatter_elements_dtypes(dtype):
    data, updates = rand(5, 4, dtype=dtype), rand(2, 4, dtype=dtype, seed=1)
    indices = np.array([[4, 0, 1, 2], [0, 3, -1, 4]], np.int64)
    check("ScatterElements", {"d": data, "i": indices, "u": updates}, 13, oracle="ort")


def test_deprecated_scatter_is_scatter_elements():
    data, updates = rand(3, 4), rand(3, 2, seed=1)
    indices = np.array([[0, 3], [1, 2], [3, 0]], np.int64)
    for opset in (9, 10):
        check("Scatter", {"d": data, "i": indices, "u": updates}, opset, oracle="ort", axis=1)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_scatter_nd_slices_and_elements(reduction):
    rng = np.random.default_rng(5)
    data = rand(2, 12, 10, 4)
    opset = 18 if reduction in ("max", "min") else 16
    # kv-cache style: whole rows at (batch, head, position), positions repeated for reductions
    positions = rng.integers(0, 10, 6) if reduction != "none" else rng.permutation(10)[:6]
    grid = np.stack(np.meshgrid([1], [3, 7], positions, indexing="ij"), -1).astype(np.int64)
    updates = rand(1, 2, 6, 4, seed=1, low=0.5, high=1.5)
    inputs = {"d": data, "i": grid, "u": updates}
    check("ScatterND", inputs, opset, oracle="ort", rtol=1e-5, reduction=reduction)
    elements = np.array([[0, 1, 2, 3], [1, -1, 0, 0], [0, 0, 9, -4]], np.int64)
    inputs = {"d": data, "i": elements, "u": rand(3, seed=2, low=0.5, high=1.5)}
    check("ScatterND", inputs, opset, oracle="ort", rtol=1e-5, reduction=reduction)


def test_scatter_nd_whole_tensor_and_strings():
    data = np.array(["a", "b", "c", "d"], dtype=object)
    inputs = {"d": data, "i": np.array([[2], [0]], np.int64), "u": np.array(["x", "y"], object)}
    check("ScatterND", inputs, 13, oracle="ort")


def test_empty_indices_return_the_data():
    data = rand(3, 4)
    inputs = {"d": data, "i": np.zeros((0, 4), np.int64), "u": np.zeros((0, 4), np.float32)}
    (out,) = run_onnxep(make_model("ScatterElements", inputs, 13), inputs)
    np.testing.assert_array_equal(out, data)


@pytest.mark.parametrize("op", ["ScatterElements", "ScatterND"])
def test_out_of_range_index_is_refused_by_value(op):
    data = rand(3, 4)
    indices = np.array([[0, 4]], np.int64) if op == "ScatterElements" else np.array([[3]])
    updates = rand(1, 2) if op == "ScatterElements" else rand(1, 4)
    inputs = {"d": data, "i": indices.astype(np.int64), "u": updates}
    kwargs = {"axis": 1} if op == "ScatterElements" else {}
    model = make_model(op, inputs, 13, **kwargs)
    with pytest.raises(onnxep.Fail, match=r"index (4|3) is out of range for a dimension of (4|3)"):
        run_onnxep(model, inputs)
