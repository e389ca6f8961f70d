"""Shape, data-movement and indexing kernels against onnx's ReferenceEvaluator (every version)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import onnxep

from .helpers import check, make_model, rand, run_onnxep


@pytest.mark.parametrize("opset", [5, 13, 14, 19, 21, 25])
@pytest.mark.parametrize(
    ("shape", "target"),
    [
        ((2, 3, 4), (4, -1)),
        ((2, 3, 4), (0, 12)),
        ((2, 3, 4), ()),
        ((0, 3), (0, 3, 1)),
        ((6,), (1, 2, 3)),
    ],
)
def test_reshape(opset, shape, target):
    x = rand(*shape) if shape != (2, 3, 4) or target != () else rand(1)
    check("Reshape", {"x": x, "s": np.array(target, np.int64)}, opset, constants=("s",))


def test_reshape_allowzero():
    x = rand(0, 3)
    check("Reshape", {"x": x, "s": np.array([3, 0], np.int64)}, 14, constants=("s",), allowzero=1)


@pytest.mark.parametrize("opset", [1, 13, 21])
@pytest.mark.parametrize("perm", [None, (1, 0, 2), (2, 0, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, bool])
def test_transpose(opset, perm, dtype):
    attrs = {} if perm is None else {"perm": list(perm)}
    check("Transpose", {"x": rand(2, 3, 4, dtype=dtype)}, opset, **attrs)


@pytest.mark.parametrize("opset", [4, 11, 13])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(opset, axis):
    if opset == 4 and axis < 0:
        pytest.skip("negative axes since opset 11")
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for s in shapes[1:]:
        s[axis] = 1
    shapes[2][axis] = 0
    inputs = {f"x{i}": rand(*s, seed=i) for i, s in enumerate(shapes)}
    check("Concat", inputs, opset, axis=axis)


@pytest.mark.parametrize("opset", [2, 11])
@pytest.mark.parametrize(("split", "n"), [(None, 3), ([1, 4, 1], 3), ([6], 1)])
def test_split_attribute(opset, split, n):
    attrs = {} if split is None else {"split": split}
    check("Split", {"x": rand(6, 2)}, opset, n_outputs=n, **attrs)
    check("Split", {"x": rand(2, 6)}, opset, n_outputs=n, axis=1, **attrs)


@pytest.mark.parametrize("opset", [13, 18])
def test_split_input(opset):
    x = rand(2, 7)
    check(
        "Split",
        {"x": x, "s": np.array([2, 5], np.int64)},
        opset,
        constants=("s",),
        n_outputs=2,
        axis=-1,
    )
    check("Split", {"x": rand(6, 2)}, opset, n_outputs=3)


@pytest.mark.parametrize("num_outputs", [2, 3, 4])
def test_split_num_outputs_uneven(num_outputs):
    check("Split", {"x": rand(7, 2)}, 18, n_outputs=num_outputs, num_outputs=num_outputs)


SLICES = [
    ([1], [3], [0], None),
    ([0, 1], [-1, 1000], None, None),
    ([-1], [-1000], [1], [-1]),
    ([10], [-10], [0], [-2]),
    ([-10], [-20], [0], [-1]),
    ([0, 0], [3, 4], [0, -1], [2, 3]),
    ([2], [1], [1], [1]),
    ([np.iinfo(np.int64).max], [np.iinfo(np.int64).min], [0], [-1]),
]


@pytest.mark.parametrize(("starts", "ends", "axes", "steps"), SLICES)
@pytest.mark.parametrize("opset", [10, 11, 13])
def test_slice_inputs(opset, starts, ends, axes, steps):
    x = rand(5, 6)
    inputs = {
        "x": x,
        "starts": np.array(starts, np.int64),
        "ends": np.array(ends, np.int64),
        "axes": None if axes is None else np.array(axes, np.int64),
        "steps": None if steps is None else np.array(steps, np.int64),
    }
    if axes is None and steps is not None:
        inputs["axes"] = np.arange(len(starts), dtype=np.int64)
    model = make_model("Slice", inputs, opset, constants=("starts", "ends", "axes", "steps"))
    (y,) = run_onnxep(model, inputs)
    expected = x
    for i, axis in enumerate(inputs["axes"] if inputs["axes"] is not None else range(len(starts))):
        step = 1 if steps is None else steps[i]
        picks = _spec_slice(starts[i], ends[i], step, x.shape[axis])
        expected = np.take(expected, np.array(picks, np.int64), axis=axis)
    np.testing.assert_array_equal(y, expected)


def _spec_slice(start, end, step, dim):
    """The opset-13 clamping rules, written out independently of the kernel."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return list(range(min(max(start, 0), dim), min(max(end, 0), dim), step))
    return list(range(min(max(start, 0), dim - 1), min(max(end, -1), dim - 1), step))


