"""Conv, pooling, normalisation, softmax family, Gemm/MatMul, Dropout and LRN kernels.

Oracles: onnx's ReferenceEvaluator, and onnxruntime where the evaluator is known to be wrong
(BatchNormalization 9-13, Softmax/LogSoftmax/Hardmax below opset 13, pooling with
``ceil_mode``, MaxPool's Indices) or does not implement the case.
"""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import check, make_model, rand, run_onnxep

CONV_CASES = [
    # x shape, w shape, attributes
    ((2, 4, 11), (6, 4, 3), {"strides": [2], "pads": [1, 2], "dilations": [2]}),
    (
        (2, 6, 9, 8),
        (4, 3, 3, 2),
        {"group": 2, "strides": [2, 1], "dilations": [1, 2], "pads": [1, 0, 2, 1]},
    ),
    ((1, 5, 7, 7), (5, 1, 3, 3), {"group": 5, "pads": [1, 1, 1, 1]}),
    ((1, 5, 8, 7), (5, 1, 3, 3), {"group": 5, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((2, 5, 7, 6), (10, 1, 3, 3), {"group": 5, "pads": [0, 1, 2, 1], "dilations": [2, 1]}),
    ((2, 64, 5, 4), (64, 1, 3, 3), {"group": 64, "pads": [1, 0, 2, 1], "strides": [2, 1]}),
    ((1, 40, 33, 34), (8, 40, 3, 2), {"pads": [1, 0, 2, 1], "dilations": [2, 1]}),
    ((1, 48, 6), (48, 1, 3), {"group": 48, "pads": [1, 1], "dilations": [2]}),
    ((1, 40, 3, 4, 5), (40, 1, 2, 3, 3), {"group": 40, "pads": [1, 1, 1, 0, 1, 1]}),
    ((2, 6, 5, 5), (4, 6, 1, 1), {}),
    ((1, 6, 9, 9), (6, 3, 1, 1), {"group": 2, "strides": [2, 3]}),
    ((1, 4, 5, 6, 7), (2, 4, 2, 3, 2), {"pads": [1, 0, 1, 0, 2, 1], "strides": [1, 2, 2]}),
    ((1, 4, 5, 6, 7), (4, 1, 3, 3, 3), {"group": 4, "pads": [1, 1, 1, 1, 1, 1]}),
    ((1, 3, 10, 9), (4, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 3, 10, 9), (4, 3, 4, 3), {"auto_pad": "SAME_LOWER", "strides": [3, 2]}),
    ((1, 3, 10, 9), (4, 3, 3, 3), {"auto_pad": "VALID", "strides": [2, 2]}),
    ((0, 3, 6, 6), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
]


def _conv_id(case):
    x, w, attrs = case
    return f"x{'x'.join(map(str, x))}-w{'x'.join(map(str, w))}-{'-'.join(map(str, attrs))}"


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "attrs"), CONV_CASES, ids=[_conv_id(c) for c in CONV_CASES]
)
@pytest.mark.parametrize("form", ["bias", "no bias", "constant weights and bias"])
def test_conv(x_shape, w_shape, attrs, form):
    """Weights and bias as inputs, or as initializers (the kernel then adds the bias inside
    the matrix product, through a row of ones)."""
    inputs = {
        "x": rand(*x_shape),
        "w": rand(*w_shape, seed=1),
        "b": rand(w_shape[0], seed=2) if form != "no bias" else None,
    }
    constants = ("w", "b") if form.startswith("constant") else ()
    check("Conv", inputs, 11, oracle="ort", rtol=1e-4, atol=1e-4, constants=constants, **attrs)
    check("Conv", inputs, 22, rtol=1e-4, atol=1e-4, constants=constants, **attrs)


@pytest.mark.parametrize("seed", range(12))
def test_stride_one_conv_on_random_geometry(seed):
    """Stride-1 convs, 1-D to 3-D, with groups, batches, dilations and asymmetric pads."""
    rng = np.random.default_rng(seed)
    nd = (1, 2, 2, 2, 3)[seed % 5]
    group = int(rng.integers(1, 3))
    kernel = [int(k) for k in rng.integers(2, 5, nd)]
    dilations = [*(int(d) for d in rng.integers(1, 3, nd - 1)), 1]
    pads = [int(rng.integers(0, k)) for k in kernel * 2]
    size = [int(v) for v in rng.integers(24 if nd < 3 else 6, 31 if nd < 3 else 9, nd)]
    x = rand(int(rng.integers(1, 3)), 3 * group, *size)
    w = rand(2 * group, 3, *kernel, seed=1)
    attrs = {"group": group, "dilations": dilations, "pads": pads}
    inputs = {"x": x, "w": w, "b": rand(2 * group, seed=2)}
    constants = ("w", "b") if seed % 2 else ()
    check("Conv", inputs, 11, oracle="ort", rtol=1e-4, atol=1e-4, constants=constants, **attrs)


@pytest.mark.parametrize("seed", range(12))
def test_depthwise_conv_on_random_geometry(seed):
    """Depthwise convs on both of their paths (per-channel matmul, accumulation): 1-D to 3-D,
    strides 1 and 2 on small and large planes, dilations, asymmetric pads, batches."""
    rng = np.random.default_rng(seed)
    nd = (1, 2, 2, 2, 3, 2)[seed % 6]
    stride = int(rng.integers(1, 3))
    kernel = [int(k) for k in rng.integers(2, 6 if nd == 1 else 4, nd)]
    dilations = [int(d) for d in rng.integers(1, 3, nd)]
    pads = [int(rng.integers(0, k)) for k in kernel * 2]
    side = (8, 60, 6)[seed % 3] if nd == 2 else (40, 0, 7)[nd - 1]
    channels = int(rng.integers(2, 40))
    x = rand(int(rng.integers(1, 3)), channels, *([side] * nd))
    attrs = {"group": channels, "dilations": dilations, "pads": pads, "strides": [stride] * nd}
    inputs = {"x": x, "w": rand(channels, 1, *kernel, seed=1), "b": rand(channels, seed=2)}
    constants = ("w", "b") if seed % 2 else ()
    check("Conv", inputs, 11, oracle="ort", rtol=1e-4, atol=1e-4, constants=constants, **attrs)


@pytest.mark.parametrize("opset", [1, 11, 22])
@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_conv_versions_and_dtypes(opset, dtype):
    inputs = {"x": rand(1, 3, 6, 6, dtype=dtype), "w": rand(2, 3, 3, 3, dtype=dtype, seed=1)}
    tol = 5e-2 if dtype == np.float16 else 1e-10
    check("Conv", inputs, opset, rtol=tol, atol=tol, pads=[1, 1, 1, 1])
    inputs["b"] = rand(2, dtype=dtype, seed=2)
    check("Conv", inputs, opset, rtol=tol, atol=tol, constants=("w", "b"), pads=[1, 1, 1, 1])


CONV_TRANSPOSE_CASES = [
    ((1, 2, 4), (2, 3, 3), {"strides": [2]}),
    ((2, 4, 3, 4), (4, 2, 3, 3), {"group": 2, "strides": [2, 1], "pads": [1, 0, 0, 1]}),
    (
        (1, 2, 3, 3),
        (2, 3, 3, 2),
        {"strides": [3, 2], "output_padding": [1, 1], "dilations": [1, 2]},
    ),
    ((1, 3, 4, 4), (3, 1, 2, 2), {"group": 3, "strides": [2, 2]}),
    ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), {"strides": [2, 1, 2], "pads": [0, 1, 0, 1, 0, 1]}),
    ((1, 2, 3, 3), (2, 3, 3, 3), {"strides": [2, 2], "output_shape": [7, 8]}),
    ((1, 2, 3, 3), (2, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 3, 3), (2, 3, 3, 3), {"strides": [2, 2], "auto_pad": "VALID"}),
]


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "attrs"),
    CONV_TRANSPOSE_CASES,
    ids=[_conv_id(c) for c in CONV_TRANSPOSE_CASES],
)
@pytest.mark.parametrize("opset", [11, 22])
def test_conv_transpose(x_shape, w_shape, attrs, opset):
    inputs = {
        "x": rand(*x_shape),
        "w": rand(*w_shape, seed=1),
        "b": rand(w_shape[1] * attrs.get("group", 1), seed=2),
    }
    oracle = "ort" if opset == 11 else "evaluator"
    if oracle == "evaluator" and attrs.get("group", 1) > 1:
        pytest.skip("onnx's ReferenceEvaluator mis-slices grouped ConvTranspose weights")
    check("ConvTranspose", inputs, opset, oracle=oracle, rtol=1e-4, atol=1e-4, **attrs)


