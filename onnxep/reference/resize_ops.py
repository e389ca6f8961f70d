"""Resize (opsets 11-19) and its ancestors Upsample (7, 9) and Resize-10.

Resizing is separable: each resized axis maps its output indices to source coordinates
(``coordinate_transformation_mode``), picks source taps and weights (nearest, linear, cubic)
and gathers along that axis only. Antialiasing is left to onnx's op (declined by the check).
Upsample and Resize-10 follow onnxruntime: asymmetric coordinates, nearest rounds down
(up when downsampling, Resize-10 only), linear clamps at the border.

A linear resize of an integer tensor (the uint8/int8 ``Resize`` of a model quantised in
QOperator format, whose Upsample runs on the quantised values) truncates toward zero into
the input's type, as onnxruntime's CPU kernel does (onnx's reference op rounds instead, one
step off in about a third of the outputs). Truncation makes the last float bit matter, so
the common case, the last two axes of an NCHW tensor, repeats onnxruntime's float32 bilinear
arithmetic (:func:`_bilinear_truncated`) and matches it exactly; other integer linear
resizes interpolate separably in float64 (a value within 1e-3 of an integer counts as that
integer) and can be one step off where onnxruntime's float32 lands just below an integer.
Cubic integer resizes are left to onnx's op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import FLOATS, dtype_name
from onnxep.reference._registry import kernels

__all__: list[str] = []

_TRANSFORMS = (
    "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
    "asymmetric", "tf_crop_and_resize",
)  # fmt: skip
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _check(info: NodeInfo) -> str | None:
    a = info.attrs
    mode = a.get("mode", "nearest")
    if a.get("antialias", 0):
        return "antialias is left to onnx"
    if mode not in ("nearest", "linear", "cubic"):
        return f"mode={mode!r} is not implemented"
    if a.get("coordinate_transformation_mode", "half_pixel") not in _TRANSFORMS:
        return "unknown coordinate_transformation_mode"
    if a.get("nearest_mode", "round_prefer_floor") not in _NEAREST:
        return "unknown nearest_mode"
    if a.get("keep_aspect_ratio_policy", "stretch") not in ("stretch", "not_larger", "not_smaller"):
        return "unknown keep_aspect_ratio_policy"
    allowed = (*FLOATS, *_INTEGERS) if mode == "linear" else FLOATS
    if mode != "nearest" and dtype_name(info, 0) not in allowed:
        return f"{mode} resize of {dtype_name(info, 0)} is left to onnx"
    return None


_INTEGERS = ("int8", "uint8", "int32")  # the integer types onnxruntime resizes


def _working(x: np.ndarray, mode: str) -> np.ndarray:
    """The array to interpolate: float16 widens to float32 and integers to float64, unless
    nearest."""
    if mode == "nearest":
        return x
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float64)
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _narrowed(work: Any, dtype: np.dtype) -> np.ndarray:
    """The result in the input's type: integers truncate toward zero (a value within 1e-3 of
    an integer is that integer) and saturate."""
    work = np.asarray(work)
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(work.dtype, np.integer):
        info = np.iinfo(dtype)
        near = np.rint(work)
        work = np.clip(
            np.where(np.abs(work - near) < 1e-3, near, np.trunc(work)), info.min, info.max
        )
    return work.astype(dtype, copy=False)


def _source(ctm: str, out: int, size: int, scale: float, roi: tuple[float, float]) -> np.ndarray:
    """The source coordinate of each output index along one axis.

    As onnx's reference (and so the ONNX conformance data) computes it: the output length in
    the formulas is the fractional ``scale * size``, not the integer one onnxruntime uses.
    """
    y = np.arange(out, dtype=np.float64)
    width = scale * size
    if ctm == "align_corners":
        return np.zeros(out) if width == 1 else y * (size - 1) / (width - 1)
    if ctm == "asymmetric":
        return y / scale
    if ctm == "tf_crop_and_resize":
        start, end = roi
        if width == 1:
            return np.full(out, (end - start) * (size - 1) / 2 + start * (size - 1))
        return start * (size - 1) + y * (end - start) * (size - 1) / (width - 1)
    if ctm == "pytorch_half_pixel":
        return np.full(out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    if ctm == "half_pixel_symmetric":
        offset = size / 2 * (1 - out / width)
        return offset + (y + 0.5) / scale - 0.5
    return (y + 0.5) / scale - 0.5  # half_pixel


def _nearest(x: np.ndarray, rounding: str, size: int) -> np.ndarray:
    if rounding == "round_prefer_floor":
        idx = np.ceil(x - 0.5)
    elif rounding == "round_prefer_ceil":
        idx = np.floor(x + 0.5)
    elif rounding == "floor":
        idx = np.floor(x)
    else:
        idx = np.ceil(x)
    return np.clip(idx, 0, size - 1).astype(np.int64)


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic weights of the taps at floor(x) - 1 ... floor(x) + 2 (t = x - floor(x))."""
    d = np.stack([t + 1, t, 1 - t, 2 - t], axis=1)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, far)


