"""Resize (nearest, linear) and Pad (constant, reflect, edge, wrap).

Nearest Resize and every Pad mode are offset tables for the gather kernel of
:mod:`onnxep_numba._gather`. Linear Resize is separable: one parallel 1-D interpolation
pass per resized axis (exactly the multilinear result). Coordinate transforms follow the
ONNX specification (half_pixel, half_pixel_symmetric, pytorch_half_pixel, align_corners,
asymmetric, tf_half_pixel_for_nearest); cubic, antialias, tf_crop_and_resize and
keep-aspect-ratio policies are declined at placement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np

from onnxep.graph import NodeInfo
from onnxep.registry import since_versions
from onnxep_numba._gather import gather_axes, source_strides
from onnxep_numba._jit import jit
from onnxep_numba._registry import FLOATS, SCALARS, all_checks, check_dtypes, contiguous, kernels

__all__ = ["pad", "resize"]

_TRANSFORMS = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nearest",
)


def _resize_check(info: NodeInfo) -> str | None:
    a = info.attrs
    if a.get("mode", "nearest") not in ("nearest", "linear"):
        return f"mode={a['mode']!r} is not implemented"
    if a.get("antialias", 0):
        return "antialias=1 is not implemented"
    transform = a.get("coordinate_transformation_mode", "half_pixel")
    if transform not in _TRANSFORMS:
        return f"coordinate_transformation_mode={transform!r} is not implemented"
    if a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        return f"keep_aspect_ratio_policy={a['keep_aspect_ratio_policy']!r} is not implemented"
    return None


def _source_coords(out: int, size: int, scale: float, transform: str) -> np.ndarray:
    """Where each output index along one axis samples the input (float64)."""
    x = np.arange(out, dtype=np.float64)
    width = scale * size
    if transform == "asymmetric":
        return x / scale
    if transform == "align_corners":
        return np.zeros(out) if width == 1 else x * (size - 1) / (width - 1)
    if transform == "pytorch_half_pixel":
        return np.full(out, -0.5) if width == 1 else (x + 0.5) / scale - 0.5
    if transform == "tf_half_pixel_for_nearest":
        return (x + 0.5) / scale
    if transform == "half_pixel_symmetric":
        offset = size / 2 * (1 - out / width)
        return offset + (x + 0.5) / scale - 0.5
    return (x + 0.5) / scale - 0.5


def _nearest(coords: np.ndarray, mode: str, size: int) -> np.ndarray:
    if mode == "floor":
        idx = np.floor(coords)
    elif mode == "ceil":
        idx = np.ceil(coords)
    elif mode == "round_prefer_ceil":
        idx = np.floor(coords + 0.5)
    else:
        idx = np.ceil(coords - 0.5)
    return np.clip(idx, 0, size - 1).astype(np.int64)


@jit
def _lerp(x, y, i0, i1, w):
    outer, _, inner = x.shape
    m = y.shape[1]
    for t in numba.prange(outer * m):
        o = t // m
        j = t % m
        a, b, f = i0[j], i1[j], w[j]
        for i in range(inner):
            y[o, j, i] = x[o, a, i] * (1.0 - f) + x[o, b, i] * f


def _plan(
    x: np.ndarray, scales: np.ndarray | None, sizes: np.ndarray | None, axes: Sequence[int]
) -> list[tuple[int, int, float]]:
    """(axis, output size, scale) for every axis."""
    axes = [a % x.ndim for a in axes] or list(range(x.ndim))
    plan = [(a, x.shape[a], 1.0) for a in range(x.ndim)]
    if sizes is not None and np.asarray(sizes).size:
        for a, n in zip(axes, np.asarray(sizes).reshape(-1)):
            plan[a] = (a, int(n), int(n) / x.shape[a] if x.shape[a] else 1.0)
    elif scales is not None:
        for a, s in zip(axes, np.asarray(scales, np.float64).reshape(-1)):
            plan[a] = (a, math.floor(x.shape[a] * float(s)), float(s))
    return plan


@kernels.register(
    "Resize",
    versions=(11, 13, 18, 19),
    check=all_checks(check_dtypes((0,), FLOATS), _resize_check),
    host_inputs=(1, 2, 3),
)
def resize(
    X: np.ndarray,
    roi: np.ndarray | None = None,
    scales: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
    *,
    antialias: int = 0,
    axes: tuple[int, ...] = (),
    coordinate_transformation_mode: str = "half_pixel",
    cubic_coeff_a: float = -0.75,
    exclude_outside: int = 0,
    extrapolation_value: float = 0.0,
    keep_aspect_ratio_policy: str = "stretch",
    mode: str = "nearest",
    nearest_mode: str = "round_prefer_floor",
) -> np.ndarray:
    """Resize with nearest or (multi)linear interpolation."""
    x = contiguous(X)
    plan = _plan(x, scales, sizes, axes)
    transform = coordinate_transformation_mode
    if mode == "nearest":
        strides = source_strides(x.shape)
        maps = [
            _nearest(_source_coords(out, x.shape[a], s, transform), nearest_mode, x.shape[a])
            * strides[a]
            if (out, s) != (x.shape[a], 1.0)
            else np.arange(out) * strides[a]
            for a, out, s in plan
        ]
        return gather_axes(x, maps)
    for a, out, s in plan:
        if (out, s) == (x.shape[a], 1.0):
            continue
        c = np.clip(_source_coords(out, x.shape[a], s, transform), 0, max(x.shape[a] - 1, 0))
        i0 = np.floor(c).astype(np.int64)
        i1 = np.minimum(i0 + 1, x.shape[a] - 1)
        outer = int(np.prod(x.shape[:a], dtype=np.int64))
        inner = int(np.prod(x.shape[a + 1 :], dtype=np.int64))
        y = np.empty((*x.shape[:a], out, *x.shape[a + 1 :]), dtype=x.dtype)
        if y.size:
            _lerp(x.reshape(outer, x.shape[a], inner), y.reshape(outer, out, inner), i0, i1, c - i0)
        x = y
    return x


def _pad_map(size: int, begin: int, end: int, mode: str) -> np.ndarray:
    src = np.arange(size + begin + end, dtype=np.int64) - begin
    if mode == "constant":
        return np.where((src >= 0) & (src < size), src, -1)
    if mode == "edge":
        return np.clip(src, 0, size - 1)
    if mode == "wrap":
        return src % size
    if size == 1:
        return np.zeros_like(src)
    period = 2 * (size - 1)
    m = src % period
    return np.where(m >= size, period - m, m)


def pad_array(
    x: np.ndarray, pads: Sequence[int], mode: str, value: float, axes: Sequence[int] | None = None
) -> np.ndarray:
    """Pad ``x``; ``pads`` lists all begins then all ends (of ``axes``, default every axis)."""
    x = contiguous(x)
    axes = [a % x.ndim for a in axes] if axes is not None else list(range(x.ndim))
    n = len(axes)
    begin, end = [0] * x.ndim, [0] * x.ndim
    for k, a in enumerate(axes):
        begin[a], end[a] = int(pads[k]), int(pads[k + n])
    strides = source_strides(x.shape)
    maps = []
    for a in range(x.ndim):
        m = _pad_map(x.shape[a], begin[a], end[a], mode)
        maps.append(np.where(m >= 0, m * strides[a], -1))
    return gather_axes(x, maps, value)


def _pad_check(info: NodeInfo) -> str | None:
    mode = info.attrs.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        return f"mode={mode!r} is not implemented"
    return None


@kernels.register("Pad", versions=(2,), check=all_checks(check_dtypes((0,), SCALARS), _pad_check))
def pad_v2(
    data: np.ndarray, *, mode: str = "constant", pads: tuple[int, ...] = (), value: float = 0.0
) -> np.ndarray:
    """Pad with ``pads`` and ``value`` as attributes."""
    return pad_array(data, pads, mode, value)


@kernels.register(
    "Pad",
    versions=since_versions("Pad", first=11),
    host_inputs=(1, 2, 3),
    check=all_checks(check_dtypes((0,), SCALARS), _pad_check),
)
def pad(
    data: np.ndarray,
    pads: np.ndarray,
    constant_value: np.ndarray | None = None,
    axes: np.ndarray | None = None,
    *,
    mode: str = "constant",
) -> np.ndarray:
    """Pad with ``pads``, ``constant_value`` and ``axes`` as inputs."""
    value = (
        0
        if constant_value is None or np.asarray(constant_value).size == 0
        else (np.asarray(constant_value).reshape(-1)[0])
    )
    listed = None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
    return pad_array(data, [int(p) for p in np.asarray(pads).reshape(-1)], mode, value, listed)
