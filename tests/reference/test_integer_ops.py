"""Integer convolutions and matrix products (ConvInteger, MatMulInteger, QLinearConv,
QLinearMatMul) against onnxruntime, on random geometry, with constant and fed weights."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import check

pytest.importorskip("onnxruntime", reason="the integer kernels are compared with onnxruntime")


def _bytes(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


def _conv_geometry(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...], dict]:
    group = int(rng.integers(1, 3))
    kernel = [int(k) for k in rng.integers(1, 4, 2)]
    x_shape = (int(rng.integers(1, 3)), 3 * group, *map(int, rng.integers(6, 12, 2)))
    w_shape = (2 * group, 3, *kernel)
    attrs = {
        "group": group,
        "strides": [int(s) for s in rng.integers(1, 3, 2)],
        "pads": [int(rng.integers(0, k)) for k in kernel * 2],
    }
    return x_shape, w_shape, attrs


@pytest.mark.parametrize("seed", range(8))
def test_qlinear_conv_matches_onnxruntime(seed):
    rng = np.random.default_rng(seed)
    x_shape, w_shape, attrs = _conv_geometry(rng)
    x_type = (np.uint8, np.int8)[seed % 2]
    channels = w_shape[0]
    per_channel = seed % 4 >= 2
    inputs = {
        "x": _bytes(rng, x_shape, x_type),
        "x_scale": np.float32(rng.uniform(0.01, 0.05)),
        "x_zero_point": x_type(rng.integers(0, 20)),
        "w": _bytes(rng, w_shape, np.int8),
        "w_scale": rng.uniform(0.005, 0.02, channels if per_channel else ()).astype(np.float32),
        "w_zero_point": np.zeros(channels if per_channel else (), np.int8),
        "y_scale": np.float32(rng.uniform(0.05, 0.2)),
        "y_zero_point": x_type(rng.integers(0, 20)),
        "B": rng.integers(-2000, 2000, channels).astype(np.int32),
    }
    weights = ["w", "w_scale", "w_zero_point", "B"] if seed < 6 else []
    check("QLinearConv", inputs, 10, oracle="ort", rtol=0, atol=0, constants=weights, **attrs)


@pytest.mark.parametrize("seed", range(6))
def test_conv_integer_is_exact(seed):
    rng = np.random.default_rng(seed)
    x_shape, w_shape, attrs = _conv_geometry(rng)
    w_type = (np.uint8, np.int8)[seed % 2]
    inputs = {
        "x": _bytes(rng, x_shape, np.uint8),
        "w": _bytes(rng, w_shape, w_type),
        "x_zero_point": np.uint8(rng.integers(0, 255)),
        "w_zero_point": w_type(rng.integers(0, 100)),
    }
    check("ConvInteger", inputs, 10, oracle="ort", rtol=0, atol=0, constants=["w"], **attrs)


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("constant", [False, True])
def test_matmul_integer_is_exact(batched, constant):
    rng = np.random.default_rng(int(batched) + 2 * int(constant))
    a_shape = (2, 5, 70) if batched else (5, 70)
    inputs = {
        "A": _bytes(rng, a_shape, np.uint8),
        "B": _bytes(rng, (70, 9), np.int8),
        "a_zero_point": np.uint8(rng.integers(0, 255)),
        "b_zero_point": np.int8(rng.integers(-100, 100)),
    }
    check(
        "MatMulInteger", inputs, 10, oracle="ort", rtol=0, atol=0,
        constants=["B", "b_zero_point"] if constant else [],
    )  # fmt: skip


@pytest.mark.parametrize("opset", [10, 21])
@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_matmul_matches_onnxruntime(opset, per_column, dtype):
    rng = np.random.default_rng(opset + int(per_column))
    columns = 11
    inputs = {
        "a": _bytes(rng, (3, 4, 40), dtype),
        "a_scale": np.float32(0.02),
        "a_zero_point": dtype(rng.integers(0, 20)),
        "b": _bytes(rng, (40, columns), dtype),
        "b_scale": rng.uniform(0.005, 0.02, columns if per_column else ()).astype(np.float32),
        "b_zero_point": np.zeros(columns if per_column else (), dtype),
        "y_scale": np.float32(0.3),
        "y_zero_point": dtype(rng.integers(0, 20)),
    }
    constants = ["b", "b_scale", "b_zero_point"]
    check("QLinearMatMul", inputs, opset, oracle="ort", rtol=0, atol=0, constants=constants)
