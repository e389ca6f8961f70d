"""Resize/Upsample and the Reduce* kernels.

Resize is checked against the evaluator and onnxruntime; Upsample and Resize-10, which the
evaluator cannot run in most cases, against onnxruntime only.
"""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import check, make_model, rand, run_onnxep

TRANSFORMS = [
    "half_pixel",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "half_pixel_symmetric",
]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def _resize_inputs(x, scales=None, sizes=None, roi=None):
    return {
        "x": x,
        "roi": np.array(roi if roi is not None else [], np.float32),
        "scales": None if scales is None else np.array(scales, np.float32),
        "sizes": None if sizes is None else np.array(sizes, np.int64),
    }


@pytest.mark.parametrize("ctm", TRANSFORMS)
@pytest.mark.parametrize(
    "target", [("scales", [1, 1, 2.0, 1.5]), ("scales", [1, 1, 0.6, 0.8]), ("sizes", [1, 2, 7, 3])]
)
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_modes(ctm, target, mode):
    kind, values = target
    inputs = _resize_inputs(rand(1, 2, 4, 5), **{kind: values})
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    # onnxruntime has no half_pixel_symmetric, and with a fractional output length (scale 1.5
    # on 5) uses the integer length in align_corners where onnx (and its conformance data)
    # use the fractional one: the evaluator is the oracle there
    fractional = kind == "scales" and ctm in ("align_corners", "pytorch_half_pixel")
    oracle = "evaluator" if ctm == "half_pixel_symmetric" or fractional else "ort"
    check(
        "Resize",
        inputs,
        19,
        constants=("roi", "scales", "sizes"),
        oracle=oracle,
        rtol=1e-4,
        atol=1e-5,
        **attrs,
    )


@pytest.mark.parametrize("nearest_mode", NEAREST)
@pytest.mark.parametrize("scales", [[1, 1, 2.5, 1.7], [1, 1, 0.5, 0.7]])
@pytest.mark.parametrize("opset", [11, 13, 18, 19])
def test_resize_nearest_modes(nearest_mode, scales, opset):
    inputs = _resize_inputs(rand(1, 1, 6, 7), scales=scales)
    attrs = {"nearest_mode": nearest_mode, "coordinate_transformation_mode": "asymmetric"}
    check("Resize", inputs, opset, constants=("roi", "scales"), oracle="ort", **attrs)


@pytest.mark.parametrize("exclude_outside", [0, 1])
@pytest.mark.parametrize("a", [-0.75, -0.5])
def test_resize_cubic_options(exclude_outside, a):
    inputs = _resize_inputs(rand(1, 1, 5, 6), scales=[1, 1, 1.6, 0.7])
    attrs = {"mode": "cubic", "cubic_coeff_a": a, "exclude_outside": exclude_outside}
    check(
        "Resize",
        inputs,
        13,
        constants=("roi", "scales"),
        oracle="ort",
        rtol=1e-4,
        atol=1e-5,
        **attrs,
    )


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_tf_crop_and_resize(mode):
    inputs = _resize_inputs(
        rand(1, 1, 6, 6), sizes=[1, 1, 4, 5], roi=[0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2]
    )
    attrs = {"mode": mode, "extrapolation_value": 7.0}
    check("Resize", inputs, 13, constants=("roi", "sizes"), oracle="ort", rtol=1e-4, atol=1e-5,
          coordinate_transformation_mode="tf_crop_and_resize", **attrs)  # fmt: skip


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
@pytest.mark.parametrize("axes", [None, [2, 3], [-1]])
def test_resize_axes_and_aspect_policy(policy, axes):
    """Negative axes are checked against the same resize with the axis spelled positively
    (the evaluator fails on them and onnxruntime ignores the aspect policy there)."""
    sizes = [9, 4] if axes != [-1] else [3]
    if axes is None:
        sizes = [1, 2, *sizes]
    inputs = _resize_inputs(rand(1, 2, 5, 6), sizes=sizes)
    attrs = {"keep_aspect_ratio_policy": policy, "mode": "linear"}
    if axes != [-1]:
        attrs |= {"axes": axes} if axes else {}
        check("Resize", inputs, 19, constants=("roi", "sizes"), rtol=1e-4, atol=1e-5, **attrs)
        return
    (negative,) = run_onnxep(
        make_model("Resize", inputs, 19, constants=("roi", "sizes"), axes=[-1], **attrs), inputs
    )
    (positive,) = check("Resize", inputs, 19, constants=("roi", "sizes"), axes=[3], **attrs)
    np.testing.assert_array_equal(negative, positive)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float16, np.float64])
def test_resize_dtypes(dtype):
    inputs = _resize_inputs(rand(1, 1, 4, 4, dtype=dtype), scales=[1, 1, 2, 3])
    mode = "nearest" if np.dtype(dtype).kind != "f" else "linear"
    tol = 2e-3 if dtype == np.float16 else 1e-6
    oracle = "evaluator" if dtype == np.float64 else "ort"  # onnxruntime has no float64 Resize
    check(
        "Resize",
        inputs,
        13,
        constants=("roi", "scales"),
        oracle=oracle,
        mode=mode,
        rtol=tol,
        atol=tol,
    )


