"""Neural-network kernels of the numba provider (Conv, pools, normalizations, Resize, Pad,
MatMul/Gemm) against onnx's ReferenceEvaluator, or onnxruntime where the evaluator is wrong.

Every test asserts that the numba provider ran the nodes.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import numpy as np
import pytest
from onnx import helper as oh

import onnxep

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_numba_ops import F32, RNG, make_model, ort_run, run_numba

CONVS = [
    ({}, (1, 3, 9, 11), (4, 3, 3, 3)),
    ({"pads": [1, 0, 2, 1], "strides": [2, 1]}, (2, 4, 10, 7), (6, 4, 3, 2)),
    ({"group": 2, "dilations": [2, 1], "auto_pad": "SAME_UPPER"}, (1, 4, 9, 9), (6, 2, 3, 3)),
    ({"group": 5, "pads": [1, 1, 1, 1], "strides": [2, 2]}, (1, 5, 8, 8), (10, 1, 3, 3)),
    ({"auto_pad": "SAME_LOWER", "strides": [2, 2]}, (1, 3, 13, 13), (2, 3, 3, 3)),
    ({}, (2, 6, 5, 5), (3, 6, 1, 1)),
    ({"pads": [1, 2], "strides": [2]}, (1, 3, 13), (2, 3, 3)),
]


def _conv_model(nodes: list, x_shape: Any, w_shape: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """A model of ``nodes`` reading x, w, b (output y) and random feeds for it."""
    inputs = {"x": (F32, list(x_shape)), "w": (F32, list(w_shape)), "b": (F32, [w_shape[0]])}
    model = make_model(nodes, inputs, ["y"], opset=13)
    feeds = {
        "x": RNG.standard_normal(x_shape).astype(np.float32),
        "w": RNG.standard_normal(w_shape).astype(np.float32),
        "b": RNG.standard_normal(w_shape[0]).astype(np.float32),
    }
    return model, feeds


@pytest.mark.parametrize(("attrs", "x_shape", "w_shape"), CONVS)
def test_conv(attrs: dict[str, Any], x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> None:
    conv = oh.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    model, feeds = _conv_model([conv], x_shape, w_shape)
    run_numba(model, feeds, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(16))
def test_gemm_conv_random_geometry(seed: int) -> None:
    """im2col + GEMM convs with random groups, kernels, strides, dilations and uneven pads
    (the padded copy and the tile split across threads, which can start mid-row), against
    ORT."""
    rng = np.random.default_rng(100 + seed)
    k = [int(v) for v in rng.integers(1, 6, 2)]
    group = int(rng.choice([1, 1, 2, 3]))
    attrs = {
        "group": group,
        "strides": [int(v) for v in rng.integers(1, 4, 2)],
        "dilations": [int(v) for v in rng.integers(1, 3, 2)],
        "pads": [int(rng.integers(0, k[i % 2] + 1)) for i in range(4)],
    }
    side = int(rng.integers(k[0] * 2 + 3, 40))
    x_shape = [int(rng.integers(1, 3)), group * int(rng.integers(1, 9)), side, side + 3]
    w_shape = [group * int(rng.integers(1, 7)), x_shape[1] // group, *k]
    nodes = [
        oh.make_node("Conv", ["x", "w", "b"], ["c"], **attrs),
        oh.make_node("Relu", ["c"], ["y"]),
    ]
    model, feeds = _conv_model(nodes, x_shape, w_shape)
    run_numba(model, feeds, ort_run(model, feeds), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("layout", ["planes", "channels_last"])
def test_depthwise_conv_random_geometry(seed: int, layout: str) -> None:
    """Depthwise convs (both kernels: per plane, and channels-last for many channels on small
    planes) with random kernels, strides, dilations, pads and a fused Relu, against ORT."""
    rng = np.random.default_rng(seed)
    k = [int(v) for v in rng.integers(1, 6, 2)]
    attrs = {
        "group": 0,
        "kernel_shape": k,
        "strides": [int(v) for v in rng.integers(1, 4, 2)],
        "dilations": [int(v) for v in rng.integers(1, 3, 2)],
        "pads": [int(rng.integers(0, k[i % 2])) for i in range(4)],
    }
    side = int(rng.integers(k[0] * 2 + 4, 24))
    channels = 64 * side if layout == "channels_last" else int(rng.integers(1, 9))
    mult = 1 if layout == "channels_last" else int(rng.integers(1, 3))
    attrs["group"] = channels
    x_shape = [int(rng.integers(1, 3)), channels, side, side + int(rng.integers(0, 3))]
    w_shape = [channels * mult, 1, *k]
    nodes = [
        oh.make_node("Conv", ["x", "w", "b"], ["c"], **attrs),
        oh.make_node("Relu", ["c"], ["y"]),
    ]
    model, feeds = _conv_model(nodes, x_shape, w_shape)
    run_numba(model, feeds, ort_run(model, feeds), rtol=1e-4, atol=1e-4)


POOLS = [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("MaxPool", {"kernel_shape": [2, 3], "ceil_mode": 1, "strides": [2, 2]}),
    ("MaxPool", {"kernel_shape": [2, 2], "dilations": [2, 2], "auto_pad": "SAME_UPPER"}),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ("AveragePool", {"kernel_shape": [3], "strides": [2]}),
    ("GlobalAveragePool", {}),
    ("GlobalMaxPool", {}),
]


@pytest.mark.parametrize(("op", "attrs"), POOLS)
def test_pool(op: str, attrs: dict[str, Any]) -> None:
    shape = [2, 3, 11] if attrs.get("kernel_shape") == [3] else [2, 3, 11, 10]
    model = make_model([oh.make_node(op, ["x"], ["y"], **attrs)], {"x": (F32, shape)}, ["y"], 19)
    run_numba(model, {"x": RNG.standard_normal(shape).astype(np.float32)})


def _random_pool(rng: np.random.Generator) -> tuple[str, dict[str, Any], list[int]]:
    op = "MaxPool" if rng.random() < 0.5 else "AveragePool"
    kernel = [int(k) for k in rng.integers(1, 5, 2)]
    attrs: dict[str, Any] = {
        "kernel_shape": kernel,
        "strides": [int(s) for s in rng.integers(1, 4, 2)],
        "dilations": [int(d) for d in rng.integers(1, 3, 2)],
    }
    if rng.random() < 0.25:  # with dilations or ceil_mode the spec is ambiguous: not mixed
        attrs["auto_pad"] = "SAME_UPPER" if rng.random() < 0.5 else "SAME_LOWER"
        attrs["dilations"] = [1, 1]
    else:
        attrs["pads"] = [int(min(p, k - 1)) for p, k in zip(rng.integers(0, 3, 4), kernel * 2)]
        attrs["ceil_mode"] = int(rng.random() < 0.5)
    if op == "AveragePool":
        attrs["count_include_pad"] = int(rng.random() < 0.5)
    shape = [1, int(rng.integers(1, 5)), int(rng.integers(8, 20)), int(rng.integers(8, 20))]
    return op, attrs, shape


@pytest.mark.parametrize("seed", range(24))
def test_pool_random_geometry_matches_reference(seed: int) -> None:
    """Strides, dilations, pads, ceil_mode, auto_pad and count_include_pad in random mixes,
    against the reference provider (itself checked by the ONNX conformance cases)."""
    op, attrs, shape = _random_pool(np.random.default_rng(seed))
    model = make_model([oh.make_node(op, ["x"], ["y"], **attrs)], {"x": (F32, shape)}, ["y"], 19)
    x = RNG.standard_normal(shape).astype(np.float32)
    if seed % 3 == 0:
        x.reshape(-1)[::13] = np.nan  # a NaN in a window wins a max and spoils a sum
    expected = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"]).run(
        None, {"x": x}
    )
    run_numba(model, {"x": x}, expected, rtol=1e-5, atol=1e-6)


def test_norms_and_softmax() -> None:
    nodes = [
        oh.make_node("LayerNormalization", ["x", "g", "beta"], ["ln"], epsilon=1e-3),
        oh.make_node("LayerNormalization", ["x", "g2"], ["ln2", "mean", "inv"], axis=1),
        oh.make_node("Softmax", ["x"], ["sm"]),
        oh.make_node("Softmax", ["x"], ["sm1"], axis=1),
    ]
    model = make_model(
        nodes,
        {"x": (F32, [2, 3, 6])},
        ["ln", "ln2", "mean", "inv", "sm", "sm1"],
        initializers={
            "g": RNG.random(6).astype(np.float32),
            "beta": RNG.random(6).astype(np.float32),
            "g2": RNG.random((3, 6)).astype(np.float32),
        },
    )
    feeds = {"x": RNG.standard_normal((2, 3, 6)).astype(np.float32) * 5}
    run_numba(model, feeds, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("size", "beta", "shape"),
    [(3, 0.6, (2, 5, 3, 2)), (5, 0.6, (2, 5, 3, 2)), (5, 0.75, (1, 7, 30, 41))],
)  # onnxruntime takes odd sizes only; beta 0.75 has its own path; 1230 positions: 3 chunks
def test_lrn_against_onnxruntime(size: int, beta: float, shape: tuple[int, ...]) -> None:
    """onnx's LRN loops over the batch dim instead of the channels: onnxruntime is the oracle."""
    node = oh.make_node("LRN", ["x"], ["y"], size=size, alpha=0.01, beta=beta, bias=2.0)
    model = make_model([node], {"x": (F32, list(shape))}, ["y"], 13)
    feeds = {"x": RNG.standard_normal(shape).astype(np.float32)}
    run_numba(model, feeds, ort_run(model, feeds), rtol=1e-5, atol=1e-6)


