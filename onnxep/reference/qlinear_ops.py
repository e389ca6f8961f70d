"""onnxruntime's QOperator contrib ops (domain ``com.microsoft``): QLinearAdd, QLinearMul,
QLinearSigmoid, QLinearLeakyRelu, QLinearGlobalAveragePool, QLinearConcat, QLinearSoftmax and
QGemm (QLinearReduceMean, which onnxruntime's CPU provider cannot run either, is left out),
and ``quantize_dynamic``'s DynamicQuantizeLSTM.

``onnxruntime.quantization.quantize_static(..., quant_format=QuantFormat.QOperator)`` (the
format of most int8 models in the wild, ONNX Model Zoo's ``*-int8`` among them) writes these
next to the standard QLinearConv and QLinearMatMul: a ResNet holds QLinearAdd and
QLinearGlobalAveragePool, a MobileNet with SE blocks QLinearMul, QLinearSigmoid and
QLinearSoftmax, a YOLO head QLinearConcat. Each is "dequantize, the float op, quantize":

- dequantize: ``(x - zero_point) * scale`` in float32;
- quantize: ``saturate(round_half_to_even(y / scale) + zero_point)``, as ``QuantizeLinear``.

Sources: onnxruntime's contrib schemas (``docs/ContribOperators.md``) and its CPU kernels
(``contrib_ops/cpu/quantization``, ``core/mlas/lib/qladd.cpp``). onnxruntime's vectorised
paths use fixed-point multipliers and lookup tables, so an output can differ from these
float computations by one quantisation step; the unary ops (Sigmoid, LeakyRelu) go through a
256-entry table built the same way as onnxruntime's, and match it exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import factory
from onnxep.reference._registry import kernels
from onnxep.reference.math_ops import sigmoid
from onnxep.reference.quant_ops import output_dtype, per_axis
from onnxep.reference.rnn_ops import make_lstm

__all__: list[str] = []

MS = "com.microsoft"


def _dequantize(x: Any, scale: Any, zero_point: Any, axis: int = 1) -> np.ndarray:
    """``(x - zero_point) * scale`` in float32; a missing zero point is 0."""
    x = np.asarray(x)
    shifted = x.astype(np.int32)
    if zero_point is not None:
        shifted = shifted - per_axis(zero_point, x.ndim, axis).astype(np.int32)
    return shifted.astype(np.float32) * per_axis(scale, x.ndim, axis).astype(np.float32)


def _quantize(y: np.ndarray, scale: Any, zero_point: Any, dtype: np.dtype) -> np.ndarray:
    """``saturate(rint(y / scale) + zero_point)`` as ``dtype`` (uint8 when no zero point)."""
    info = np.iinfo(dtype)
    q = np.rint(np.asarray(y, np.float32) / np.asarray(scale, np.float32).reshape(()))
    if zero_point is not None:
        q += np.float32(np.asarray(zero_point).reshape(()))
    return np.clip(q, info.min, info.max).astype(dtype)


def _dtype_of(x: Any) -> np.dtype:
    """The element type of a quantised input."""
    return np.asarray(x).dtype


def _binary(ufunc: np.ufunc, a: Any, a_scale: Any, a_point: Any, b: Any, b_scale: Any,
            b_point: Any, c_scale: Any, c_point: Any) -> np.ndarray:  # fmt: skip
    """``ufunc`` of the dequantised operands, quantised to ``c_scale``/``c_point``."""
    result = ufunc(_dequantize(a, a_scale, a_point), _dequantize(b, b_scale, b_point))
    return _quantize(result, c_scale, c_point, output_dtype(c_point, _dtype_of(a)))


@kernels.register("QLinearAdd", versions=(1,), domain=MS)
def qlinear_add(
    A: Any,
    A_scale: Any,
    A_zero_point: Any,
    B: Any,
    B_scale: Any,
    B_zero_point: Any,
    C_scale: Any,
    C_zero_point: Any = None,
) -> tuple[Any]:
    """Quantised ``A + B`` (numpy broadcasting), requantised to ``C_scale``/``C_zero_point``."""
    return (
        _binary(np.add, A, A_scale, A_zero_point, B, B_scale, B_zero_point, C_scale, C_zero_point),
    )


@kernels.register("QLinearMul", versions=(1,), domain=MS)
def qlinear_mul(
    A: Any,
    A_scale: Any,
    A_zero_point: Any,
    B: Any,
    B_scale: Any,
    B_zero_point: Any,
    C_scale: Any,
    C_zero_point: Any = None,
) -> tuple[Any]:
    """Quantised ``A * B`` (numpy broadcasting), requantised to ``C_scale``/``C_zero_point``."""
    return (
        _binary(
            np.multiply, A, A_scale, A_zero_point, B, B_scale, B_zero_point, C_scale, C_zero_point
        ),
    )


def _table_op(
    X: Any, x_scale: Any, x_zero_point: Any, y_scale: Any, y_zero_point: Any, fn: Callable
) -> np.ndarray:
    """A unary op through a lookup table over every value of X's 8-bit type."""
    dtype = _dtype_of(X)
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1).astype(dtype)
    table = _quantize(
        fn(_dequantize(values, x_scale, x_zero_point)),
        y_scale,
        y_zero_point,
        output_dtype(y_zero_point, dtype),
    )
    return table[np.asarray(X).astype(np.int32) - info.min]


