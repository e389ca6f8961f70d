"""QuantizeLinear and DequantizeLinear, hand-written, against onnxruntime: per tensor and per
axis, each 8- and 16-bit type, ties (half to even), saturation, every opset."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import check, make_model, run_onnxep

pytest.importorskip("onnxruntime", reason="the quantisation kernels are compared with onnxruntime")

_ZERO = {"uint8": 128, "int8": -3, "uint16": 30000, "int16": -100}


def _data(seed: int, shape: tuple[int, ...] = (2, 3, 5, 4)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 40, shape).astype(np.float32)
    x.flat[:6] = [0.5, 1.5, 2.5, -0.5, -1.5, 6e4]  # ties round to even; far out saturates
    return x


_8_BIT = [(o, t) for o in (10, 13, 19, 21) for t in ("uint8", "int8")]


@pytest.mark.parametrize(("opset", "dtype"), [*_8_BIT, (21, "uint16"), (21, "int16")])
def test_quantize_per_tensor(opset: int, dtype: str) -> None:
    inputs = {"x": _data(opset), "s": np.float32(1.0), "z": np.array(_ZERO[dtype], dtype)}
    (q,) = check("QuantizeLinear", inputs, opset, oracle="ort", rtol=0, atol=0)
    assert q.dtype == np.dtype(dtype)


@pytest.mark.parametrize("axis", [1, -1, 0])
def test_quantize_and_dequantize_per_axis(axis: int) -> None:
    x = _data(7)
    channels = x.shape[axis]
    scale = np.linspace(0.05, 2.0, channels).astype(np.float32)
    zero = np.arange(channels).astype(np.int8) - 2
    inputs = {"x": x, "s": scale, "z": zero}
    (q,) = check("QuantizeLinear", inputs, 13, oracle="ort", rtol=0, atol=0, axis=axis)
    check("DequantizeLinear", {"q": q, "s": scale, "z": zero}, 13, oracle="ort", axis=axis)


def test_quantize_without_zero_point_gives_uint8_or_output_dtype() -> None:
    (q,) = check("QuantizeLinear", {"x": _data(3), "s": np.float32(0.5)}, 13, oracle="ort")
    assert q.dtype == np.uint8
    model = make_model(
        "QuantizeLinear", {"x": _data(3), "s": np.float32(0.5)}, 21, output_dtype=3
    )  # INT8
    (q8,) = run_onnxep(model, {"x": _data(3), "s": np.float32(0.5)})
    assert q8.dtype == np.int8 and q8.min() == -128


def test_dequantize_16_bit_and_int32() -> None:
    rng = np.random.default_rng(0)
    for dtype in ("uint16", "int16", "int32"):
        q = rng.integers(-1000 if dtype != "uint16" else 0, 60000 if dtype == "uint16" else 1000,
                         (4, 6)).astype(dtype)  # fmt: skip
        zero = None if dtype == "int32" else np.array(_ZERO.get(dtype, 0), dtype)
        check("DequantizeLinear", {"q": q, "s": np.float32(0.25), "z": zero}, 21, oracle="ort")


def test_float16_input_quantizes_in_float32() -> None:
    x = _data(5).astype(np.float16)
    inputs = {"x": x, "s": np.float16(0.75), "z": np.array(3, np.uint8)}
    check("QuantizeLinear", inputs, 19, oracle="ort", rtol=0, atol=0)