def test_slice_1_attributes():
    check("Slice", {"x": rand(5, 6)}, 1, starts=[1, -4], ends=[100, -1], axes=[0, 1])
    check("Slice", {"x": rand(5, 6)}, 1, starts=[1], ends=[3])


@pytest.mark.parametrize("opset", [1, 11, 13])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("indices", [np.array([0, 2, 1]), np.array([[1], [-1]]), np.array(1)])
def test_gather(opset, axis, indices):
    if opset == 1 and (axis < 0 or (indices < 0).any()):
        pytest.skip("negative axes and indices since opset 11")
    check("Gather", {"x": rand(3, 4, 3), "i": indices.astype(np.int64)}, opset, axis=axis)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(opset, axis):
    x = rand(4, 5)
    rng = np.random.default_rng(1)
    indices = rng.integers(-x.shape[axis], x.shape[axis], size=(4, 5)).astype(np.int32)
    check("GatherElements", {"x": x, "i": indices}, opset, axis=axis)
    # indices smaller than the data off the axis: onnxruntime allows it, the evaluator does not
    small = rng.integers(-x.shape[axis], x.shape[axis], size=(3, 2)).astype(np.int64)
    check("GatherElements", {"x": x, "i": small}, opset, axis=axis, oracle="ort")


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_gather_elements_3d_and_out_of_range(axis):
    x = rand(4, 6, 5)
    rng = np.random.default_rng(axis)
    shape = [3, 4, 2]
    shape[axis] = 7  # longer than the data along the axis: indices repeat
    indices = rng.integers(-x.shape[axis], x.shape[axis], size=shape).astype(np.int64)
    check("GatherElements", {"x": x, "i": indices}, 13, oracle="ort", axis=axis)
    indices.flat[5] = x.shape[axis]
    model = make_model("GatherElements", {"x": x, "i": indices}, 13, axis=axis)
    with pytest.raises(onnxep.Fail, match=f"index {x.shape[axis]} is out of range"):
        run_onnxep(model, {"x": x, "i": indices})


def test_gather_elements_long_axis():
    """A long gather axis (the evaluator is wrong there): checked against onnxruntime."""
    x = rand(3, 70000)
    indices = np.random.default_rng(2).integers(0, 70000, size=(3, 50000)).astype(np.int64)
    check("GatherElements", {"x": x, "i": indices}, 13, oracle="ort", axis=1)


@pytest.mark.parametrize("opset", [11, 12, 13])
@pytest.mark.parametrize(
    ("data_shape", "indices", "batch_dims"),
    [((2, 2), [[0, 0], [1, 1]], 0), ((2, 2), [[1], [0]], 0), ((2, 2, 2), [[[0, 1]], [[1, 0]]], 0),
     ((2, 2, 2), [[1], [0]], 1), ((2, 3, 4), [[[1, -1]], [[0, 2]]], 1)],
)  # fmt: skip
def test_gather_nd(opset, data_shape, indices, batch_dims):
    if opset == 11 and batch_dims:
        pytest.skip("batch_dims since opset 12")
    attrs = {"batch_dims": batch_dims} if batch_dims else {}
    check("GatherND", {"x": rand(*data_shape), "i": np.array(indices, np.int64)}, opset, **attrs)


@pytest.mark.parametrize("opset", [8, 13])
@pytest.mark.parametrize(
    ("shape", "target"), [((3, 1), (2, 1, 6)), ((1,), (4,)), ((2, 3), (3, 1, 1))]
)
def test_expand(opset, shape, target):
    check("Expand", {"x": rand(*shape), "s": np.array(target, np.int64)}, opset, constants=("s",))