def test_conv_transpose_same_lower_pads_begin():
    """SAME_LOWER puts the odd pad at the beginning (the spec; onnxruntime does the reverse)."""
    x, w = rand(1, 1, 3), np.ones((1, 1, 2), np.float32)
    model = make_model("ConvTranspose", {"x": x, "w": w}, 22, strides=[2], auto_pad="SAME_LOWER")
    (y,) = run_onnxep(model, {"x": x, "w": w})
    full = np.repeat(x[0, 0], 2)  # stride 2, kernel 2 of ones: each input copied twice, 6 long
    np.testing.assert_allclose(y[0, 0], full, rtol=1e-6)


POOL_CASES = [
    ((1, 3, 9, 8), {"kernel_shape": [3, 3], "strides": [2, 2]}),
    ((2, 2, 9, 8), {"kernel_shape": [3, 2], "strides": [2, 3], "pads": [1, 0, 1, 1]}),
    ((1, 2, 11), {"kernel_shape": [4], "strides": [3], "pads": [2, 1]}),
    (
        (1, 2, 5, 6, 7),
        {"kernel_shape": [2, 3, 2], "strides": [2, 2, 1], "pads": [1, 0, 1, 0, 1, 1]},
    ),
    ((1, 3, 9, 8), {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 3, 9, 8), {"kernel_shape": [2, 3], "auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ((1, 3, 9, 8), {"kernel_shape": [3, 3], "auto_pad": "VALID", "strides": [2, 2]}),
    ((1, 3, 10, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    (
        (1, 3, 10, 9),
        {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    ),
    ((1, 2, 9, 9), {"kernel_shape": [2, 2], "dilations": [2, 2], "strides": [1, 2]}),
    (
        (1, 2, 9, 9),
        {"kernel_shape": [2, 3], "dilations": [2, 1], "strides": [2, 2], "ceil_mode": 1},
    ),
]


def _pool_id(case):
    shape, attrs = case
    return f"x{'x'.join(map(str, shape))}-" + "-".join(f"{k}{v}" for k, v in attrs.items())


@pytest.mark.parametrize(("shape", "attrs"), POOL_CASES, ids=[_pool_id(c) for c in POOL_CASES])
@pytest.mark.parametrize("opset", [12, 22])
def test_max_pool(shape, attrs, opset):
    x = rand(*shape)
    check("MaxPool", {"x": x}, opset, oracle="ort", **attrs)


@pytest.mark.parametrize(("shape", "attrs"), POOL_CASES, ids=[_pool_id(c) for c in POOL_CASES])
@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices(shape, attrs, storage_order):
    if "dilations" in attrs:
        pytest.skip("onnxruntime computes no Indices with dilations")
    x = rand(*shape)
    check("MaxPool", {"x": x}, 12, oracle="ort", n_outputs=2, storage_order=storage_order, **attrs)


@pytest.mark.parametrize("opset", [1, 8, 10, 11])
def test_max_pool_old_versions(opset):
    check(
        "MaxPool",
        {"x": rand(1, 2, 7, 6)},
        opset,
        kernel_shape=[3, 2],
        strides=[2, 1],
        pads=[1, 0, 1, 1],
    )


def test_max_pool_int8():
    x = rand(1, 2, 7, 6, dtype=np.int8)
    check("MaxPool", {"x": x}, 12, oracle="ort", kernel_shape=[3, 3], pads=[1, 1, 1, 1])


@pytest.mark.parametrize(("shape", "attrs"), POOL_CASES, ids=[_pool_id(c) for c in POOL_CASES])
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool(shape, attrs, count_include_pad):
    x = rand(*shape)
    opset = 19 if "dilations" in attrs else 11
    check(
        "AveragePool", {"x": x}, opset, oracle="ort", count_include_pad=count_include_pad, **attrs
    )


@pytest.mark.parametrize("seed", range(12))
def test_pools_on_random_geometry(seed):
    """Random 2-D windows (kernel, stride, dilation, pads, ceil_mode) over several channels:
    the flattened passes must never let a window read across a row or plane edge."""
    rng = np.random.default_rng(seed)
    kernel = [int(k) for k in rng.integers(1, 5, 2)]
    attrs = {
        "kernel_shape": kernel,
        "strides": [int(s) for s in rng.integers(1, 4, 2)],
        "pads": [int(rng.integers(0, k)) for k in kernel * 2],
        "ceil_mode": int(rng.integers(0, 2)),
    }
    x = rand(int(rng.integers(1, 3)), int(rng.integers(1, 6)), *map(int, rng.integers(5, 17, 2)))
    check("AveragePool", {"x": x}, 11, oracle="ort", count_include_pad=seed % 2, **attrs)
    attrs["dilations"] = [int(d) for d in rng.integers(1, 3, 2)]
    check("MaxPool", {"x": x}, 12, oracle="ort", **attrs)


@pytest.mark.parametrize("seed", range(12))
def test_padded_pools_without_a_padded_copy(seed):
    """Pools whose pads are shorter than the kernel run on the unpadded input (flat passes,
    border positions recomputed): 1-D to 3-D, planes smaller than the window, SPP-style
    'same' max pools, strides with ceil_mode, int8."""
    rng = np.random.default_rng(seed)
    nd = (1, 2, 2, 3)[seed % 4]
    kernel = [int(k) for k in rng.integers(2, 8, nd)]
    pads = [int(rng.integers(0, k)) for k in kernel * 2]
    if seed % 3 == 0:  # 'same' geometry: output size == input size at stride 1
        pads = [k // 2 for k in kernel] + [k - 1 - k // 2 for k in kernel]
    attrs = {
        "kernel_shape": kernel,
        "strides": [int(s) for s in rng.integers(1, 3, nd)],
        "pads": pads,
        "ceil_mode": int(rng.integers(0, 2)),
    }
    shape = [int(v) for v in rng.integers(2, 12 if nd < 3 else 7, nd)]
    x = rand(int(rng.integers(1, 3)), int(rng.integers(1, 5)), *shape)
    check("AveragePool", {"x": x}, 11, oracle="ort", count_include_pad=seed % 2, **attrs)
    check("MaxPool", {"x": x}, 12, oracle="ort", **attrs)
    ints = rng.integers(-128, 128, x.shape).astype(np.int8)
    check("MaxPool", {"x": ints}, 12, oracle="ort", **attrs)


@pytest.mark.parametrize("opset", [7, 10, 11, 19, 22])
def test_average_pool_versions(opset):
    check(
        "AveragePool",
        {"x": rand(1, 2, 7, 6)},
        opset,
        kernel_shape=[3, 2],
        pads=[1, 0, 1, 1],
        count_include_pad=1,
    )


def test_average_pool_1_excludes_pads():
    """AveragePool-1 divides by the taps inside the input, as opset 7 with count_include_pad=0
    (onnx's ReferenceEvaluator divides by the whole kernel there)."""
    x = rand(1, 2, 7, 6)
    attrs = {"kernel_shape": [3, 2], "pads": [1, 0, 1, 1]}
    (old,) = run_onnxep(make_model("AveragePool", {"x": x}, 1, **attrs), {"x": x})
    check("AveragePool", {"x": x}, 7, oracle="ort", **attrs)
    (new,) = run_onnxep(make_model("AveragePool", {"x": x}, 7, **attrs), {"x": x})
    np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("opset", [2, 11, 18, 22])
def test_lp_pool(opset, p):
    check(
        "LpPool",
        {"x": rand(1, 2, 7, 6)},
        opset,
        oracle="ort",
        kernel_shape=[3, 2],
        strides=[2, 1],
        p=p,
    )
    if opset >= 2:
        check("GlobalLpPool", {"x": rand(2, 3, 4, 5)}, 2, oracle="ort", p=p)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 4, 7), (1, 2, 3, 4, 5)])
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("opset", [1, 22])
def test_global_pools(op, opset, shape):
    """onnxruntime as oracle: the evaluator's GlobalMaxPool drops dims of non-4-D inputs."""
    check(op, {"x": rand(*shape)}, opset, oracle="ort")


def _bn_inputs(shape, dtype=np.float32):
    c = shape[1]
    return {
        "x": rand(*shape, dtype=dtype),
        "scale": rand(c, seed=1, dtype=dtype),
        "b": rand(c, seed=2, dtype=dtype),
        "mean": rand(c, seed=3, dtype=dtype),
        "var": rand(c, seed=4, low=0.5, high=2, dtype=dtype),
    }


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3), (1, 4, 3, 2, 2)])
@pytest.mark.parametrize("opset", [7, 9, 14, 15])
def test_batch_norm_inference(opset, shape):
    check("BatchNormalization", _bn_inputs(shape), opset, oracle="ort", epsilon=1e-3)