def test_batch_normalization_with_runtime_statistics() -> None:
    """BN whose statistics are inputs (no folding): onnx's evaluator is wrong for BN-9..13,
    so the expected values are the formula's."""
    node = oh.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)
    c = 4
    model = make_model(
        [node], {"x": (F32, [2, c, 3, 5]), **{k: (F32, [c]) for k in "sbmv"}}, ["y"], opset=15
    )
    feeds = {k: RNG.random(c).astype(np.float32) + 0.5 for k in "sbmv"}
    feeds["x"] = RNG.standard_normal((2, c, 3, 5)).astype(np.float32)
    r = (slice(None), None, None)
    want = (feeds["x"] - feeds["m"][r]) / np.sqrt(feeds["v"][r] + 1e-3) * feeds["s"][r] + feeds[
        "b"
    ][r]
    run_numba(model, feeds, expected=[want.astype(np.float32)], rtol=1e-5, atol=1e-5)


RESIZES = [
    ({"mode": "nearest"}, [1, 1, 2.0, 1.5]),
    (
        {
            "mode": "nearest",
            "coordinate_transformation_mode": "asymmetric",
            "nearest_mode": "floor",
        },
        [1, 1, 0.6, 2.0],
    ),
    ({"mode": "linear"}, [1, 1, 1.7, 0.5]),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 2.0, 3.0]),
    ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, [1, 1, 0.4, 2.5]),
]