@pytest.mark.parametrize("opset", [6, 13])
def test_tile(opset):
    check("Tile", {"x": rand(2, 3), "r": np.array([2, 3], np.int64)}, opset, constants=("r",))


@pytest.mark.parametrize("opset", [1, 11, 13, 21])
def test_unsqueeze_squeeze(opset):
    x = rand(3, 4)
    if opset < 13:
        check("Unsqueeze", {"x": x}, opset, axes=[0, 3] if opset == 1 else [0, -1])
        check("Squeeze", {"x": rand(1, 3, 1)}, opset, axes=[0])
        check("Squeeze", {"x": rand(1, 3, 1)}, opset)
        return
    check("Unsqueeze", {"x": x, "a": np.array([0, -1], np.int64)}, opset, constants=("a",))
    check("Squeeze", {"x": rand(1, 3, 1), "a": np.array([-1], np.int64)}, opset, constants=("a",))
    check("Squeeze", {"x": rand(1, 3, 1)}, opset)


@pytest.mark.parametrize("opset", [1, 9, 11, 13, 21])
@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1])
def test_flatten(opset, axis):
    if opset < 11 and axis < 0:
        pytest.skip("negative axes since opset 11")
    check("Flatten", {"x": rand(2, 3, 4)}, opset, axis=axis)
    check("Flatten", {"x": rand(0, 3, 4)}, opset, axis=axis, oracle="ort")  # the evaluator fails


@pytest.mark.parametrize("opset", [1, 13, 14, 16, 19, 21, 25])
def test_identity(opset):
    check("Identity", {"x": rand(2, 3)}, opset)


PADS = [
    ([1, 2, 0, 1], None),
    ([0, -1, 2, 1], None),
    ([2, 1], [1]),
    ([1, 1], [-2]),
]


@pytest.mark.parametrize(("pads", "axes"), PADS)
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("opset", [11, 13, 18, 19, 21])
def test_pad(opset, mode, pads, axes):
    if mode == "wrap" and opset < 19:
        pytest.skip("wrap since opset 19")
    if axes is not None and opset < 18:
        pytest.skip("axes since opset 18")
    inputs = {
        "x": rand(3, 4),
        "p": np.array(pads, np.int64),
        "v": np.array(1.5, np.float32) if mode == "constant" else None,
        "a": None if axes is None else np.array(axes, np.int64),
    }
    negative = min(pads) < 0  # the evaluator cannot crop
    check(
        "Pad",
        inputs,
        opset,
        constants=("p", "a"),
        mode=mode,
        oracle="ort" if negative else "evaluator",
    )


def test_pad_2_attributes():
    check("Pad", {"x": rand(3, 4)}, 2, pads=[1, 0, 2, 1], value=2.0)
    check("Pad", {"x": rand(3, 4)}, 2, pads=[1, 0, 2, 1], mode="edge")


@pytest.mark.parametrize(
    ("start", "end"), [(None, None), (1, None), (-1, None), (0, -1), (-10, 10), (2, 1)]
)
def test_shape(start, end):
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    check("Shape", {"x": rand(2, 3, 4)}, 15, **attrs)
    check("Shape", {"x": rand(2, 3, 4)}, 13)
    check("Size", {"x": rand(2, 3, 4)}, 13)
    check("Size", {"x": rand(0, 3)}, 21)


@pytest.mark.parametrize("opset", [9, 13, 19, 23])
@pytest.mark.parametrize(
    "value", [None, np.array([2.5], np.float32), np.array([7], np.int64), np.array([True])]
)
def test_constant_of_shape(opset, value):
    attrs = (
        {}
        if value is None
        else {
            "value": helper.make_tensor(
                "v", helper.np_dtype_to_tensor_dtype(value.dtype), [1], value
            )
        }
    )
    check("ConstantOfShape", {"s": np.array([2, 3], np.int64)}, opset, **attrs)
    check("ConstantOfShape", {"s": np.array([0, 3], np.int64)}, opset, **attrs)


