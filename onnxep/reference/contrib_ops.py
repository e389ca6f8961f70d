"""The small onnxruntime contrib ops (domain ``com.microsoft``) that its optimiser writes.

A model saved by onnxruntime with ``optimized_model_filepath`` at ``ORT_ENABLE_EXTENDED``
holds fused ops: Gelu, BiasGelu, FastGelu, QuickGelu, FusedMatMul, FusedGemm, FusedConv and
SkipLayerNormalization are each a few lines of standard ops, implemented here, as are the
ONNX-domain LayerNormalization (before opset 17) and SimplifiedLayerNormalization that the
loader moves to this domain (:mod:`onnxep.ort_extensions`). Source of the
semantics: onnxruntime's contrib schemas (``docs/ContribOperators.md``, also
``onnxruntime.capi._pybind_state.get_all_operator_schema()``) and its CPU kernels
(``onnxruntime/contrib_ops/cpu``, ``core/providers/cpu/fused_activation``); the defaults are
the schemas' (QuickGelu alpha 1.702, SkipLayerNormalization epsilon 1e-12).

The QOperator quantisation ops (QLinearAdd, QGemm, ...) and DynamicQuantizeLSTM live in
:mod:`onnxep.reference.qlinear_ops`; the transformers optimiser's fused ops (Attention,
MultiHeadAttention, EmbedLayerNormalization, SkipSimplifiedLayerNormalization,
RotaryEmbedding, GroupQueryAttention, ...) and MatMulNBits in
:mod:`onnxep.reference.attention_ops`. Every other contrib op (QAttention, ...) is refused
with a message that names it and suggests saving at ``ORT_ENABLE_BASIC``. onnx has no
schema for this domain, so these kernels return tuples (see
:func:`onnxep.registry.is_multi_output`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._clamp import clamp
from onnxep.reference._registry import kernels
from onnxep.reference.conv_ops import conv
from onnxep.reference.math_ops import erf_array, sigmoid
from onnxep.reference.nn_ops import gemm, layer_norm

__all__: list[str] = []

MS = "com.microsoft"
_ACTIVATIONS = ("", "Relu", "Tanh", "Sigmoid", "LeakyRelu", "HardSigmoid", "Clip")


def _activation_check(info: NodeInfo) -> str | None:
    name = info.attrs.get("activation", "")
    if name not in _ACTIVATIONS:
        return f"fused activation {name!r} is not implemented (have {', '.join(_ACTIVATIONS[1:])})"
    return None


def _activate(y: np.ndarray, name: str, params: Sequence[float]) -> np.ndarray:
    """onnxruntime's fused activation of ``y`` (Relu and Tanh in place: ``y`` is the op's own
    output)."""
    if name == "Relu":
        return clamp(y, y.dtype.type(0), out=y)
    if name == "Tanh":
        return np.tanh(y, out=y)
    if name == "Sigmoid":
        return sigmoid(y)
    if name == "LeakyRelu":
        alpha = params[0] if params else 0.01
        return np.where(y >= 0, y, y * y.dtype.type(alpha))
    if name == "HardSigmoid":
        alpha, beta = (params[0], params[1]) if len(params) >= 2 else (0.2, 0.5)
        return np.clip(y * y.dtype.type(alpha) + y.dtype.type(beta), 0, 1)
    if name == "Clip":
        lo, hi = (params[0], params[1]) if len(params) >= 2 else (-np.inf, np.inf)
        return clamp(y, y.dtype.type(lo), y.dtype.type(hi))
    return y


def gelu(x: np.ndarray) -> np.ndarray:
    """x * Phi(x), Phi with the exact erf."""
    return 0.5 * x * (1 + erf_array(x * x.dtype.type(1.0 / math.sqrt(2.0))))


@kernels.register("Gelu", versions=(1,), domain=MS)
def ms_gelu(X: Any) -> tuple[Any]:
    """x * Phi(x) with the exact erf (com.microsoft.Gelu has no tanh variant)."""
    return (gelu(np.asarray(X)),)


@kernels.register("BiasGelu", versions=(1,), domain=MS)
def bias_gelu(A: Any, B: Any) -> tuple[Any]:
    """Gelu(A + B), B a bias broadcast along the last dim."""
    return (gelu(np.asarray(A) + np.asarray(B)),)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@kernels.register("FastGelu", versions=(1,), domain=MS)
def fast_gelu(X: Any, bias: Any = None) -> tuple[Any]:
    """Gelu's tanh approximation of ``X + bias``: what onnxruntime fuses ``gelu(approximate=
    "tanh")`` (GPT-2's ``NewGELU``) into, at ``ORT_ENABLE_EXTENDED`` and in its transformers
    optimiser. float16 is computed in float32, as onnxruntime's CPU kernel does."""
    x = np.asarray(X)
    dtype = x.dtype
    if bias is not None:
        x = x + np.asarray(bias)
    wide = x.astype(np.float32) if dtype == np.float16 else x
    inner = wide * (wide * wide * wide.dtype.type(0.044715) + 1) * wide.dtype.type(_SQRT_2_OVER_PI)
    y = wide * (np.tanh(inner) + 1) * wide.dtype.type(0.5)
    return (y.astype(dtype, copy=False),)


@kernels.register("QuickGelu", versions=(1,), domain=MS)
def quick_gelu(X: Any, *, alpha: float = 1.7020000219345093) -> tuple[Any]:
    """x * Sigmoid(alpha * x) (a SiLU when alpha is 1)."""
    x = np.asarray(X)
    return (x * sigmoid(x * x.dtype.type(alpha)),)


def _no_batch_transpose(info: NodeInfo) -> str | None:
    if info.attrs.get("transBatchA", 0) or info.attrs.get("transBatchB", 0):
        return "transBatchA/transBatchB are not implemented"
    return None


def _last2(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)


@kernels.register("FusedMatMul", versions=(1,), domain=MS, check=_no_batch_transpose)
def fused_matmul(
    A: Any,
    B: Any,
    *,
    alpha: float = 1.0,
    transA: int = 0,
    transB: int = 0,
    transBatchA: int = 0,
    transBatchB: int = 0,
) -> tuple[Any]:
    """alpha * matmul(A', B'), each operand transposed on its last two dims when asked."""
    a, b = np.asarray(A), np.asarray(B)
    dtype = a.dtype
    if dtype == np.float16:
        a, b = a.astype(np.float32), b.astype(np.float32)
    y = np.matmul(_last2(a) if transA else a, _last2(b) if transB else b)
    if alpha != 1.0:
        y *= y.dtype.type(alpha)
    return (y.astype(dtype, copy=False),)


@kernels.register("FusedGemm", versions=(1,), domain=MS, check=_activation_check)
def fused_gemm(
    A: Any,
    B: Any,
    C: Any = None,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,
    transB: int = 0,
    activation: str = "",
    activation_alpha: float | None = None,
    activation_beta: float | None = None,
    activation_gamma: float | None = None,
) -> tuple[Any]:
    """Gemm, then the fused activation (LeakyRelu/HardSigmoid read activation_alpha/_beta)."""
    y = gemm(A, B, C, alpha=alpha, beta=beta, transA=transA, transB=transB)
    if activation == "LeakyRelu":
        params: tuple[float, ...] = (0.01 if activation_alpha is None else activation_alpha,)
    else:  # HardSigmoid's defaults when the attributes are left unset
        params = (
            0.2 if activation_alpha is None else activation_alpha,
            0.5 if activation_beta is None else activation_beta,
        )
    return (_activate(np.asarray(y), activation, params),)


@kernels.register("FusedConv", versions=(1,), domain=MS, check=_activation_check)
def fused_conv(
    X: Any,
    W: Any,
    B: Any = None,
    Z: Any = None,
    *,
    activation: str = "",
    activation_params: Sequence[float] = (),
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> tuple[Any]:
    """activation(Conv(X, W, B) + Z): onnxruntime's Conv with a fused sum and activation."""
    y = conv(
        X, W, B, auto_pad=auto_pad, dilations=dilations, group=group,
        kernel_shape=kernel_shape, pads=pads, strides=strides,
    )  # fmt: skip
    if Z is not None:
        y += np.asarray(Z)
    return (_activate(y, activation, tuple(activation_params)),)


# onnxruntime's ONNX-domain LayerNormalization before opset 17, which the loader moves here
# (see :mod:`onnxep.ort_extensions`), has the semantics ONNX adopted at 17: the same kernel.
kernels.register("LayerNormalization", versions=(1,), domain=MS)(layer_norm)


@kernels.register("SimplifiedLayerNormalization", versions=(1,), domain=MS)
def simplified_layer_norm(
    X: Any, scale: Any, *, axis: int = -1, epsilon: float = 9.999999747378752e-06,
    stash_type: int = 1,
) -> tuple[Any, Any]:  # fmt: skip
    """RMSNorm, onnxruntime's ONNX-domain SimplifiedLayerNormalization: ``X / sqrt(mean(X**2)
    + epsilon) * scale`` over the dims from ``axis`` (float32 inside for float16), and the
    1/rms (keepdims)."""
    x = np.asarray(X)
    axis = axis + x.ndim if axis < 0 else axis
    wide = x.astype(np.float32) if x.dtype == np.float16 else x
    inv_rms = 1.0 / np.sqrt(
        np.mean(np.square(wide), axis=tuple(range(axis, x.ndim)), keepdims=True) + epsilon
    )
    y = wide * inv_rms * np.asarray(scale).astype(wide.dtype, copy=False)
    return y.astype(x.dtype, copy=False), inv_rms.astype(np.float32, copy=False)


@kernels.register("SkipLayerNormalization", versions=(1,), domain=MS)
def skip_layer_norm(
    input: Any,
    skip: Any,
    gamma: Any,
    beta: Any = None,
    bias: Any = None,
    *,
    epsilon: float = 9.999999960041972e-13,
) -> tuple[Any, Any, Any, Any]:
    """LayerNorm(input + skip + bias) * gamma + beta over the last dim (float32 inside).

    Outputs: the result, the mean and 1/std (keepdims, float32) and input + skip + bias.
    """
    x = np.asarray(input)
    total = x + np.asarray(skip)
    if bias is not None:
        total = total + np.asarray(bias)
    wide = total.astype(np.float32)
    mean = wide.mean(axis=-1, keepdims=True)
    centered = wide - mean
    inv_std = 1.0 / np.sqrt(np.mean(np.square(centered), axis=-1, keepdims=True) + epsilon)
    y = centered * inv_std * np.asarray(gamma, np.float32)
    if beta is not None:
        y += np.asarray(beta, np.float32)
    return y.astype(x.dtype, copy=False), mean, inv_std, total
