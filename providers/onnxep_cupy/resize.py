"""Resize (nearest and linear), one axis at a time.

Source indices and weights are computed per axis on the host (a few hundred numbers), then
each resized axis is a gather (nearest) or two gathers and a lerp (linear): multilinear
interpolation is separable, so this equals ONNX's N-linear mode. Cubic, antialiasing and
``tf_crop_and_resize`` are declined with a reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep_cupy._backend import xp_of
from onnxep_cupy._registry import FLOATS, kernels

__all__ = ["resize", "source_coordinates"]

_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric")


def _check(info: NodeInfo) -> str | None:
    a = info.attrs
    if a.get("mode", "nearest") not in ("nearest", "linear"):
        return f"mode={a.get('mode')} is not supported (nearest, linear)"
    if a.get("coordinate_transformation_mode", "half_pixel") not in _MODES:
        return (
            f"coordinate_transformation_mode={a['coordinate_transformation_mode']} is not supported"
        )
    if a.get("antialias", 0) and a.get("mode") == "linear":
        return "antialias=1 is not supported"
    return None


def source_coordinates(n_in: int, n_out: int, scale: float, mode: str) -> np.ndarray:
    """Where each output index samples the input axis (ONNX coordinate transformations)."""
    x = np.arange(n_out, dtype=np.float64)
    if mode == "asymmetric":
        return x / scale
    if mode == "align_corners":  # onnx uses the unrounded resized length, n_in * scale
        span = n_in * scale - 1
        return np.zeros(n_out) if n_out == 1 or span == 0 else x * (n_in - 1) / span
    if mode == "pytorch_half_pixel" and n_out == 1:
        return np.zeros(n_out)
    if mode == "half_pixel_symmetric":
        adjustment = n_out / (scale * n_in)
        offset = n_in / 2 * (1 - adjustment)
        return offset + (x + 0.5) / scale - 0.5
    return (x + 0.5) / scale - 0.5


def _nearest(coords: np.ndarray, rule: str, n_in: int) -> np.ndarray:
    if rule == "round_prefer_ceil":
        idx = np.floor(coords + 0.5)
    elif rule == "floor":
        idx = np.floor(coords)
    elif rule == "ceil":
        idx = np.ceil(coords)
    else:  # round_prefer_floor
        idx = np.ceil(coords - 0.5)
    return np.clip(idx, 0, n_in - 1).astype(np.int64)


def _out_sizes(
    shape: tuple[int, ...], scales: Any, sizes: Any, axes: tuple[int, ...] | None, policy: str
) -> tuple[list[int], list[float]]:
    rank = len(shape)
    axes = tuple(a % rank for a in axes) if axes else tuple(range(rank))
    out, scale = list(shape), [1.0] * rank
    if sizes is not None and np.asarray(sizes).size:
        want = [int(v) for v in np.asarray(sizes).reshape(-1)]
        ratios = [want[i] / shape[a] for i, a in enumerate(axes)]
        if policy in ("not_larger", "not_smaller"):
            r = min(ratios) if policy == "not_larger" else max(ratios)
            ratios = [r] * len(axes)
            want = [int(np.floor(r * shape[a] + 0.5)) for a in axes]
        for i, a in enumerate(axes):
            out[a], scale[a] = want[i], ratios[i]
    else:
        given = [float(v) for v in np.asarray(scales).reshape(-1)]
        for i, a in enumerate(axes):
            scale[a] = given[i]
            out[a] = int(np.floor(shape[a] * given[i]))
    return out, scale


@kernels.register(
    "Resize", versions=(11, 13, 18, 19), dtypes=FLOATS, host_inputs=(1, 2, 3), check=_check
)
def resize(
    X: Any,
    roi: Any = None,
    scales: Any = None,
    sizes: Any = None,
    *,
    antialias: int = 0,
    axes: tuple[int, ...] | None = None,
    coordinate_transformation_mode: str = "half_pixel",
    cubic_coeff_a: float = -0.75,
    exclude_outside: int = 0,
    extrapolation_value: float = 0.0,
    keep_aspect_ratio_policy: str = "stretch",
    mode: str = "nearest",
    nearest_mode: str = "round_prefer_floor",
) -> Any:
    """Nearest or (multi)linear resize of any axes."""
    xp = xp_of(X)
    out, scale = _out_sizes(tuple(X.shape), scales, sizes, axes, keep_aspect_ratio_policy)
    y = X
    for axis, (n_in, n_out) in enumerate(zip(X.shape, out)):
        if n_in == n_out and scale[axis] == 1.0:
            continue
        coords = source_coordinates(n_in, n_out, scale[axis], coordinate_transformation_mode)
        if mode == "nearest":
            y = xp.take(y, xp.asarray(_nearest(coords, nearest_mode, n_in)), axis=axis)
            continue
        low = np.floor(coords)
        weight = (coords - low).astype(np.float32)
        i0 = np.clip(low, 0, n_in - 1).astype(np.int64)
        i1 = np.clip(low + 1, 0, n_in - 1).astype(np.int64)
        w = xp.asarray(weight).reshape((-1,) + (1,) * (X.ndim - axis - 1))
        a, b = xp.take(y, xp.asarray(i0), axis=axis), xp.take(y, xp.asarray(i1), axis=axis)
        y = (a + (b.astype(np.float32) - a) * w).astype(X.dtype, copy=False)
    return y
