"""Quantisation kernels onnx's reference ops lack: DequantizeLinear-10 and -13.

onnx ships ``DequantizeLinear`` implementations from version 19 on only, so models quantised
by ``onnxruntime.quantization`` at opsets 10..18 (QDQ pairs, ``quantize_dynamic`` embedding
weights) had no kernel. Semantics from the ONNX operator spec: ``y = (x - x_zero_point) *
x_scale`` with a scalar (per-tensor) or 1-D (per-axis, version 13) scale. The difference is
taken in int32 before the conversion to float, as onnxruntime does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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


_DQ_TYPES = ("int8", "uint8", "int32", "float32")  # x, and the float32 scale


@kernels.register("DequantizeLinear", versions=(10, 13), dtypes=_DQ_TYPES)
def dequantize_linear(x: Any, x_scale: Any, x_zero_point: Any = None, *, axis: int = 1) -> Any:
    """``(x - x_zero_point) * x_scale`` in float32 (version 10 has no ``axis``: per-tensor)."""
    x = np.asarray(x)
    scale = per_axis(x_scale, x.ndim, axis)
    if x_zero_point is None:
        shifted = x.astype(np.int32)
    else:
        shifted = x.astype(np.int32) - per_axis(x_zero_point, x.ndim, axis).astype(np.int32)
    return (shifted.astype(np.float32) * scale).astype(np.float32, copy=False)
