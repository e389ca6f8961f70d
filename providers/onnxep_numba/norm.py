"""Normalizations: BatchNormalization (inference), LayerNormalization, Softmax (13+), LRN.

Row statistics are accumulated in float64. BatchNormalization becomes a per-channel affine
map run by the fused elementwise machinery; inside a compiled segment it is folded into a
preceding Conv, or fused with its elementwise neighbours (:mod:`onnxep_numba._fold`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from onnxep.graph import NodeInfo
from onnxep_numba._ewops import SPECS
from onnxep_numba._jit import jit
from onnxep_numba._registry import FLOATS, all_checks, check_dtypes, f32, kernels, only_outputs
from onnxep_numba.fusion import fused_kernel, single_op

__all__ = [
    "BN_KERNELS",
    "affine_params",
    "batch_normalization",
    "layer_normalization",
    "lrn",
    "softmax",
]


def affine_params(
    scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization as ``x * s + t`` per channel (float64)."""
    s = np.asarray(scale, np.float64) / np.sqrt(np.asarray(var, np.float64) + epsilon)
    t = np.asarray(bias, np.float64) - np.asarray(mean, np.float64) * s
    return s, t


def _bn_check(info: NodeInfo) -> str | None:
    if info.attrs.get("training_mode", 0):
        return "training_mode=1 is not implemented"
    if not info.attrs.get("spatial", 1):
        return "spatial=0 is not implemented"
    rank = info.input_type(0).rank
    if rank is not None and rank < 2:
        return f"input has rank {rank}"
    return None


_BN_CHECK = all_checks(
    check_dtypes((0,), FLOATS), check_dtypes((1, 2, 3, 4), FLOATS), only_outputs(1), _bn_check
)


@kernels.register("BatchNormalization", versions=(7, 9), check=_BN_CHECK)
def batch_normalization_v9(
    X: np.ndarray,
    scale: np.ndarray,
    B: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    *,
    epsilon: float = f32(1e-5),
    momentum: float = f32(0.9),
    spatial: int = 1,
) -> tuple[np.ndarray]:
    """Inference BatchNormalization, opsets 7-13 (inputs named ``mean``/``var``)."""
    return batch_normalization(X, scale, B, mean, var, epsilon=epsilon)


@kernels.register(
    "BatchNormalization",
    versions=(14, 15),
    check=_BN_CHECK,
)
def batch_normalization(
    X: np.ndarray,
    scale: np.ndarray,
    B: np.ndarray,
    input_mean: np.ndarray,
    input_var: np.ndarray,
    *,
    epsilon: float = f32(1e-5),
    momentum: float = f32(0.9),
    training_mode: int = 0,
) -> tuple[np.ndarray]:
    """Inference-mode BatchNormalization over channel dim 1 (output Y only)."""
    s, t = affine_params(scale, B, input_mean, input_var, epsilon)
    shape = (-1,) + (1,) * (X.ndim - 2)
    dtype = X.dtype
    s, t = s.astype(dtype).reshape(shape), t.astype(dtype).reshape(shape)
    program = single_op(SPECS["affine"], [dtype.name] * 3, {})
    return (fused_kernel(program)(X, s, t)[0],)


@jit
def _layer_norm(x, scale, bias, y, means, invs, eps):
    rows, d = x.shape
    for r in numba.prange(rows):
        mean = 0.0
        for i in range(d):
            mean += x[r, i]
        mean /= d
        var = 0.0
        for i in range(d):
            diff = x[r, i] - mean
            var += diff * diff
        inv = 1.0 / math.sqrt(var / d + eps)
        means[r] = mean
        invs[r] = inv
        for i in range(d):
            y[r, i] = (x[r, i] - mean) * inv * scale[i] + bias[i]


def _ln_check(info: NodeInfo) -> str | None:
    if info.attrs.get("stash_type", 1) != 1:
        return f"stash_type={info.attrs['stash_type']} is not implemented"
    return None


