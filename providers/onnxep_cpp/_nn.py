"""Conv, MaxPool and AveragePool (``csrc/conv.cpp``, ``csrc/pool.cpp``).

The C++ code works on NCHW; a 1-D op runs as 2-D with H = 1 (views, no copies). ``auto_pad``
is resolved here into explicit pads from the input's shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep_cpp._registry import FLOAT, kernels, native

__all__ = ["conv2d_call"]

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def explicit_pads(
    auto_pad: str,
    pads: Sequence[int] | None,
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> list[int]:
    """ONNX pads (all begins, then all ends) with ``auto_pad`` applied."""
    n = len(spatial)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small = total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else total - small)
            ends.append(total - begins[-1])
        return begins + ends
    if auto_pad == "VALID" or pads is None:
        return [0] * (2 * n)
    return list(pads)


def _as_2d(values: Sequence[int], fill: int) -> list[int]:
    """Per-dim values of a 1-D op as 2-D ones (H first)."""
    return [fill, *values] if len(values) == 1 else list(values)


def _pads_2d(pads: list[int]) -> list[int]:
    return [0, pads[0], 0, pads[1]] if len(pads) == 2 else pads


def conv2d_call(
    X: np.ndarray,
    W: np.ndarray,
    B: np.ndarray | None,
    attrs: Mapping[str, Any],
    relu: bool,
    threads: int,
) -> np.ndarray:
    """Run Conv with the node's attributes, optionally with a fused Relu."""
    spatial = X.shape[2:]
    kernel = W.shape[2:]
    n = len(spatial)
    strides = list(attrs.get("strides") or [1] * n)
    dilations = list(attrs.get("dilations") or [1] * n)
    pads = explicit_pads(
        str(attrs.get("auto_pad", "NOTSET")),
        attrs.get("pads"),
        spatial,
        kernel,
        strides,
        dilations,
    )
    one_d = X.ndim == 3
    y = native.conv2d(
        X[:, :, None, :] if one_d else X,
        W[:, :, None, :] if one_d and W.ndim == 3 else W,
        B,
        pads=_pads_2d(pads),
        strides=_as_2d(strides, 1),
        dilations=_as_2d(dilations, 1),
        group=int(attrs.get("group", 1)),
        relu=relu,
        threads=threads,
    )
    return y[:, :, 0, :] if one_d else y


def _check_spatial(info: NodeInfo) -> str | None:
    shape = info.input_shape(0)
    if shape is not None and len(shape) not in (3, 4):
        return f"input rank {len(shape)}: the C++ kernel does 1-D and 2-D only"
    if info.attrs.get("auto_pad", "NOTSET") not in _AUTO_PADS:
        return f"unknown auto_pad {info.attrs.get('auto_pad')!r}"
    return None


@kernels.register("Conv", versions=(1, 11, 22), dtypes=FLOAT, check=_check_spatial)
def conv(
    X: np.ndarray,
    W: np.ndarray,
    B: np.ndarray | None = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
    threads: int = 0,
) -> np.ndarray:
    """N-D convolution for N = 1, 2 (im2col + GEMM, direct depthwise)."""
    attrs = {
        "auto_pad": auto_pad,
        "dilations": dilations,
        "group": group,
        "pads": pads,
        "strides": strides,
    }
    return conv2d_call(X, W, B, attrs, False, threads)


def _pool_args(
    X: np.ndarray,
    auto_pad: str,
    kernel_shape: Sequence[int],
    pads: Sequence[int] | None,
    strides: Sequence[int] | None,
    dilations: Sequence[int] | None,
) -> tuple[np.ndarray, dict[str, list[int]]]:
    n = X.ndim - 2
    strides = list(strides or [1] * n)
    dilations = list(dilations or [1] * n)
    full = explicit_pads(auto_pad, pads, X.shape[2:], kernel_shape, strides, dilations)
    args = {
        "kernel": _as_2d(list(kernel_shape), 1),
        "pads": _pads_2d(full),
        "strides": _as_2d(strides, 1),
        "dilations": _as_2d(dilations, 1),
    }
    return (X[:, :, None, :] if n == 1 else X), args


