"""Dense and normalisation kernels: Gemm, MatMul, BatchNormalization, InstanceNormalization,
LayerNormalization, GroupNormalization, Softmax/LogSoftmax/Hardmax, Dropout, LRN.

Matrix products run on float32/float64 BLAS (float16 is computed in float32). Softmax and
friends follow each version's semantics: before opset 13 the input is flattened to 2-D at
``axis`` (default 1); from 13 on they work along ``axis`` (default -1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import FLOATS, all_checks, factory, fresh, input_dtypes, scratch
from onnxep.reference._registry import kernels

__all__: list[str] = []


def _blas(x: Any) -> np.ndarray:
    """``x`` as an array of a BLAS float type (float16 widened to float32)."""
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype == np.float16 else x


@kernels.register("MatMul", versions=(1, 9, 13), dtypes=FLOATS, fresh_output=True)
def matmul(A: Any, B: Any) -> Any:
    """numpy-style matrix product (batched, 1-D operands promoted as numpy does)."""
    if A.dtype == np.float16:
        return np.matmul(_blas(A), _blas(B)).astype(np.float16)
    return np.matmul(A, B)


@kernels.register("Gemm", versions=(7, 9, 11, 13), dtypes=FLOATS, fresh_output=True)
def gemm(
    A: Any,
    B: Any,
    C: Any = None,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,
    transB: int = 0,
) -> Any:
    """alpha * A' @ B' + beta * C, with C broadcast to the result."""
    dtype = np.asarray(A).dtype
    a, b = _blas(A), _blas(B)
    y = np.matmul(a.T if transA else a, b.T if transB else b)
    if alpha != 1.0:
        y *= alpha
    if C is not None and beta != 0.0:
        c = _blas(C)
        y += c if beta == 1.0 else beta * c
    return y.astype(dtype, copy=False)


# --- normalisation -------------------------------------------------------------------------
def _channel(v: Any, ndim: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast over (N, C, *spatial)."""
    return np.asarray(v).reshape((1, -1) + (1,) * (ndim - 2))


def _bn_inference(x: np.ndarray, scale: Any, b: Any, mean: Any, var: Any, eps: float) -> Any:
    f = np.float32 if x.dtype == np.float16 else x.dtype.type
    a = np.asarray(scale, f) / np.sqrt(np.asarray(var, f) + f(eps))
    shift = np.asarray(b, f) - np.asarray(mean, f) * a
    return _channel_affine(x, a.astype(x.dtype), shift.astype(x.dtype))