@kernels.register(
    "LayerNormalization",
    versions=(17,),
    check=all_checks(check_dtypes((0, 1, 2), FLOATS), _ln_check),
)
def layer_normalization(
    X: np.ndarray,
    Scale: np.ndarray,
    B: np.ndarray | None = None,
    *,
    axis: int = -1,
    epsilon: float = f32(1e-5),
    stash_type: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalize over dims ``axis..`` (statistics in float64); Y, Mean, InvStdDev (float32)."""
    x = np.ascontiguousarray(X)
    axis = axis % x.ndim
    tail = x.shape[axis:]
    d = int(np.prod(tail, dtype=np.int64))
    scale = np.ascontiguousarray(np.broadcast_to(Scale, tail).reshape(d), dtype=x.dtype)
    bias = np.zeros(d, x.dtype) if B is None else np.broadcast_to(B, tail).reshape(d)
    y = np.empty_like(x)
    stats_shape = x.shape[:axis] + (1,) * (x.ndim - axis)
    means = np.empty(stats_shape, np.float32)
    invs = np.empty(stats_shape, np.float32)
    if x.size:
        bias = np.ascontiguousarray(bias, x.dtype)
        _layer_norm(
            x.reshape(-1, d),
            scale,
            bias,
            y.reshape(-1, d),
            means.reshape(-1),
            invs.reshape(-1),
            float(epsilon),
        )
    return y, means, invs


@jit
def _softmax_rows(x, y):
    rows, d = x.shape
    for r in numba.prange(rows):
        top = -np.inf
        for i in range(d):
            top = max(top, x[r, i])
        total = 0.0
        for i in range(d):
            e = math.exp(x[r, i] - top)
            y[r, i] = e
            total += e
        inv = 1.0 / total
        for i in range(d):
            y[r, i] = y[r, i] * inv


@kernels.register("Softmax", versions=(13,), dtypes=FLOATS)
def softmax(input: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """Softmax along one axis (opset 13 semantics; older opsets are declined)."""
    x = np.moveaxis(input, axis, -1) if input.ndim else input.reshape(1)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    if x.size:
        _softmax_rows(x.reshape(-1, x.shape[-1]), y.reshape(-1, x.shape[-1]))
    if not input.ndim:
        return y.reshape(())
    return np.ascontiguousarray(np.moveaxis(y, -1, axis))


#: Positions of one LRN task (a slice of one channel's plane).
LRN_CHUNK = 512


@jit
def _lrn(x, y, size, alpha, beta, bias):
    """Per task: the window's sum of squares over a slice of positions (contiguous rows,
    float64), then the scaling; beta 0.75 (AlexNet, GoogLeNet) as two square roots."""
    n, c, p = x.shape
    lo = (size - 1) // 2
    hi = size - 1 - lo
    scale = alpha / size
    chunks = (p + LRN_CHUNK - 1) // LRN_CHUNK
    for t in numba.prange(n * c * chunks):
        b = t // (c * chunks)
        rest = t - b * c * chunks
        ch = rest // chunks
        i0 = (rest - ch * chunks) * LRN_CHUNK
        m = min(p, i0 + LRN_CHUNK) - i0
        acc = np.zeros(m, np.float64)
        for k in range(max(0, ch - lo), min(c - 1, ch + hi) + 1):
            row = x[b, k, i0:]
            for i in range(m):
                v = np.float64(row[i])
                acc[i] += v * v
        src, out = x[b, ch, i0:], y[b, ch, i0:]
        if beta == 0.75:
            for i in range(m):
                root = np.sqrt(bias + scale * acc[i])
                out[i] = src[i] / (root * np.sqrt(root))
        else:
            for i in range(m):
                out[i] = src[i] / (bias + scale * acc[i]) ** beta


@kernels.register("LRN", versions=(1, 13), dtypes=FLOATS)
def lrn(
    X: np.ndarray,
    *,
    alpha: float = f32(0.0001),
    beta: float = 0.75,
    bias: float = 1.0,
    size: int,
) -> np.ndarray:
    """Local response normalization across channels."""
    x = np.ascontiguousarray(X)
    y = np.empty_like(x)
    if x.size:
        n, c = x.shape[:2]
        _lrn(x.reshape(n, c, -1), y.reshape(n, c, -1), size, alpha, beta, bias)
    return y


#: The BatchNormalization kernels, for the segment compiler's folds.
BN_KERNELS = (batch_normalization, batch_normalization_v9)