def test_constant_of_shape_output_is_writable_and_fresh():
    """A graph output gets its own array each run; the shared cache is only used inside."""
    s = np.array([2, 2], np.int64)
    model = make_model("ConstantOfShape", {"s": s}, 9)
    import onnxep

    session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    first = session.run(None, {"s": s})[0]
    first[...] = 7
    np.testing.assert_array_equal(session.run(None, {"s": s})[0], np.zeros((2, 2), np.float32))


@pytest.mark.parametrize(
    "attr",
    [{"value_float": 1.5}, {"value_floats": [1.0, 2.0]}, {"value_int": 3}, {"value_ints": [4, 5]},
     {"value": helper.make_tensor("t", TensorProto.FLOAT16, [2], np.array([1, 2], np.float16))}],
)  # fmt: skip
@pytest.mark.parametrize("opset", [12, 13, 19])
def test_constant(opset, attr):
    check("Constant", {}, opset, **attr)


@pytest.mark.parametrize(
    ("start", "limit", "delta"), [(0, 10, 3), (10, 0, -2), (1, 1, 1), (0.5, 2.0, 0.3), (-3, 7, 2.5)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.int16])
def test_range(start, limit, delta, dtype):
    if np.dtype(dtype).kind == "i" and any(float(v) != int(v) for v in (start, limit, delta)):
        pytest.skip("integer ranges take integer bounds")
    inputs = {k: np.array(v, dtype) for k, v in (("s", start), ("l", limit), ("d", delta))}
    check("Range", inputs, 11)


def test_range_float16_computes_in_float32():
    inputs = {k: np.array(v, np.float16) for k, v in (("s", 1000.0), ("l", 1010.0), ("d", 1.5))}
    check("Range", inputs, 27)


@pytest.mark.parametrize("opset", [1, 10, 11, 24])
@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_topk(opset, largest, axis, dtype):
    if opset < 11 and (not largest or np.dtype(dtype).kind != "f"):
        pytest.skip("smallest and integer types since opset 11")
    x = rand(4, 6, 5, dtype=dtype, low=-3, high=3)  # few distinct values: ties on purpose
    attrs = {"axis": axis} | ({"largest": largest} if opset >= 11 else {})
    if opset == 1:
        check("TopK", {"x": x}, opset, n_outputs=2, k=3, **attrs)
    else:
        check(
            "TopK",
            {"x": x, "k": np.array([3], np.int64)},
            opset,
            n_outputs=2,
            constants=("k",),
            **attrs,
        )


