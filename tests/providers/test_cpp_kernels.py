"""The non-GEMM kernels of ``onnxep_cpp._kernels`` against numpy and direct float64 loops.

Odd sizes, empty tensors, special values, broadcasting, non-contiguous inputs, and the
errors raised before any raw pointer is touched.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxep_cpp._registry import load_error, native

pytestmark = pytest.mark.skipif(
    native is None, reason=f"the C++ extension is not built: {load_error}"
)

RNG = np.random.default_rng(1234)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape, dtype=np.float32)


# --- elementwise ----------------------------------------------------------------------

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40, 88.8, -104.0, 20.0])


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("relu", lambda x: np.maximum(x, 0)),
        ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
        ("tanh", np.tanh),
        ("exp", np.exp),
        ("log", np.log),
        ("sqrt", np.sqrt),
        ("abs", np.abs),
        ("neg", np.negative),
    ],
)
@pytest.mark.parametrize("size", [0, 1, 7, 127, 70001])
def test_unary_matches_numpy(name, ref, size):
    x = (rand(size) * 8).astype(np.float32)
    x[: min(size, SPECIAL.size)] = SPECIAL[: min(size, SPECIAL.size)]
    if name in ("log", "sqrt"):
        x = np.abs(x)
    with np.errstate(all="ignore"):
        expected = ref(x.astype(np.float64)).astype(np.float32)
    y = getattr(native, name)(x)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=2e-6, atol=1e-37)


def test_leaky_relu_clip_erf():
    x = rand(3, 127) * 3
    np.testing.assert_allclose(native.leaky_relu(x, alpha=0.2), np.where(x < 0, 0.2 * x, x))
    np.testing.assert_array_equal(native.clip(x, lo=-1.0, hi=0.5), np.clip(x, -1.0, 0.5))
    import math

    erf = np.vectorize(math.erf)(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(native.erf(x), erf, rtol=1e-6, atol=1e-7)


BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.maximum,
    "min": np.minimum,
    "pow": np.power,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((), ()),
        ((127,), ()),
        ((), (7, 1)),
        ((3, 1, 5), (4, 1)),
        ((2, 1, 70001), (1, 3, 1)),
        ((1, 127), (127, 1)),
        ((0, 3), (1, 3)),
        ((2, 3, 4, 5), (3, 1, 5)),
    ],
)
def test_binary_broadcasting(name, a_shape, b_shape):
    a, b = rand(*a_shape), rand(*b_shape)
    if name == "pow":
        a = np.abs(a)
    y = getattr(native, name)(a, b)
    expected = BINARY[name](a, b)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=0)


def test_max_min_propagate_nan_like_numpy():
    a = np.array([np.nan, 1.0, 2.0, np.nan], np.float32)
    b = np.array([1.0, np.nan, 3.0, np.nan], np.float32)
    np.testing.assert_array_equal(native.max(a, b), np.maximum(a, b))
    np.testing.assert_array_equal(native.min(a, b), np.minimum(a, b))


def test_binary_non_contiguous_operands():
    a = rand(6, 10)[:, ::2]
    b = rand(5, 6).T
    np.testing.assert_allclose(native.add(a, b), a + b, rtol=1e-6)


# --- Softmax, LayerNormalization -------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "axis"), [((1,), 0), ((7, 127), -1), ((3, 5, 17), 1), ((4, 6, 2), 0), ((2, 0, 3), 1)]
)
def test_softmax_any_axis(shape, axis):
    x = rand(*shape) * 4
    e = np.exp(x - x.max(axis=axis, keepdims=True)) if x.size else x
    expected = e / e.sum(axis=axis, keepdims=True) if x.size else x
    np.testing.assert_allclose(native.softmax(x, axis=axis), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("shape", "axis"), [((4, 7), -1), ((2, 3, 127), 1), ((5, 1), 0)])
def test_layer_norm_outputs(shape, axis):
    x = rand(*shape) * 3 + 1
    inner = shape[axis % len(shape) :]
    scale, bias = rand(*inner), rand(*inner)
    y, mean, inv_std = native.layer_norm(x, scale.ravel(), bias.ravel(), axis=axis, epsilon=1e-3)
    axes = tuple(range(axis % len(shape), len(shape)))
    mu = x.astype(np.float64).mean(axis=axes, keepdims=True)
    var = x.astype(np.float64).var(axis=axes, keepdims=True)
    np.testing.assert_allclose(mean, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(var + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(
        y, (x - mu) / np.sqrt(var + 1e-3) * scale + bias, rtol=1e-4, atol=1e-5
    )
    y2, _, _ = native.layer_norm(x, scale.ravel(), None, axis=axis, epsilon=1e-3)
    np.testing.assert_allclose(y2, y - bias, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 127), (1, 5, 4, 7), (0, 3, 2)])
@pytest.mark.parametrize("relu", [False, True])
def test_channel_affine(shape, relu):
    x, a, b = rand(*shape), rand(shape[1]), rand(shape[1])
    c = (1, shape[1]) + (1,) * (len(shape) - 2)
    expected = x * a.reshape(c) + b.reshape(c)
    if relu:
        expected = np.maximum(expected, 0)
    got = native.channel_affine(x, a, b, relu=relu)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)  # FMA: one rounding


# --- Conv and pools --------------------------------------------------------------------


def ref_conv(x, w, b, pads, strides, dilations, group):
    """Direct float64 convolution, NCHW."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    n, _, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh = (h - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    y = np.zeros((n, m, oh, ow))
    mg = m // group
    for i in range(kh):
        for j in range(kw):
            hs = slice(i * dilations[0], i * dilations[0] + strides[0] * (oh - 1) + 1, strides[0])
            ws = slice(j * dilations[1], j * dilations[1] + strides[1] * (ow - 1) + 1, strides[1])
            patch = x[:, :, hs, ws]
            for g in range(group):
                wg = w[g * mg : (g + 1) * mg, :, i, j].astype(np.float64)
                y[:, g * mg : (g + 1) * mg] += np.einsum(
                    "mc,nchw->nmhw", wg, patch[:, g * cg : (g + 1) * cg]
                )
    return y + (0 if b is None else b.reshape(1, -1, 1, 1))