@pytest.mark.parametrize(("attrs", "scales"), RESIZES)
def test_resize(attrs: dict[str, Any], scales: list[float]) -> None:
    node = oh.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)
    model = make_model(
        [node], {"x": (F32, [1, 2, 5, 4])}, ["y"], 19, {"scales": np.array(scales, np.float32)}
    )
    run_numba(
        model, {"x": RNG.standard_normal((1, 2, 5, 4)).astype(np.float32)}, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad(mode: str) -> None:
    node = oh.make_node("Pad", ["x", "pads", "value"], ["y"], mode=mode)
    model = make_model(
        [node],
        {"x": (F32, [3, 4])},
        ["y"],
        19,
        {"pads": np.array([1, 3, 2, 2], np.int64), "value": np.float32(1.5)},
    )
    run_numba(model, {"x": RNG.standard_normal((3, 4)).astype(np.float32)})


def test_pad_negative_and_axes_against_onnxruntime() -> None:
    """Cropping pads (numpy's pad, under onnx's evaluator, refuses them) and the axes input."""
    node = oh.make_node("Pad", ["x", "pads", "", "axes"], ["y"], mode="reflect")
    model = make_model(
        [node],
        {"x": (F32, [3, 4, 5])},
        ["y"],
        19,
        {"pads": np.array([2, -1, 1, 3], np.int64), "axes": np.array([0, -1], np.int64)},
    )
    feeds = {"x": RNG.standard_normal((3, 4, 5)).astype(np.float32)}
    run_numba(model, feeds, ort_run(model, feeds))


def test_matmul_and_gemm() -> None:
    nodes = [
        oh.make_node("MatMul", ["a", "b"], ["ab"]),
        oh.make_node("MatMul", ["v", "b2"], ["vb"]),
        oh.make_node("Gemm", ["m", "n", "c"], ["g"], alpha=0.5, beta=2.0, transA=1, transB=1),
        oh.make_node("Gemm", ["m2", "n2"], ["g2"]),
    ]
    model = make_model(
        nodes,
        {
            "a": (F32, [2, 1, 4, 5]),
            "b": (F32, [3, 5, 6]),
            "v": (F32, [5]),
            "b2": (F32, [5, 2]),
            "m": (F32, [5, 3]),
            "n": (F32, [4, 5]),
            "c": (F32, [4]),
            "m2": (F32, [3, 5]),
            "n2": (F32, [5, 4]),
        },
        ["ab", "vb", "g", "g2"],
    )
    feeds = {
        i.name: RNG.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(
            np.float32
        )
        for i in model.graph.input
    }
    run_numba(model, feeds, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("m", "n", "k"), [(1, 300, 70), (1, 7, 3), (90, 1, 40), (1, 1, 5)])
@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_matrix_vector_products(m: int, n: int, k: int, trans_a: int, trans_b: int) -> None:
    """One row or one column (a classifier head at batch 1) goes to BLAS's GEMV, split over
    threads by output block: every layout of the operands and alpha/beta."""
    nodes = [
        oh.make_node(
            "Gemm", ["a", "b", "c"], ["y"], alpha=0.5, beta=2.0, transA=trans_a, transB=trans_b
        ),
        oh.make_node("MatMul", ["a2", "b2"], ["p"]),
    ]
    model = make_model(
        nodes,
        {
            "a": (F32, [k, m] if trans_a else [m, k]),
            "b": (F32, [n, k] if trans_b else [k, n]),
            "c": (F32, [n]),
            "a2": (F32, [m, k]),
            "b2": (F32, [k, n]),
        },
        ["y", "p"],
    )
    feeds = {
        i.name: RNG.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(
            np.float32
        )
        for i in model.graph.input
    }
    run_numba(model, feeds, rtol=1e-4, atol=1e-4)