def _check_pool(info: NodeInfo) -> str | None:
    if len(info.node.outputs) > 1 and info.node.outputs[1]:
        return "the Indices output is not implemented"
    reason = _check_spatial(info)
    if reason:
        return reason
    kernel = info.attrs.get("kernel_shape", ())
    pads = info.attrs.get("pads") or ()
    if any(p >= kernel[i % len(kernel)] for i, p in enumerate(pads)):
        return "pads as large as the kernel are not implemented"
    return None


def _max_pool(
    X: np.ndarray,
    auto_pad: str,
    ceil_mode: int,
    dilations: Sequence[int] | None,
    kernel_shape: Sequence[int],
    pads: Sequence[int] | None,
    strides: Sequence[int] | None,
    threads: int,
) -> np.ndarray:
    x, args = _pool_args(X, auto_pad, kernel_shape, pads, strides, dilations)
    y = native.max_pool2d(x, ceil_mode=bool(ceil_mode), threads=threads, **args)
    return y[:, :, 0, :] if X.ndim == 3 else y


@kernels.register("MaxPool", versions=(1,), dtypes=FLOAT, check=_check_pool)
def max_pool_1(
    X: np.ndarray,
    *,
    auto_pad: str = "NOTSET",
    kernel_shape: Sequence[int],
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
    threads: int = 0,
) -> np.ndarray:
    """MaxPool-1: one output."""
    return _max_pool(X, auto_pad, 0, None, kernel_shape, pads, strides, threads)


@kernels.register("MaxPool", versions=(8, 10, 11, 12, 22), dtypes=FLOAT, check=_check_pool)
def max_pool(
    X: np.ndarray,
    *,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    dilations: Sequence[int] | None = None,
    kernel_shape: Sequence[int],
    pads: Sequence[int] | None = None,
    storage_order: int = 0,
    strides: Sequence[int] | None = None,
    threads: int = 0,
) -> tuple[np.ndarray]:
    """MaxPool-8+: (Y,); nodes asking for Indices are declined."""
    return (_max_pool(X, auto_pad, ceil_mode, dilations, kernel_shape, pads, strides, threads),)


@kernels.register("AveragePool", versions=(1, 7, 10, 11, 19, 22), dtypes=FLOAT, check=_check_pool)
def average_pool(
    X: np.ndarray,
    *,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    count_include_pad: int = 0,
    dilations: Sequence[int] | None = None,
    kernel_shape: Sequence[int],
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
    threads: int = 0,
) -> np.ndarray:
    """Mean over each window; count_include_pad counts the explicit padding."""
    x, args = _pool_args(X, auto_pad, kernel_shape, pads, strides, dilations)
    y = native.avg_pool2d(
        x,
        ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
        threads=threads,
        **args,
    )
    return y[:, :, 0, :] if X.ndim == 3 else y


def _check_global(info: NodeInfo) -> str | None:
    shape = info.input_shape(0)
    if shape is not None and len(shape) not in (3, 4):
        return f"input rank {len(shape)}: the C++ kernel does 1-D and 2-D only"
    return None


def _global_args(X: np.ndarray) -> tuple[np.ndarray, dict[str, list[int]]]:
    x = X[:, :, None, :] if X.ndim == 3 else X
    return x, {
        "kernel": [x.shape[2], x.shape[3]] if x.ndim == 4 else [1, 1],
        "pads": [0, 0, 0, 0],
        "strides": [1, 1],
        "dilations": [1, 1],
    }


def _squeeze_1d(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return y[:, :, 0, :] if X.ndim == 3 else y


@kernels.register("GlobalAveragePool", versions=(1, 22), dtypes=FLOAT, check=_check_global)
def global_average_pool(X: np.ndarray, *, threads: int = 0) -> np.ndarray:
    """Mean over all spatial positions: (N, C, 1, ...)."""
    x, args = _global_args(X)
    return _squeeze_1d(X, native.avg_pool2d(x, threads=threads, **args))


@kernels.register("GlobalMaxPool", versions=(1, 22), dtypes=FLOAT, check=_check_global)
def global_max_pool(X: np.ndarray, *, threads: int = 0) -> np.ndarray:
    """Max over all spatial positions: (N, C, 1, ...)."""
    x, args = _global_args(X)
    return _squeeze_1d(X, native.max_pool2d(x, threads=threads, **args))
