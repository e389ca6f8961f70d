"""Conv (im2col + batched matmul, cuBLAS on the GPU), MaxPool, AveragePool, global pools, LRN.

CuPy 14 ships no cuDNN binding, so convolution is a strided window view copied into columns
and multiplied per group: ``y[n, g] = W[g] @ cols[n, g]``. A 1x1 convolution with unit
stride and no padding needs no column copy at all.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep_cupy._backend import xp_of
from onnxep_cupy._registry import FLOATS, kernels
from onnxep_cupy._windows import Geometry, geometry, pad_spatial, windows

__all__ = ["average_pool", "conv", "lrn", "max_pool"]


def _spatial_check(info: NodeInfo) -> str | None:
    shape = info.input_shape(0)
    if shape is not None and len(shape) < 3:
        return f"input has rank {len(shape)}; needs N, C and at least one spatial axis"
    return None


def _columns(x: Any, g: Geometry, groups: int, xp: Any) -> Any:
    """``(N, groups, C/groups * prod(kernel), prod(out))`` columns of ``x``."""
    n, c = x.shape[:2]
    nd = len(g.kernel)
    if all(k == 1 for k in g.kernel) and all(s == 1 for s in g.strides) and not g.padded:
        return x.reshape(n, groups, c // groups, -1)
    view = windows(pad_spatial(x, g, 0.0, xp), g, xp)  # (n, c, *out, *kernel)
    order = (0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))  # (n, c, *kernel, *out)
    k = math.prod(g.kernel)
    return xp.ascontiguousarray(view.transpose(order)).reshape(n, groups, c // groups * k, -1)


@kernels.register("Conv", versions=(1, 11, 22), dtypes=FLOATS, check=_spatial_check)
def conv(
    X: Any,
    W: Any,
    B: Any = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: tuple[int, ...] | None = None,
    group: int = 1,
    kernel_shape: tuple[int, ...] | None = None,
    pads: tuple[int, ...] | None = None,
    strides: tuple[int, ...] | None = None,
) -> Any:
    """N-d convolution with groups, dilations, strides and explicit or automatic padding."""
    xp = xp_of(X, W, B)
    m = W.shape[0]
    g = geometry(
        X.shape[2:],
        W.shape[2:],
        strides=strides,
        dilations=dilations,
        pads=pads,
        auto_pad=auto_pad,
    )
    cols = _columns(X, g, group, xp)
    w = W.reshape(group, m // group, -1)
    y = xp.matmul(w, cols).reshape(X.shape[0], m, *g.out)
    if B is not None:
        y += B.reshape(1, m, *(1,) * len(g.out))
    return y


def _indices_check(info: NodeInfo) -> str | None:
    if len(info.node.outputs) > 1 and info.node.outputs[1]:
        return "the Indices output is not supported"
    if info.attrs.get("storage_order", 0):
        return "storage_order=1 is not supported"
    return _spatial_check(info)


@kernels.register("MaxPool", versions=(8, 10, 11, 12, 22), dtypes=FLOATS, check=_indices_check)
def max_pool(
    X: Any,
    *,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    dilations: tuple[int, ...] | None = None,
    kernel_shape: tuple[int, ...],
    pads: tuple[int, ...] | None = None,
    storage_order: int = 0,
    strides: tuple[int, ...] | None = None,
) -> tuple[Any, None]:
    """Max over each window (padding never wins); returns ``(Y, None)`` (no Indices)."""
    xp = xp_of(X)
    g = geometry(
        X.shape[2:],
        kernel_shape,
        strides=strides,
        dilations=dilations,
        pads=pads,
        auto_pad=auto_pad,
        ceil_mode=ceil_mode,
    )
    view = windows(pad_spatial(X, g, -math.inf, xp), g, xp)
    return view.max(axis=tuple(range(-len(g.kernel), 0))), None


@functools.lru_cache(maxsize=256)
def _window_counts(spatial: tuple[int, ...], g: Geometry, include_pad: bool) -> np.ndarray:
    """How many elements each window averages: input cells, plus explicit pads if counted."""
    ones = np.ones((1, 1, *spatial), np.float32)
    if include_pad:
        ones = np.pad(ones, [(0, 0), (0, 0), *zip(g.begin, g.end)], constant_values=1.0)
        ones = np.pad(ones, [(0, 0), (0, 0), *((0, t) for t in g.tail)])
        zero = (0,) * len(g.kernel)
        counted = dataclasses.replace(g, begin=zero, end=zero, tail=zero)
        return windows(ones, counted, np).sum(axis=tuple(range(-len(g.kernel), 0)))[0, 0]
    view = windows(pad_spatial(ones, g, 0.0, np), g, np)
    return view.sum(axis=tuple(range(-len(g.kernel), 0)))[0, 0]


_device_counts: dict[tuple[Any, ...], Any] = {}


def _counts_on(xp: Any, key: tuple[Any, ...], host: np.ndarray) -> Any:
    if xp is np:
        return host
    device_key = (xp.cuda.Device().id, *key)  # uploaded once per device and geometry
    if device_key not in _device_counts:
        _device_counts[device_key] = xp.asarray(host)
    return _device_counts[device_key]


@kernels.register("AveragePool", versions=(7, 10, 11, 19, 22), dtypes=FLOATS, check=_spatial_check)
def average_pool(
    X: Any,
    *,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    count_include_pad: int = 0,
    dilations: tuple[int, ...] | None = None,
    kernel_shape: tuple[int, ...],
    pads: tuple[int, ...] | None = None,
    strides: tuple[int, ...] | None = None,
) -> Any:
    """Mean over each window; pads count only with ``count_include_pad``."""
    xp = xp_of(X)
    g = geometry(
        X.shape[2:],
        kernel_shape,
        strides=strides,
        dilations=dilations,
        pads=pads,
        auto_pad=auto_pad,
        ceil_mode=ceil_mode,
    )
    axes = tuple(range(-len(g.kernel), 0))
    sums = windows(pad_spatial(X, g, 0.0, xp), g, xp).sum(axis=axes, dtype=np.float32)
    if not g.padded:
        return (sums / math.prod(g.kernel)).astype(X.dtype, copy=False)
    key = (
        tuple(X.shape[2:]),
        g.kernel,
        g.strides,
        g.dilations,
        g.begin,
        g.end,
        g.tail,
        bool(count_include_pad),
    )
    host = _window_counts(tuple(X.shape[2:]), g, bool(count_include_pad))
    return (sums / _counts_on(xp, key, host)).astype(X.dtype, copy=False)


@kernels.register("GlobalAveragePool", versions=(1, 22), dtypes=FLOATS, check=_spatial_check)
def global_average_pool(X: Any) -> Any:
    """Mean over all spatial axes, kept as size-1 axes."""
    axes = tuple(range(2, X.ndim))
    return X.mean(axis=axes, keepdims=True, dtype=np.float32).astype(X.dtype, copy=False)


@kernels.register("GlobalMaxPool", versions=(1, 22), dtypes=FLOATS, check=_spatial_check)
def global_max_pool(X: Any) -> Any:
    """Max over all spatial axes, kept as size-1 axes."""
    return X.max(axis=tuple(range(2, X.ndim)), keepdims=True)


@kernels.register("LRN", versions=(1, 13), dtypes=FLOATS, check=_spatial_check)
def lrn(
    X: Any,
    *,
    alpha: float = 9.999999747378752e-05,
    beta: float = 0.75,
    bias: float = 1.0,
    size: int,
) -> Any:
    """Local response normalisation across channels: a windowed sum of squares."""
    xp = xp_of(X)
    sq = X.astype(np.float32) ** 2
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    widths = [(0, 0), (before + 1, after)] + [(0, 0)] * (X.ndim - 2)
    csum = xp.cumsum(xp.pad(sq, widths), axis=1)  # leading zero row: window = csum[i+size]-csum[i]
    c = X.shape[1]
    window = csum[:, size : size + c] - csum[:, :c]
    return (X / (bias + (alpha / size) * window) ** beta).astype(X.dtype, copy=False)