def test_batch_norm_6_is_test():
    check("BatchNormalization", _bn_inputs((2, 3, 4)), 6, is_test=1)


def test_batch_norm_float16():
    check(
        "BatchNormalization",
        _bn_inputs((2, 3, 4, 4), np.float16),
        15,
        oracle="ort",
        rtol=2e-3,
        atol=2e-3,
    )


@pytest.mark.parametrize("opset", [14, 15])
def test_batch_norm_training(opset):
    check(
        "BatchNormalization", _bn_inputs((3, 4, 5, 2)), opset, n_outputs=3, training_mode=1,
        momentum=0.8, rtol=1e-4, atol=1e-5,
    )  # fmt: skip


def test_batch_norm_training_before_14_falls_back():
    inputs = _bn_inputs((2, 3, 4))
    model = make_model("BatchNormalization", inputs, 9, n_outputs=5)
    with pytest.raises(AssertionError, match="not run by a hand-written kernel"):
        run_onnxep(model, inputs)


@pytest.mark.parametrize("opset", [6, 22])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 7)])
def test_instance_norm(opset, shape):
    c = shape[1]
    inputs = {"x": rand(*shape), "s": rand(c, seed=1), "b": rand(c, seed=2)}
    check("InstanceNormalization", inputs, opset, epsilon=1e-3, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 1, 2, 0])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm(axis, bias):
    shape = (2, 3, 4)
    norm = shape[axis:]
    inputs = {
        "x": rand(*shape),
        "s": rand(*norm, seed=1),
        "b": rand(*norm, seed=2) if bias else None,
    }
    check("LayerNormalization", inputs, 17, n_outputs=3, axis=axis, rtol=1e-4, atol=1e-5)