@kernels.register("QLinearSigmoid", versions=(1,), domain=MS)
def qlinear_sigmoid(
    X: Any, X_scale: Any, X_zero_point: Any, Y_scale: Any, Y_zero_point: Any = None
) -> tuple[Any]:
    """Quantised Sigmoid (a 256-entry table, as onnxruntime builds it)."""
    return (_table_op(X, X_scale, X_zero_point, Y_scale, Y_zero_point, sigmoid),)


@kernels.register("QLinearLeakyRelu", versions=(1,), domain=MS)
def qlinear_leaky_relu(
    X: Any,
    X_scale: Any,
    X_zero_point: Any,
    Y_scale: Any,
    Y_zero_point: Any = None,
    *,
    alpha: float = 0.009999999776482582,
) -> tuple[Any]:
    """Quantised LeakyRelu (a 256-entry table, as onnxruntime builds it)."""
    slope = np.float32(alpha)

    def leaky(x: np.ndarray) -> np.ndarray:
        return np.where(x >= 0, x, x * slope)

    return (_table_op(X, X_scale, X_zero_point, Y_scale, Y_zero_point, leaky),)


@kernels.register("QLinearGlobalAveragePool", versions=(1,), domain=MS)
def qlinear_global_average_pool(
    X: Any,
    x_scale: Any,
    x_zero_point: Any,
    y_scale: Any,
    y_zero_point: Any,
    *,
    channels_last: int = 0,
) -> tuple[Any]:
    """Quantised GlobalAveragePool over the spatial dims (NCHW..., or N...C when
    ``channels_last``), which stay as 1s."""
    x = _dequantize(X, x_scale, x_zero_point)
    axes = tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float32)
    return (_quantize(mean, y_scale, y_zero_point, output_dtype(y_zero_point, _dtype_of(X))),)


@kernels.register("QLinearConcat", versions=(1,), domain=MS)
def qlinear_concat(Y_scale: Any, Y_zero_point: Any, *inputs: Any, axis: int) -> tuple[Any]:
    """Concat of ``(X, X_scale, X_zero_point)`` triples, each requantised to Y's scale and
    zero point (copied as is where they are the same)."""
    dtype = _dtype_of(Y_zero_point)
    parts = []
    for x, scale, zero_point in zip(inputs[0::3], inputs[1::3], inputs[2::3]):
        same = np.array_equal(scale, Y_scale) and np.array_equal(zero_point, Y_zero_point)
        if same:
            parts.append(np.asarray(x, dtype))
        else:
            parts.append(_quantize(_dequantize(x, scale, zero_point), Y_scale, Y_zero_point, dtype))
    return (np.concatenate(parts, axis=axis),)