def _taps(x: np.ndarray, size: int, a: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Source indices (out, k) and weights (out, k) of linear or cubic interpolation."""
    base = np.floor(x)
    t = x - base
    if a["mode"] == "linear":
        offsets, weights = np.array([0, 1]), np.stack([1 - t, t], axis=1)
    else:
        offsets, weights = np.array([-1, 0, 1, 2]), _cubic_weights(t, a["cubic_coeff_a"])
    index = base.astype(np.int64)[:, None] + offsets
    if a["exclude_outside"]:
        weights = np.where((index >= 0) & (index < size), weights, 0.0)
        weights /= weights.sum(axis=1, keepdims=True)
    return np.clip(index, 0, size - 1), weights


def _along(data: np.ndarray, axis: int, index: np.ndarray, weights: np.ndarray | None) -> Any:
    if weights is None:
        return np.take(data, index, axis=axis)
    shape = [1] * data.ndim
    shape[axis] = -1
    out = None
    for k in range(index.shape[1]):
        term = np.take(data, index[:, k], axis=axis) * weights[:, k].astype(data.dtype).reshape(
            shape
        )
        out = term if out is None else out + term
    return out


def _resize_axis(
    data: np.ndarray, axis: int, out: int, scale: float, roi: Any, a: dict[str, Any]
) -> Any:
    size = data.shape[axis]
    ctm = a["coordinate_transformation_mode"]
    x = _source(ctm, out, size, scale, roi)
    if a["mode"] == "nearest":
        y = _along(data, axis, _nearest(x, a["nearest_mode"], size), None)
    else:
        y = _along(data, axis, *_taps(x, size, a))
    if ctm == "tf_crop_and_resize":
        outside = (x < 0) | (x > size - 1)
        if outside.any():
            shape = [1] * data.ndim
            shape[axis] = -1
            y = np.where(outside.reshape(shape), np.asarray(a["extrapolation_value"], y.dtype), y)
    return y


def _targets(
    x: np.ndarray, scales: Any, sizes: Any, a: dict[str, Any]
) -> tuple[list[int], list[int], list[float]]:
    """Resized axes, their output lengths and scales (sizes or scales, aspect-ratio policy)."""
    rank = x.ndim
    axes = [int(d) % rank for d in a["axes"]] if a["axes"] else list(range(rank))
    if sizes is not None and np.size(sizes):
        outs = [int(s) for s in np.reshape(sizes, -1)]
        factors = [o / x.shape[d] for o, d in zip(outs, axes)]
        policy = a["keep_aspect_ratio_policy"]
        if policy != "stretch":
            scale = min(factors) if policy == "not_larger" else max(factors)
            factors = [scale] * len(axes)
            outs = [int(scale * x.shape[d] + 0.5) for d in axes]
        return axes, outs, factors
    factors = [float(s) for s in np.reshape(scales, -1)]
    return axes, [int(f * x.shape[d]) for f, d in zip(factors, axes)], factors


def _bilinear_params(
    ctm: str, out: int, size: int, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """onnxruntime's float32 source taps and weights along one axis of a bilinear resize:
    clamped coordinate, its two neighbours, and distances (0.5 each at the last pixel)."""
    f32 = np.float32
    y = np.arange(out, dtype=f32)
    if ctm == "align_corners":
        c = np.zeros(out, f32) if out == 1 else y * f32(size - 1) / f32(out - 1)
    elif ctm == "asymmetric":
        c = y / f32(scale)
    elif ctm == "pytorch_half_pixel" and out == 1:
        c = np.zeros(out, f32)
    else:  # half_pixel, pytorch_half_pixel
        c = (y + f32(0.5)) / f32(scale) - f32(0.5)
    c = np.clip(c, f32(0), f32(size - 1))
    first = np.minimum(c.astype(np.int64), size - 1)
    second = np.minimum(first + 1, size - 1)
    near, far = np.abs(c - first.astype(f32)), np.abs(c - second.astype(f32))
    edge = first == second
    near[edge], far[edge] = f32(0.5), f32(0.5)
    return first, second, near, far


def _bilinear_truncated(
    x: np.ndarray, outs: Sequence[int], factors: Sequence[float], ctm: str
) -> np.ndarray:
    """An integer bilinear resize of the last two axes with onnxruntime's arithmetic:
    float32 products of the 2-D weights summed in its order, truncated and saturated."""
    (h, w), (oh, ow) = x.shape[-2:], outs
    y1, y2, dy1, dy2 = _bilinear_params(ctm, oh, h, factors[0])
    x1, x2, dx1, dx2 = _bilinear_params(ctm, ow, w, factors[1])
    data = x.astype(np.float32)
    rows1, rows2 = y1[:, None], y2[:, None]
    result = (dx2[None, :] * dy2[:, None]) * data[..., rows1, x1] + (
        dx1[None, :] * dy2[:, None]
    ) * data[..., rows1, x2]
    result = result + (dx2[None, :] * dy1[:, None]) * data[..., rows2, x1]
    result = result + (dx1[None, :] * dy1[:, None]) * data[..., rows2, x2]
    info = np.iinfo(x.dtype)
    return np.clip(np.trunc(result), info.min, info.max).astype(x.dtype)


def _last_two_only(
    x: np.ndarray, axes: Sequence[int], outs: Sequence[int], factors: Sequence[float]
) -> tuple[list[int], list[float]] | None:
    """(outs, factors) of the last two axes when nothing else is resized, else None."""
    if x.ndim < 2:
        return None
    plan = {d: (o, f) for d, o, f in zip(axes, outs, factors)}
    for d in range(x.ndim - 2):
        if d in plan and (plan[d][0] != x.shape[d] or plan[d][1] != 1.0):
            return None
    last = [plan.get(d, (x.shape[d], 1.0)) for d in (x.ndim - 2, x.ndim - 1)]
    return [o for o, _ in last], [f for _, f in last]


def _integer_bilinear(
    x: np.ndarray, axes: Sequence[int], outs: Sequence[int], factors: Sequence[float], ctm: str
) -> np.ndarray | None:
    """onnxruntime's exact integer bilinear resize where it applies (linear mode, integer
    input, only the last two axes resized, no crop), else None."""
    if not np.issubdtype(x.dtype, np.integer) or ctm not in _BILINEAR_TRANSFORMS:
        return None
    last = _last_two_only(x, axes, outs, factors)
    return None if last is None else _bilinear_truncated(x, last[0], last[1], ctm)


_BILINEAR_TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


def _resize(x: Any, roi: Any, scales: Any, sizes: Any, a: dict[str, Any]) -> Any:
    x = np.asarray(x)
    axes, outs, factors = _targets(x, scales, sizes, a)
    if a["mode"] == "linear":
        exact = _integer_bilinear(x, axes, outs, factors, a["coordinate_transformation_mode"])
        if exact is not None:
            return exact
    crop = a["coordinate_transformation_mode"] == "tf_crop_and_resize"
    roi = np.reshape(roi, -1).astype(np.float64) if roi is not None and np.size(roi) else None
    work = _working(x, a["mode"])
    for i, (axis, out, factor) in enumerate(zip(axes, outs, factors)):
        pair = (0.0, 1.0) if roi is None else (roi[i], roi[i + len(axes)])
        if out == work.shape[axis] and factor == 1.0 and not crop:
            continue
        work = _resize_axis(work, axis, out, factor, pair, a)
    return _narrowed(work, x.dtype)


@kernels.register("Resize", versions=(11, 13, 18, 19), check=_check, host_inputs=(1, 2, 3))
def resize(
    X: Any, roi: Any = None, scales: Any = None, sizes: Any = None, *, antialias: int = 0,
    axes: Sequence[int] | None = None, coordinate_transformation_mode: str = "half_pixel",
    cubic_coeff_a: float = -0.75, exclude_outside: int = 0, extrapolation_value: float = 0.0,
    keep_aspect_ratio_policy: str = "stretch", mode: str = "nearest",
    nearest_mode: str = "round_prefer_floor",
) -> Any:  # fmt: skip
    """Resize by ``scales`` or to ``sizes`` with nearest, (multi)linear or cubic sampling."""
    attrs = {
        "axes": axes, "coordinate_transformation_mode": coordinate_transformation_mode,
        "cubic_coeff_a": cubic_coeff_a, "exclude_outside": exclude_outside,
        "extrapolation_value": extrapolation_value, "mode": mode, "nearest_mode": nearest_mode,
        "keep_aspect_ratio_policy": keep_aspect_ratio_policy,
    }  # fmt: skip
    return _resize(X, roi, scales, sizes, attrs)


def _legacy(x: Any, scales: Any, mode: str, downsample_ceil: bool) -> Any:
    """Upsample / Resize-10: asymmetric coordinates; nearest floors, linear clamps."""
    x = np.asarray(x)
    if mode == "linear":
        factors = [float(f) for f in np.reshape(scales, -1)]
        outs = [int(f * n) for f, n in zip(factors, x.shape)]
        exact = _integer_bilinear(x, range(x.ndim), outs, factors, "asymmetric")
        if exact is not None:
            return exact
    work = _working(x, mode)
    for axis, factor in enumerate(float(s) for s in np.reshape(scales, -1)):
        size, out = x.shape[axis], int(factor * x.shape[axis])
        if factor == 1.0:
            continue
        src = np.minimum(np.arange(out, dtype=np.float64) / factor, size - 1)
        if mode == "nearest":
            index = np.ceil(src) if downsample_ceil and factor < 1 else np.floor(src)
            work = np.take(work, np.minimum(index, size - 1).astype(np.int64), axis=axis)
        else:
            base = np.floor(src)
            index = np.stack([base, np.minimum(base + 1, size - 1)], 1).astype(np.int64)
            work = _along(work, axis, index, np.stack([1 - (src - base), src - base], 1))
    return _narrowed(work, x.dtype)


def _legacy_check(info: NodeInfo) -> str | None:
    mode = info.attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear"):
        return f"mode={mode!r} is not implemented"
    if mode == "linear" and dtype_name(info, 0) not in (*FLOATS, *_INTEGERS):
        return "linear upsampling of non-floats is left to onnx"
    return None


@kernels.register("Upsample", versions=(7,), check=_legacy_check)
def upsample_7(X: Any, *, mode: str = "nearest", scales: Sequence[float]) -> Any:
    """Upsample by the ``scales`` attribute (each >= 1)."""
    return _legacy(X, scales, mode, False)


@kernels.register("Upsample", versions=(9,), check=_legacy_check, host_inputs=(1,))
def upsample(X: Any, scales: Any, *, mode: str = "nearest") -> Any:
    """Upsample by the ``scales`` input (each >= 1)."""
    return _legacy(X, scales, mode, False)


@kernels.register("Resize", versions=(10,), check=_legacy_check, host_inputs=(1,))
def resize_10(X: Any, scales: Any, *, mode: str = "nearest") -> Any:
    """Resize-10: Upsample's sampling, nearest rounding up when downsampling (onnxruntime)."""
    return _legacy(X, scales, mode, True)