def test_resize_antialias_falls_back():
    inputs = _resize_inputs(rand(1, 1, 8, 8), scales=[1, 1, 0.5, 0.5])
    model = make_model(
        "Resize", inputs, 18, constants=("roi", "scales"), mode="linear", antialias=1
    )
    with pytest.raises(AssertionError, match="not run by a hand-written kernel"):
        run_onnxep(model, inputs)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 3], [1, 1, 1.5, 2.5], [1, 1, 1, 1]])
def test_upsample_and_resize_10(mode, scales):
    x = rand(1, 2, 5, 7)
    s = np.array(scales, np.float32)
    check("Upsample", {"x": x, "s": s}, 9, constants=("s",), oracle="ort", mode=mode, rtol=1e-5)
    check("Resize", {"x": x, "s": s}, 10, constants=("s",), oracle="ort", mode=mode, rtol=1e-5)
    check(
        "Upsample",
        {"x": x},
        7,
        oracle="ort",
        mode=mode,
        scales=[float(v) for v in scales],
        rtol=1e-5,
    )


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_10_downsampling(mode):
    x = rand(1, 1, 5, 7)
    s = np.array([1, 1, 0.6, 0.5], np.float32)
    check("Resize", {"x": x, "s": s}, 10, constants=("s",), oracle="ort", mode=mode, rtol=1e-5)


REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]  # fmt: skip
AXES_CASES = [None, [1], [0, 2], [-1], []]


def _attr_versions(op):
    return (1, 11) if op == "ReduceSum" else (1, 11, 13)


def _input_versions(op):
    return (13,) if op == "ReduceSum" else (18,)


def _reduce_input(op, dtype=np.float32, shape=(3, 4, 5)):
    low = 0.1 if op == "ReduceLogSum" else -2
    return rand(*shape, dtype=dtype, low=low, high=2)


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axes", AXES_CASES, ids=str)
@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_axes_attribute(op, axes, keepdims):
    for opset in _attr_versions(op):
        attrs = {"keepdims": keepdims} | ({"axes": axes} if axes else {})
        check(op, {"x": _reduce_input(op)}, opset, rtol=1e-5, atol=1e-5, **attrs)


@pytest.mark.parametrize("noop", [0, 1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axes", AXES_CASES, ids=str)
@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_axes_input(op, axes, keepdims, noop):
    for opset in _input_versions(op):
        inputs = {"x": _reduce_input(op), "a": None if axes is None else np.array(axes, np.int64)}
        check(op, inputs, opset, constants=("a",), keepdims=keepdims, noop_with_empty_axes=noop,
              rtol=1e-5, atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64, np.float16])
@pytest.mark.parametrize(
    "op",
    [
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceSumSquare",
        "ReduceMean",
    ],
)
def test_reduce_dtypes(op, dtype):
    opset = 13 if op == "ReduceSum" else 18
    x = _reduce_input(op, dtype=dtype, shape=(3, 4))
    if np.dtype(dtype).kind in "iu" and op == "ReduceMean":
        pytest.skip("integer means round differently across runtimes")
    inputs = {"x": x, "a": np.array([1], np.int64)}
    tol = 5e-3 if dtype == np.float16 else 1e-6
    oracle = "ort" if np.dtype(dtype).kind in "iu" else "evaluator"  # the evaluator widens ints
    check(op, inputs, opset, constants=("a",), rtol=tol, atol=tol, oracle=oracle)


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_empty(op):
    """Reducing nothing gives the op's identity (0, 1, -inf, +inf, log 0)."""
    if op == "ReduceMean":
        pytest.skip("the mean of nothing is undefined")
    opset = 13 if op == "ReduceSum" else 18
    inputs = {"x": np.zeros((2, 0, 3), np.float32), "a": np.array([1], np.int64)}
    check(op, inputs, opset, constants=("a",))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_reduce_max_min_bytes(dtype):
    inputs = {"x": rand(3, 4, dtype=dtype), "a": np.array([1], np.int64)}
    check("ReduceMax", inputs, 18, constants=("a",), oracle="ort")
    check("ReduceMin", inputs, 18, constants=("a",), oracle="ort")


def test_reduce_max_bool():
    inputs = {"x": rand(3, 4, dtype=bool), "a": np.array([0], np.int64)}
    check("ReduceMax", inputs, 20, constants=("a",))
    check("ReduceMin", inputs, 20, constants=("a",))


def test_reduce_log_sum_exp_is_stable():
    x = np.array([[1000.0, 1000.0], [-1000.0, -np.inf]], np.float32)
    inputs = {"x": x, "a": np.array([1], np.int64)}
    (y,) = run_onnxep(make_model("ReduceLogSumExp", inputs, 18, constants=("a",)), inputs)
    np.testing.assert_allclose(y.ravel(), [1000 + np.log(2), -1000], rtol=1e-6)