@kernels.register("QLinearSoftmax", versions=(1,), domain=MS)
def qlinear_softmax(
    X: Any,
    X_scale: Any,
    x_zero_point: Any,
    y_scale: Any,
    y_zero_point: Any,
    *,
    axis: int = -1,
    opset: int,
) -> tuple[Any]:
    """Quantised Softmax with the semantics of ai.onnx Softmax-``opset``: before 13 the input
    is coerced to 2-D at ``axis`` and normalised over the flattened trailing dims."""
    x = _dequantize(X, X_scale, x_zero_point)
    if opset < 13:
        axis = axis + x.ndim if axis < 0 else axis
        flat = x.reshape(int(np.prod(x.shape[:axis])), -1)
        y = _softmax(flat, -1).reshape(x.shape)
    else:
        y = _softmax(x, axis)
    return (_quantize(y, y_scale, y_zero_point, output_dtype(y_zero_point, _dtype_of(X))),)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@kernels.register("QGemm", versions=(1,), domain=MS)
def qgemm(
    A: Any,
    a_scale: Any,
    a_zero_point: Any,
    B: Any,
    b_scale: Any,
    b_zero_point: Any,
    C: Any = None,
    y_scale: Any = None,
    y_zero_point: Any = None,
    *,
    alpha: float = 1.0,
    transA: int = 0,
    transB: int = 0,
) -> tuple[Any]:
    """``alpha * a_scale * b_scale * ((A - a_zp)' (B - b_zp)' + C)``: C an int32 bias in the
    product's scale, b's scale and zero point per tensor or per output column. Float32 out
    without ``y_scale``, else quantised to ``y_scale``/``y_zero_point``."""
    a = np.asarray(A).astype(np.int64) - np.asarray(a_zero_point).astype(np.int64)
    b = np.asarray(B).astype(np.int64)
    b = b.T if transB else b
    a = a.T if transA else a
    b = b - np.asarray(b_zero_point).astype(np.int64).reshape(-1)[None, :]
    acc = a @ b  # exact in int64
    if C is not None:
        acc = acc + np.asarray(C).astype(np.int64)
    scale = np.asarray(a_scale, np.float32).reshape(()) * np.asarray(b_scale, np.float32)
    y = acc.astype(np.float32) * (scale.reshape(-1) * np.float32(alpha))
    if y_scale is None:
        return (y.astype(np.float32),)
    return (_quantize(y, y_scale, y_zero_point, output_dtype(y_zero_point, _dtype_of(A))),)


# --- quantize_dynamic's LSTM ----------------------------------------------------------------
def _dequantized_lstm_weights(w: Any, scale: Any, zero_point: Any) -> np.ndarray:
    """[directions, input, 4*hidden] quantized weights -> LSTM's float32 [directions,
    4*hidden, input]; scale and zero point per direction or per direction and column."""
    w = np.asarray(w)
    scale, point = np.asarray(scale, np.float32), np.asarray(zero_point)
    shape = (w.shape[0], 1, -1) if scale.ndim == 2 else (-1, 1, 1)
    centred = w.astype(np.int32) - point.astype(np.int32).reshape(shape)
    return np.ascontiguousarray((centred * scale.reshape(shape)).transpose(0, 2, 1))


@kernels.register("DynamicQuantizeLSTM", versions=(1,), domain=MS, factory=True)
@factory(direction="forward", input_forget=0)
def dynamic_quantize_lstm(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., tuple[Any, ...]]:
    """``quantize_dynamic``'s LSTM: 8-bit W [directions, input, 4*hidden] and R (transposed
    from LSTM's layout) with per-direction or per-column scales and zero points, run as the
    float LSTM kernel (:func:`~onnxep.reference.rnn_ops.make_lstm`, so with activations,
    clip, input_forget, peepholes and ``sequence_lens``) on the dequantized weights.
    onnxruntime also quantizes the activations inside the op, so the two differ by that
    rounding (about 1e-2 on unit-scale data)."""
    outputs = info.node.outputs
    lstm = make_lstm(attrs, [i < len(outputs) and bool(outputs[i]) for i in range(3)])

    def run(*inputs: Any) -> tuple[Any, ...]:
        padded = [*inputs, *([None] * (12 - len(inputs)))]
        x, w, r, *optional = padded[:8]
        w_scale, w_zero_point, r_scale, r_zero_point = padded[8:]
        weights = _dequantized_lstm_weights(w, w_scale, w_zero_point)
        recurrence = _dequantized_lstm_weights(r, r_scale, r_zero_point)
        with np.errstate(all="ignore"):
            return lstm(x, weights, recurrence, *optional)

    return run