CONVS = [
    # x shape, w shape, pads, strides, dilations, group
    ((1, 3, 7, 9), (4, 3, 3, 3), (1, 1, 1, 1), (1, 1), (1, 1), 1),
    ((2, 4, 13, 11), (6, 2, 3, 2), (0, 1, 2, 0), (2, 3), (1, 2), 2),
    ((1, 8, 9, 9), (8, 1, 3, 3), (1, 1, 1, 1), (1, 1), (1, 1), 8),  # depthwise
    ((1, 4, 9, 10), (8, 1, 5, 3), (2, 0, 1, 1), (2, 1), (2, 1), 4),  # depthwise x2
    ((2, 16, 5, 5), (7, 16, 1, 1), (0, 0, 0, 0), (1, 1), (1, 1), 1),  # 1x1: no im2col
    ((1, 1, 1, 127), (3, 1, 1, 7), (0, 3, 0, 3), (1, 1), (1, 1), 1),  # 1-D as 2-D
]


@pytest.mark.parametrize(("xs", "ws", "pads", "strides", "dilations", "group"), CONVS)
@pytest.mark.parametrize(("relu", "threads"), [(False, 1), (True, 1), (False, 3), (True, 3)])
def test_conv2d_matches_direct_convolution(xs, ws, pads, strides, dilations, group, relu, threads):
    """threads=3 runs small (image, group) products one per task, threads=1 in sequence."""
    x, w, b = rand(*xs), rand(*ws), rand(ws[0])
    y = native.conv2d(
        x,
        w,
        b,
        pads=list(pads),
        strides=list(strides),
        dilations=list(dilations),
        group=group,
        relu=relu,
        threads=threads,
    )
    expected = ref_conv(x, w, b, pads, strides, dilations, group)
    if relu:
        expected = np.maximum(expected, 0)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_conv2d_large_input_uses_bands_and_empty_batch():
    x, w = rand(1, 64, 70, 70), rand(16, 64, 3, 3)
    y = native.conv2d(x, w, None, pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1])
    expected = ref_conv(x, w, None, (1, 1, 1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-3)
    empty = native.conv2d(
        rand(0, 3, 5, 5), rand(2, 3, 3, 3), None, pads=[0] * 4, strides=[1, 1], dilations=[1, 1]
    )
    assert empty.shape == (0, 2, 3, 3)


def ref_pool(x, kernel, pads, strides, dilations, ceil, kind, include_pad):
    n, c, h, w = x.shape
    out = []
    for size, k, pb, pe, s, d in zip((h, w), kernel, pads[:2], pads[2:], strides, dilations):
        span = size + pb + pe - d * (k - 1) - 1
        o = -(-span // s) + 1 if ceil else span // s + 1
        if ceil and (o - 1) * s >= size + pb:
            o -= 1
        out.append(o)
    y = np.zeros((n, c, *out), np.float64)
    for r in range(out[0]):
        for q in range(out[1]):
            rows = [r * strides[0] - pads[0] + i * dilations[0] for i in range(kernel[0])]
            cols = [q * strides[1] - pads[1] + j * dilations[1] for j in range(kernel[1])]
            inside = [(i, j) for i in rows for j in cols if 0 <= i < h and 0 <= j < w]
            vals = np.stack([x[:, :, i, j] for i, j in inside], -1).astype(np.float64)
            if kind == "max":
                y[:, :, r, q] = vals.max(-1)
            else:
                counted = sum(1 for i in rows for j in cols if i < h + pads[2] and j < w + pads[3])
                y[:, :, r, q] = vals.sum(-1) / (counted if include_pad else len(inside))
    return y


POOLS = [
    ((1, 2, 7, 7), (3, 3), (1, 1, 1, 1), (2, 2), (1, 1), False),
    ((2, 3, 8, 9), (2, 3), (0, 1, 1, 0), (2, 2), (1, 1), True),
    ((1, 1, 11, 6), (3, 2), (2, 1, 2, 1), (3, 1), (2, 1), True),
    ((1, 2, 1, 127), (1, 4), (0, 0, 0, 3), (1, 4), (1, 1), True),
]


@pytest.mark.parametrize(("xs", "kernel", "pads", "strides", "dilations", "ceil"), POOLS)
def test_max_pool2d(xs, kernel, pads, strides, dilations, ceil):
    x = rand(*xs)
    y = native.max_pool2d(
        x,
        kernel=list(kernel),
        pads=list(pads),
        strides=list(strides),
        dilations=list(dilations),
        ceil_mode=ceil,
    )
    np.testing.assert_array_equal(
        y, ref_pool(x, kernel, pads, strides, dilations, ceil, "max", False)
    )


@pytest.mark.parametrize(("xs", "kernel", "pads", "strides", "dilations", "ceil"), POOLS)
@pytest.mark.parametrize("include_pad", [False, True])
def test_avg_pool2d(xs, kernel, pads, strides, dilations, ceil, include_pad):
    x = rand(*xs)
    y = native.avg_pool2d(
        x,
        kernel=list(kernel),
        pads=list(pads),
        strides=list(strides),
        dilations=list(dilations),
        ceil_mode=ceil,
        count_include_pad=include_pad,
    )
    expected = ref_pool(x, kernel, pads, strides, dilations, ceil, "avg", include_pad)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


# --- safety: checks before pointers ----------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: native.gemm(rand(2, 3).astype(np.float64), rand(3, 2)),
            TypeError,
            "A must be float32",
        ),
        (lambda: native.gemm([[1.0]], rand(1, 1)), TypeError, "must be a numpy array"),
        (lambda: native.gemm(rand(2, 3), rand(4, 2)), ValueError, "inner dimensions"),
        (lambda: native.gemm(rand(2, 3, 1), rand(3, 2)), ValueError, "2-D"),
        (lambda: native.gemm(rand(2, 3), rand(3, 2), rand(3, 2)), ValueError, "does not broadcast"),
        (lambda: native.matmul(rand(2, 3, 4), rand(3, 4, 5)), ValueError, "batch dimensions"),
        (lambda: native.add(rand(3), rand(4)), ValueError, "broadcast"),
        (lambda: native.relu(rand(3).astype(np.float16)), TypeError, "float32"),
        (lambda: native.relu(rand(3).astype(">f4")), TypeError, "float32"),
        (lambda: native.softmax(rand(3, 4), axis=2), ValueError, "out of range"),
        (lambda: native.channel_affine(rand(3), rand(3), rand(3)), ValueError, "rank >= 2"),
        (lambda: native.channel_affine(rand(2, 3), rand(2), rand(3)), ValueError, "3 values"),
        (lambda: native.layer_norm(rand(3, 4), rand(3)), ValueError, "Scale has 3 values"),
        (
            lambda: native.conv2d(
                rand(1, 3, 5, 5), rand(2, 2, 3, 3), pads=[0] * 4, strides=[1, 1], dilations=[1, 1]
            ),
            ValueError,
            "do not agree",
        ),
        (
            lambda: native.conv2d(
                rand(1, 3, 2, 2), rand(2, 3, 3, 3), pads=[0] * 4, strides=[1, 1], dilations=[1, 1]
            ),
            ValueError,
            "does not fit",
        ),
        (
            lambda: native.conv2d(
                rand(1, 3, 5, 5), rand(2, 3, 3, 3), pads=[0] * 3, strides=[1, 1], dilations=[1, 1]
            ),
            ValueError,
            "pads must have 4",
        ),
        (
            lambda: native.conv2d(
                rand(1, 3, 5, 5), rand(2, 3, 3, 3), pads=[0] * 4, strides=[0, 1], dilations=[1, 1]
            ),
            ValueError,
            "strides must be >= 1",
        ),
        (
            lambda: native.conv2d(
                rand(1, 3, 5, 5),
                rand(2, 3, 3, 3),
                rand(3),
                pads=[0] * 4,
                strides=[1, 1],
                dilations=[1, 1],
            ),
            ValueError,
            "B must have shape",
        ),
        (
            lambda: native.max_pool2d(
                rand(1, 1, 4, 4), kernel=[2, 2], pads=[2, 0, 0, 0], strides=[1, 1], dilations=[1, 1]
            ),
            ValueError,
            "smaller than the kernel",
        ),
        (
            lambda: native.avg_pool2d(
                rand(4, 4), kernel=[2, 2], pads=[0] * 4, strides=[1, 1], dilations=[1, 1]
            ),
            ValueError,
            "4-D",
        ),
    ],
)
def test_bad_arguments_raise_before_running(call, error, match):
    with pytest.raises(error, match=match):
        call()
