"""Integer convolutions and matrix products: ConvInteger, MatMulInteger, QLinearConv and
QLinearMatMul on int8/uint8, as ``onnxruntime.quantization`` writes them.

The int32 accumulations are computed exactly in float64 through the float paths
(:func:`conv_ops.conv`'s im2col and ``np.matmul``, both BLAS): every product of two 8-bit
values less their zero points, and every sum of them, is an integer far below 2**53. That
is tens of times faster than onnx's reference ops, which loop in numpy's integer matmul.
Constant weights are converted once, when the plan is built.

QLinearConv and QLinearMatMul then requantize as onnxruntime's CPU kernels do (MLAS
``RequantizeOutput``): the accumulation (with QLinearConv's int32 bias) converted to
float32, times the float32 factor ``x_scale * w_scale / y_scale``, clamped, rounded half to
even, and shifted by ``y_zero_point``. onnx's reference op computes that product in float64
instead, which can round a tie the other way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import factory, input_dtypes
from onnxep.reference._registry import kernels
from onnxep.reference.conv_ops import conv
from onnxep.reference.quant_ops import output_dtype, per_axis

__all__: list[str] = []

_BYTES = ("int8", "uint8")
_SCALE = ("float32",)
#: QLinearConv and QLinearMatMul: 8-bit data and zero points, float32 scales.
_QLINEAR_TYPES = {f"i{i}": _SCALE if i in (1, 4, 6) else _BYTES for i in range(8)}
_CONV_DEFAULTS: dict[str, Any] = {
    "auto_pad": "NOTSET",
    "dilations": None,
    "group": 1,
    "kernel_shape": None,
    "pads": None,
    "strides": None,
}


def _centred(x: Any, zero_point: Any, axis: int) -> np.ndarray:
    """``x - zero_point`` as float64 (exact); the zero point is a scalar or 1-D along
    ``axis``."""
    centred = np.asarray(x).astype(np.float64)
    if zero_point is not None:
        centred -= per_axis(zero_point, centred.ndim, axis).astype(np.float64)
    return centred


def _fixed_operand(info: NodeInfo, value: int, zero_point: int, axis: int) -> Callable:
    """``(v, zp) -> _centred(v, zp, axis)``, computed once when input ``value`` and its zero
    point (or its absence) are constants."""
    names = info.node.inputs
    has_point = zero_point < len(names) and bool(names[zero_point])
    weights = info.constant(value)
    point = info.constant(zero_point) if has_point else None
    if weights is None or (has_point and point is None):
        return lambda v, zp: _centred(v, zp, axis)
    fixed = _centred(weights, point, axis)
    return lambda v, zp: fixed


def _factor(*scales: Any, rank: int, axes: tuple[int, int, int]) -> np.ndarray:
    """``a_scale * b_scale / y_scale`` in float32, each scale broadcast along its axis."""
    a, b, y = (per_axis(np.asarray(s, np.float32), rank, ax) for s, ax in zip(scales, axes))
    return a * b / y


def _requantized(acc: np.ndarray, factor: np.ndarray, zero_point: Any, dtype: Any) -> Any:
    """``saturate(round_half_even(float32(acc) * factor) + zero_point)`` as ``dtype``."""
    dtype = np.dtype(dtype)
    bounds = np.iinfo(dtype)
    point = np.int32(0) if zero_point is None else np.asarray(zero_point).astype(np.int32)
    scaled = acc.astype(np.float32) * factor
    np.clip(scaled, bounds.min - point, bounds.max - point, out=scaled)
    np.rint(scaled, out=scaled)
    return (scaled.astype(np.int32) + point).astype(dtype)


# --- convolutions ---------------------------------------------------------------------------
@kernels.register(
    "ConvInteger",
    versions=(10,),
    dtypes=_BYTES,
    factory=True,
    fresh_output=True,
)
@factory(**_CONV_DEFAULTS)
def conv_integer(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., Any]:
    """int32 convolution of ``x - x_zero_point`` by ``w - w_zero_point`` (per output channel)."""
    weights = _fixed_operand(info, 1, 3, axis=0)

    def run(x: Any, w: Any, x_zero_point: Any = None, w_zero_point: Any = None) -> Any:
        acc = conv(_centred(x, x_zero_point, 1), weights(w, w_zero_point), **attrs)
        return acc.astype(np.int32)

    return run


@kernels.register(
    "QLinearConv",
    versions=(10,),
    factory=True,
    fresh_output=True,
    check=input_dtypes(**_QLINEAR_TYPES, i8=("int32",)),
)
@factory(**_CONV_DEFAULTS)
def qlinear_conv(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., Any]:
    """Quantized convolution with an int32 bias, requantized to ``y_scale``/``y_zero_point``."""
    weights = _fixed_operand(info, 3, 5, axis=0)

    def run(
        x: Any, x_scale: Any, x_zero_point: Any, w: Any, w_scale: Any, w_zero_point: Any,
        y_scale: Any, y_zero_point: Any = None, B: Any = None,
    ) -> Any:  # fmt: skip
        bias = None if B is None else np.asarray(B).astype(np.float64)
        acc = conv(_centred(x, x_zero_point, 1), weights(w, w_zero_point), bias, **attrs)
        factor = _factor(x_scale, w_scale, y_scale, rank=acc.ndim, axes=(1, 1, 1))
        point = None if y_zero_point is None else per_axis(y_zero_point, acc.ndim, 1)
        return _requantized(acc, factor, point, output_dtype(y_zero_point, np.asarray(x).dtype))

    return run


# --- matrix products ------------------------------------------------------------------------
def _matmul_centred(a: Any, a_zero_point: Any, b: np.ndarray) -> np.ndarray:
    """``(a - a_zero_point) @ b`` in float64, ``a``'s zero point scalar or one per row."""
    return np.matmul(_centred(a, a_zero_point, -2), b)


@kernels.register(
    "MatMulInteger",
    versions=(10,),
    dtypes=_BYTES,
    factory=True,
    fresh_output=True,
)
@factory()
def matmul_integer(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., Any]:
    """int32 product of ``A - a_zero_point`` (per row) and ``B - b_zero_point`` (per column)."""
    right = _fixed_operand(info, 1, 3, axis=-1)

    def run(A: Any, B: Any, a_zero_point: Any = None, b_zero_point: Any = None) -> Any:
        return _matmul_centred(A, a_zero_point, right(B, b_zero_point)).astype(np.int32)

    return run


@kernels.register(
    "QLinearMatMul",
    versions=(10, 21),
    factory=True,
    fresh_output=True,
    check=input_dtypes(**_QLINEAR_TYPES),
)
@factory()
def qlinear_matmul(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., Any]:
    """Quantized matrix product requantized to ``y_scale``/``y_zero_point`` (per column)."""
    right = _fixed_operand(info, 3, 5, axis=-1)

    def run(
        a: Any, a_scale: Any, a_zero_point: Any, b: Any, b_scale: Any, b_zero_point: Any,
        y_scale: Any, y_zero_point: Any = None,
    ) -> Any:  # fmt: skip
        acc = _matmul_centred(a, a_zero_point, right(b, b_zero_point))
        factor = _factor(a_scale, b_scale, y_scale, rank=acc.ndim, axes=(-2, -1, -1))
        point = None if y_zero_point is None else per_axis(y_zero_point, acc.ndim, -1)
        return _requantized(acc, factor, point, output_dtype(y_zero_point, np.asarray(a).dtype))

    return run