def _stable_topk(x: np.ndarray, k: int, axis: int, largest: int) -> tuple[np.ndarray, ...]:
    """The definition: a stable sort of the whole axis (ties: lower index first)."""
    key = -x if largest and x.dtype.kind == "f" else (np.invert(x) if largest else x)
    idx = np.take(np.argsort(key, axis=axis, kind="stable"), np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx


@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize(
    ("dtype", "distinct"),
    [(np.float32, None), (np.float32, 7), (np.int32, 5), (np.uint8, 200), (np.float64, 2)],
)
def test_topk_of_few_among_many_keeps_a_stable_sorts_ties(largest, axis, dtype, distinct):
    """k <= n / 8 and n >= 256 take the partition path; few distinct values put ties across
    the k-th place, where the lowest indices must win."""
    rng = np.random.default_rng(distinct or 0)
    shape = (1000, 6) if axis == 0 else (5, 1000)
    x = (rng.integers(0, distinct, shape) if distinct else rng.standard_normal(shape)).astype(dtype)
    inputs = {"x": x, "k": np.array([40], np.int64)}
    model = make_model(
        "TopK", inputs, 11, n_outputs=2, constants=("k",), axis=axis, largest=largest
    )
    values, indices = run_onnxep(model, inputs)
    want_values, want_indices = _stable_topk(x, 40, axis, largest)
    np.testing.assert_array_equal(values, want_values)
    np.testing.assert_array_equal(indices, want_indices)
    if distinct is None:  # without ties onnxruntime agrees (its tie order is not the spec's)
        check("TopK", inputs, 11, oracle="ort", n_outputs=2, constants=("k",), axis=axis)


def test_topk_with_nans_among_many_falls_back_to_the_sort():
    x = np.random.default_rng(1).standard_normal((3, 500)).astype(np.float32)
    x[:, ::3] = np.nan  # more NaNs than non-NaN keys in reach of k for no row
    x[2, :] = np.nan
    inputs = {"x": x, "k": np.array([20], np.int64)}
    model = make_model("TopK", inputs, 11, n_outputs=2, constants=("k",))
    values, indices = run_onnxep(model, inputs)
    want_values, want_indices = _stable_topk(x, 20, -1, 1)
    np.testing.assert_array_equal(values, want_values)
    np.testing.assert_array_equal(indices, want_indices)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("opset", [1, 11, 12, 13])
@pytest.mark.parametrize(
    ("axis", "keepdims", "last"), [(0, 1, 0), (1, 0, 0), (-1, 1, 1), (1, 0, 1)]
)
def test_arg_max_min(op, opset, axis, keepdims, last):
    if (opset < 11 and axis < 0) or (opset < 12 and last):
        pytest.skip("not in this opset")
    attrs = {"axis": axis, "keepdims": keepdims} | ({"select_last_index": last} if last else {})
    check(op, {"x": rand(3, 5, 4, dtype=np.int32)}, opset, **attrs)


@pytest.mark.parametrize("opset", [11, 14])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float64])
def test_cum_sum(opset, exclusive, reverse, axis, dtype):
    inputs = {"x": rand(3, 4, dtype=dtype), "a": np.array(axis, np.int64)}
    check("CumSum", inputs, opset, constants=("a",), exclusive=exclusive, reverse=reverse)


@pytest.mark.parametrize("opset", [9, 13])
@pytest.mark.parametrize(
    "x",
    [
        rand(3, 4, dtype=np.int32, high=0.4),
        np.array([[True, False], [False, True]]),
        np.zeros((0, 2)),
    ],
)
def test_non_zero(opset, x):
    check("NonZero", {"x": x}, opset)


@pytest.mark.parametrize("opset", [9, 11])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot(opset, axis):
    indices = (
        np.array([[0, 2], [5, 1]], np.int64)
        if opset == 9
        else np.array([[0, -1], [5, -3]], np.int64)
    )
    inputs = {"i": indices, "d": np.array([4], np.float32), "v": np.array([-1, 3], np.int32)}
    check("OneHot", inputs, opset, axis=axis, oracle="ort")  # the evaluator fails on these


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 1, -2, 9])
def test_trilu(upper, k):
    inputs = {"x": rand(2, 4, 5), "k": None if k is None else np.array(k, np.int64)}
    check("Trilu", inputs, 14, constants=("k",), upper=upper)


@pytest.mark.parametrize(
    ("equation", "shapes"),
    [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ii", [(4, 4)]),
     ("i,j", [(3,), (4,)]), ("...ij->...ji", [(2, 3, 4)]), ("ij -> i", [(3, 4)])],
)  # fmt: skip
@pytest.mark.parametrize("opset", [12, 28])
def test_einsum(equation, shapes, opset):
    inputs = {f"x{i}": rand(*s, seed=i) for i, s in enumerate(shapes)}
    check("Einsum", inputs, opset, equation=equation, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("opset", [11, 13])
def test_depth_to_space(mode, opset):
    check("DepthToSpace", {"x": rand(2, 8, 3, 2)}, opset, blocksize=2, mode=mode)
    check("DepthToSpace", {"x": rand(1, 9, 2, 2)}, 1, blocksize=3)


@pytest.mark.parametrize("opset", [1, 13])
def test_space_to_depth(opset):
    check("SpaceToDepth", {"x": rand(2, 3, 4, 6)}, opset, blocksize=2)


def test_reshape_to_a_wrong_size_names_both_shapes():
    inputs = {"x": rand(2, 3), "s": np.array([4, 2], np.int64)}
    model = make_model("Reshape", inputs, 14)
    with pytest.raises(onnxep.Fail, match=r"input shape \[2, 3\] \(6 values\), requested \[4, 2\]"):
        run_onnxep(model, inputs)
