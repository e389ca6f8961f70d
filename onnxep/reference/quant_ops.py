"""QuantizeLinear and DequantizeLinear of every opset, per tensor and per axis, for the 8-
and 16-bit integer types: the pairs of QDQ models (``onnxruntime.quantization``'s default
format) run several per layer, so they are hand-written rather than onnx's reference ops
(which also lack DequantizeLinear before version 19). Blocked quantisation (``block_size``),
float8/4-bit types and ``precision`` are declined and run on onnx's ops.

Semantics from the ONNX operator spec: ``y = (x - x_zero_point) * x_scale``, the difference
taken in int32 before the conversion to float, as onnxruntime does; and ``y =
saturate(round_half_even(x / y_scale) + y_zero_point)``, with the division in float32 (in
x's own float type when that is wider).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from onnxep.graph import NodeInfo
from onnxep.reference._common import factory
from onnxep.reference._registry import kernels

__all__: list[str] = []


def per_axis(param: Any, ndim: int, axis: int) -> np.ndarray:
    """A scale or zero point shaped to broadcast against a rank-``ndim`` tensor.

    A scalar or one-element 1-D tensor applies to the whole tensor (onnxruntime's rule);
    a longer 1-D tensor applies along ``axis``.
    """
    param = np.asarray(param)
    if param.size == 1:
        return param.reshape(())
    shape = [1] * ndim
    shape[axis + ndim if axis < 0 else axis] = param.size
    return param.reshape(shape)


def output_dtype(zero_point: Any, fallback: np.dtype) -> np.dtype:
    """A quantized output's element type: its zero point's, else ``fallback``."""
    return np.asarray(zero_point).dtype if zero_point is not None else fallback


_VERSIONS = (10, 13, 19, 21, 23, 24, 25, 28)
_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535)}
_DQ_TYPES = ("int8", "uint8", "int16", "uint16", "int32", "float32")  # x, and a float32 scale


def _unblocked(info: NodeInfo) -> str | None:
    if info.attrs.get("block_size", 0):
        return "blocked quantisation (block_size) runs on onnx's op"
    if info.attrs.get("precision", 0):
        return "the precision attribute runs on onnx's op"
    return None


def _dequantized_to_float32(info: NodeInfo) -> str | None:
    reason = _unblocked(info)
    if reason is None and info.attrs.get("output_dtype", 0) not in (0, onnx.TensorProto.FLOAT):
        reason = "output_dtype other than float runs on onnx's op"
    return reason


@kernels.register(
    "DequantizeLinear", versions=_VERSIONS, dtypes=_DQ_TYPES, check=_dequantized_to_float32
)
def dequantize_linear(
    x: Any,
    x_scale: Any,
    x_zero_point: Any = None,
    *,
    axis: int = 1,
    block_size: int = 0,
    output_dtype: int = 0,
) -> Any:
    """``(x - x_zero_point) * x_scale`` in float32 (version 10 has no ``axis``: per-tensor)."""
    x = np.asarray(x)
    scale = per_axis(x_scale, x.ndim, axis)
    if x_zero_point is None:
        shifted = x.astype(np.int32)
    else:
        shifted = x.astype(np.int32) - per_axis(x_zero_point, x.ndim, axis).astype(np.int32)
    return (shifted.astype(np.float32) * scale).astype(np.float32, copy=False)


def _quantized_name(info: NodeInfo) -> str:
    """The output's numpy type name: the zero point's, else ``output_dtype``, else uint8."""
    if len(info.node.inputs) > 2 and info.node.inputs[2]:
        dtype = info.input_type(2).dtype
        return dtype.name if dtype is not None else "unknown"
    elem = info.attrs.get("output_dtype", 0) or onnx.TensorProto.UINT8
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem)).name


def _quantizable(info: NodeInfo) -> str | None:
    reason = _unblocked(info)
    if reason is None and _quantized_name(info) not in _RANGES:
        reason = f"{_quantized_name(info)} output runs on onnx's op"
    return reason


@kernels.register(
    "QuantizeLinear",
    versions=_VERSIONS,
    dtypes=("float32", "float64", "float16", *_RANGES),
    check=_quantizable,
    factory=True,
    fresh_output=True,
)
@factory(axis=1, saturate=1, block_size=0, output_dtype=0, precision=0)
def quantize_linear(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., np.ndarray]:
    """``saturate(round_half_even(x / y_scale) + y_zero_point)``, per tensor or per axis."""
    dtype = np.dtype(_quantized_name(info))
    low, high = _RANGES[dtype.name]
    axis = attrs["axis"]

    def run(x: Any, y_scale: Any, y_zero_point: Any = None) -> np.ndarray:
        x = np.asarray(x)
        work = np.result_type(x.dtype, np.float32)
        q = np.divide(x, per_axis(y_scale, x.ndim, axis), dtype=work)
        np.rint(q, out=q)
        if y_zero_point is not None:
            q += per_axis(y_zero_point, x.ndim, axis)
        np.clip(q, low, high, out=q)
        return q.astype(dtype)

    return run