def test_layer_norm_float16():
    inputs = {"x": rand(3, 8, dtype=np.float16), "s": rand(8, seed=1, dtype=np.float16)}
    check("LayerNormalization", inputs, 17, oracle="ort", rtol=3e-3, atol=3e-3)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_group_norm(groups):
    inputs = {"x": rand(2, 4, 3, 5), "s": rand(4, seed=1), "b": rand(4, seed=2)}
    check("GroupNormalization", inputs, 21, num_groups=groups, epsilon=1e-3, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset", [1, 11, 13])
def test_softmax_family(op, opset, axis):
    """Below 13: flattened to 2-D at ``axis`` (checked against onnxruntime); 13: along ``axis``."""
    if opset == 1 and axis < 0:
        pytest.skip("opset 1 takes axis in [0, rank)")
    x = rand(2, 3, 4, low=-5, high=5)
    if op == "Hardmax":
        x[0, 0, :2] = 5.0  # ties: the first maximum wins
    oracle = "evaluator" if opset >= 13 else "ort"
    check(op, {"x": x}, opset, oracle=oracle, axis=axis)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset", [1, 11, 13])
def test_softmax_family_default_axis(op, opset):
    oracle = "evaluator" if opset >= 13 else "ort"
    check(op, {"x": rand(2, 3, 4, low=-5, high=5)}, opset, oracle=oracle)


def test_softmax_large_values_are_stable():
    x = np.array([[1000.0, 1001.0, -1000.0]], np.float32)
    (y,) = run_onnxep(make_model("Softmax", {"x": x}, 13), {"x": x})
    np.testing.assert_allclose(y, [[1 / (1 + np.e), np.e / (1 + np.e), 0]], rtol=1e-6)


GEMM_CASES = [
    ({}, (3,)),
    ({"transA": 1}, (4, 3)),
    ({"transB": 1, "alpha": 0.5, "beta": 2.0}, (4, 1)),
    ({"transA": 1, "transB": 1}, ()),
    ({"beta": 0.0}, (1, 3)),
]


@pytest.mark.parametrize(("attrs", "c_shape"), GEMM_CASES)
@pytest.mark.parametrize("opset", [7, 9, 11, 13])
def test_gemm(opset, attrs, c_shape):
    a = rand(5, 4) if attrs.get("transA") else rand(4, 5)
    b = rand(3, 5, seed=1) if attrs.get("transB") else rand(5, 3, seed=1)
    check(
        "Gemm", {"a": a, "b": b, "c": rand(*c_shape, seed=2)}, opset, rtol=1e-4, atol=1e-5, **attrs
    )


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_gemm_dtypes_and_no_c(dtype):
    a, b = rand(4, 6, dtype=dtype), rand(6, 2, seed=1, dtype=dtype)
    tol = 1e-2 if dtype == np.float16 else 1e-10
    check("Gemm", {"a": a, "b": b, "c": None}, 13, rtol=tol, atol=tol, alpha=2.0)


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((0, 4), (4, 2)),
]