def _channel_affine(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x * a + b with one (a, b) per channel (axis 1)."""
    y = fresh(x.shape, x.dtype)
    rows = (*x.shape[:2], math.prod(x.shape[2:]))  # numpy broadcasts per channel faster over 3 dims
    np.multiply(x.reshape(rows), np.reshape(a, (1, -1, 1)), out=y.reshape(rows))
    y.reshape(rows)[...] += np.reshape(b, (1, -1, 1))
    return y


def _n_outputs(info: NodeInfo) -> int:
    return sum(1 for o in info.node.outputs if o)


def _bn_check(info: NodeInfo) -> str | None:
    version = info.node.key.since_version
    if info.attrs.get("spatial", 1) != 1:
        return "BatchNormalization with spatial=0 is left to onnx"
    if version == 6 and not info.attrs.get("is_test", 0):
        return "BatchNormalization-6 training (is_test=0) is left to onnx"
    if version < 14 and _n_outputs(info) > 1:
        return "BatchNormalization training outputs before opset 14 are left to onnx"
    if version >= 14 and not info.attrs.get("training_mode", 0) and _n_outputs(info) > 1:
        return "extra outputs are invalid when training_mode=0"
    return None


@kernels.register(
    "BatchNormalization", versions=(6,), dtypes=FLOATS, check=_bn_check, fresh_output=True
)
def batch_norm_6(
    X: Any, scale: Any, B: Any, mean: Any, var: Any, *, epsilon: float = 9.999999747378752e-06,
    is_test: int = 0, momentum: float = 0.8999999761581421, spatial: int = 1,
) -> tuple[Any, ...]:  # fmt: skip
    """Inference-mode batch normalisation (is_test=1)."""
    return (_bn_inference(np.asarray(X), scale, B, mean, var, epsilon),)


@kernels.register(
    "BatchNormalization", versions=(7, 9), dtypes=FLOATS, check=_bn_check, fresh_output=True
)
def batch_norm_7(
    X: Any, scale: Any, B: Any, mean: Any, var: Any, *, epsilon: float = 9.999999747378752e-06,
    momentum: float = 0.8999999761581421, spatial: int = 1,
) -> tuple[Any, ...]:  # fmt: skip
    """Inference-mode batch normalisation with the given statistics."""
    return (_bn_inference(np.asarray(X), scale, B, mean, var, epsilon),)


@kernels.register("BatchNormalization", versions=(14, 15), fresh_output=True, check=all_checks(
    input_dtypes(i0=FLOATS, i1=FLOATS, i2=FLOATS, i3=FLOATS, i4=FLOATS), _bn_check))  # fmt: skip
def batch_norm(
    X: Any, scale: Any, B: Any, input_mean: Any, input_var: Any, *,
    epsilon: float = 9.999999747378752e-06, momentum: float = 0.8999999761581421,
    training_mode: int = 0,
) -> tuple[Any, ...]:  # fmt: skip
    """Batch normalisation; ``training_mode`` uses the batch statistics and updates the running
    ones (population variance), as the opset-14 spec says."""
    x = np.asarray(X)
    if not training_mode:
        return (_bn_inference(x, scale, B, input_mean, input_var, epsilon),)
    f = np.float32 if x.dtype == np.float16 else x.dtype.type
    axes = (0, *range(2, x.ndim))
    xf = x.astype(f, copy=False)
    mean, var = xf.mean(axis=axes), xf.var(axis=axes)
    y = _bn_inference(x, scale, B, mean, var, epsilon)
    stats_dtype = np.asarray(input_mean).dtype
    running_mean = (input_mean * momentum + mean * (1 - momentum)).astype(stats_dtype)
    running_var = (input_var * momentum + var * (1 - momentum)).astype(stats_dtype)
    return y, running_mean, running_var


def _standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> tuple[Any, Any, Any]:
    """(x - mean) / sqrt(var + eps) over ``axes``, with the mean and 1/std (keepdims)."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = np.mean(np.square(centered), axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    centered *= inv_std
    return centered, mean, inv_std


@kernels.register("InstanceNormalization", versions=(6, 22), dtypes=FLOATS)
def instance_norm(input: Any, scale: Any, B: Any, *, epsilon: float = 9.999999747378752e-06) -> Any:
    """Normalise each (n, c) over its spatial dims, then scale and shift per channel."""
    x = np.asarray(input)
    xf = _blas(x)
    y, _, _ = _standardize(xf, tuple(range(2, x.ndim)), epsilon)
    y *= _channel(_blas(scale), x.ndim)
    y += _channel(_blas(B), x.ndim)
    return y.astype(x.dtype, copy=False)


@kernels.register(
    "LayerNormalization",
    versions=(17,),
    check=all_checks(
        input_dtypes(
            i0=("float16", "float32"), i1=("float16", "float32"), i2=("float16", "float32")
        ),
        lambda n: None if n.attrs.get("stash_type", 1) == 1 else "stash_type != 1 is left to onnx",
    ),
)
def layer_norm(
    X: Any, Scale: Any, B: Any = None, *, axis: int = -1,
    epsilon: float = 9.999999747378752e-06, stash_type: int = 1,
) -> tuple[Any, ...]:  # fmt: skip
    """Normalise over the dims from ``axis`` on (in float32), then scale and shift."""
    x = np.asarray(X)
    axis = axis + x.ndim if axis < 0 else axis
    y, mean, inv_std = _standardize(_blas(x), tuple(range(axis, x.ndim)), epsilon)
    y *= _blas(Scale)
    if B is not None:
        y += _blas(B)
    return y.astype(x.dtype, copy=False), mean, inv_std


def _group_norm(x: np.ndarray, scale: Any, bias: Any, groups: int, eps: float) -> Any:
    xf = _blas(x).reshape(x.shape[0], groups, -1)
    y, _, _ = _standardize(xf, (2,), eps)
    y = y.reshape(x.shape)
    y *= _channel(_blas(scale), x.ndim)
    y += _channel(_blas(bias), x.ndim)
    return y.astype(x.dtype, copy=False)


@kernels.register("GroupNormalization", versions=(21,), dtypes=FLOATS, check=lambda n: (
    None if n.attrs.get("stash_type", 1) == 1 else "stash_type != 1 is left to onnx"))  # fmt: skip
def group_norm(
    X: Any, scale: Any, bias: Any, *, epsilon: float = 9.999999747378752e-06, num_groups: int,
    stash_type: int = 1,
) -> Any:  # fmt: skip
    """Group normalisation (statistics in float32) with one scale and bias per channel."""
    return _group_norm(np.asarray(X), scale, bias, num_groups, epsilon)


# --- softmax family ------------------------------------------------------------------------
def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = x - x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


def _hardmax(x: np.ndarray, axis: int) -> np.ndarray:
    y = np.zeros_like(x)
    np.put_along_axis(y, np.expand_dims(np.argmax(x, axis=axis), axis), 1, axis=axis)
    return y


def _as_2d(fn: Callable[[np.ndarray, int], np.ndarray]) -> Callable[..., Any]:
    """Opset 1/11 semantics: flatten to (prod(dims[:axis]), prod(dims[axis:])), apply on 1."""

    def run(input: Any, *, axis: int = 1) -> Any:
        x = np.asarray(input)
        axis = axis + x.ndim if axis < 0 else axis
        if x.size == 0:
            return x.copy()
        flat = x.reshape(math.prod(x.shape[:axis]), -1)
        return fn(flat, 1).reshape(x.shape)

    run.__doc__ = f"{fn.__name__.strip('_')} over the input flattened to 2-D at ``axis``."
    return run


def _along(fn: Callable[[np.ndarray, int], np.ndarray]) -> Callable[..., Any]:
    """Opset 13 semantics: along ``axis``."""

    def run(input: Any, *, axis: int = -1) -> Any:
        x = np.asarray(input)
        return x.copy() if x.size == 0 else fn(x, axis)

    run.__doc__ = f"{fn.__name__.strip('_')} along ``axis``."
    return run


for _op, _fn in (("Softmax", _softmax), ("LogSoftmax", _log_softmax), ("Hardmax", _hardmax)):
    kernels.register(_op, versions=(1, 11), dtypes=FLOATS)(_as_2d(_fn))
    kernels.register(_op, versions=(13,), dtypes=FLOATS)(_along(_fn))


# --- Dropout and LRN -----------------------------------------------------------------------
def _dropout_check(info: NodeInfo) -> str | None:
    if info.n_inputs > 2 and info.node.inputs[2]:
        mode = info.constant(2)
        if mode is None or bool(np.asarray(mode).reshape(-1)[0]):
            return "Dropout in training mode (or a non-constant training_mode) is left to onnx"
    return None


@kernels.register("Dropout", versions=(7, 10, 12, 13, 22), factory=True, check=_dropout_check)
@factory(ratio=0.5)
def dropout(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., tuple[Any, ...]]:
    """Inference: the output is the input; the mask (if asked for) is all true."""
    outputs = info.node.outputs
    if len(outputs) < 2 or not outputs[1]:
        return lambda data, *_: (data,)
    bool_mask = info.node.key.since_version >= 10

    def run(data: Any, *_: Any) -> tuple[Any, ...]:
        mask = np.ones(np.shape(data), dtype=bool if bool_mask else np.asarray(data).dtype)
        return data, mask

    return run


@kernels.register("LRN", versions=(1, 13), dtypes=FLOATS)
def lrn(
    X: Any, *, alpha: float = 9.999999747378752e-05, beta: float = 0.75, bias: float = 1.0,
    size: int,
) -> Any:  # fmt: skip
    """x / (bias + alpha / size * sum of squares over nearby channels) ** beta."""
    x = np.asarray(X)
    c = x.shape[1]
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    sq = np.square(x, out=scratch(0, x.shape, x.dtype))
    sums = scratch(1, x.shape, x.dtype)  # work arrays: no page faults per run
    sums.fill(0)
    for shift in range(-lo, hi + 1):
        src = slice(max(shift, 0), c + min(shift, 0))
        dst = slice(max(-shift, 0), c - max(shift, 0))
        sums[:, dst] += sq[:, src]
    sums *= alpha / size
    sums += bias
    if beta == 0.75:  # AlexNet's and GoogLeNet's: two square roots, faster than power
        np.sqrt(sums, out=sq)
        np.sqrt(sq, out=sums)
        sums *= sq
    else:
        np.power(sums, beta, out=sums)
    return np.divide(x, sums, out=fresh(x.shape, x.dtype))