@pytest.mark.parametrize(("a_shape", "b_shape"), MATMUL_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("opset", [1, 9, 13])
def test_matmul(opset, dtype, a_shape, b_shape):
    tol = 1e-2 if dtype == np.float16 else 1e-5
    check(
        "MatMul",
        {"a": rand(*a_shape, dtype=dtype), "b": rand(*b_shape, seed=1, dtype=dtype)},
        opset,
        rtol=tol,
        atol=tol,
    )


@pytest.mark.parametrize("opset", [7, 10, 12, 13, 22])
@pytest.mark.parametrize("mask", [True, False])
def test_dropout_inference(opset, mask):
    x = rand(3, 4)
    (y, *rest) = run_onnxep(
        make_model("Dropout", {"x": x}, opset, n_outputs=2 if mask else 1), {"x": x}
    )
    np.testing.assert_array_equal(y, x)
    if mask:
        assert rest[0].dtype == (bool if opset >= 10 else np.float32)
        assert rest[0].all() and rest[0].shape == x.shape


def test_dropout_constant_training_mode_false():
    inputs = {"x": rand(3, 4), "ratio": np.array(0.3, np.float32), "mode": np.array(False)}
    model = make_model("Dropout", inputs, 13, constants=("ratio", "mode"))
    np.testing.assert_array_equal(run_onnxep(model, inputs)[0], inputs["x"])


def test_dropout_training_falls_back():
    inputs = {"x": rand(3, 4), "ratio": np.array(0.3, np.float32), "mode": np.array(True)}
    model = make_model("Dropout", inputs, 13)
    with pytest.raises(AssertionError, match="not run by a hand-written kernel"):
        run_onnxep(model, inputs)


def _lrn_spec(x, size, alpha=1e-4, beta=0.75, bias=1.0):
    """The spec's formula in float64: window [c - floor((size-1)/2), c + ceil((size-1)/2)]."""
    sq = x.astype(np.float64) ** 2
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sums = np.stack([sq[:, max(0, c - lo) : c + hi + 1].sum(axis=1) for c in range(x.shape[1])], 1)
    return (x / (bias + alpha / size * sums) ** beta).astype(x.dtype)


@pytest.mark.parametrize("size", [1, 3, 4, 5])
@pytest.mark.parametrize("opset", [1, 13])
def test_lrn(opset, size):
    """onnxruntime (odd sizes only) and the spec's formula; onnx's evaluator is off by ~1e-4."""
    x = rand(2, 7, 3, 4)
    attrs = {"size": size, "alpha": 0.01, "beta": 0.6, "bias": 1.5}
    (y,) = run_onnxep(make_model("LRN", {"x": x}, opset, **attrs), {"x": x})
    np.testing.assert_allclose(y, _lrn_spec(x, **attrs), rtol=1e-5, atol=1e-6)
    if size % 2:
        check("LRN", {"x": x}, opset, oracle="ort", **attrs)
        check("LRN", {"x": x}, opset, oracle="ort", size=size)
