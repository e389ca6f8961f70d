"""GridSample, vectorised over every output point.

onnx's reference op loops in Python per output pixel and channel (a (1, 32, 64, 64) input
sampled on a 64x64 grid took about 30 s, against milliseconds in onnxruntime). Here every
output point's integer taps and weights are computed as arrays, one axis at a time, and the
input (channels last) is gathered once per tap combination and summed.

Semantics are onnx's reference op (and onnxruntime's CPU kernel, which it mirrors):

* The grid's last axis holds (x, y[, z]): the coordinate of the *last* spatial axis first.
  A normalised coordinate ``n`` maps to ``(n + 1) / 2 * (size - 1)`` with
  ``align_corners`` and to ``((n + 1) * size - 1) / 2`` without.
* ``nearest`` rounds half to even (as numpy's ``rint``) before the padding is applied.
* A coordinate outside ``[0, size - 1]`` (``align_corners``) or ``[-0.5, size - 0.5]``
  is clamped to ``[0, size - 1]`` (``border``) or reflected back in by those bounds
  (``reflection``); ``zeros`` leaves it. (onnxruntime, like PyTorch, does not clamp the
  coordinate in ``cubic`` + ``border``, only the taps, so its results differ there; the
  reference op's rule is kept, as for every other combination.)
* ``linear`` reads taps ``floor(x)`` and ``floor(x) + 1``, ``cubic`` taps ``floor(x) - 1``
  to ``floor(x) + 2`` with Keys' coefficients (A = -0.75). A tap outside the input reads 0
  (``zeros``), the nearest edge pixel (``border``), or its reflection (``reflection``).
* Opset 16 names the modes ``bilinear``/``nearest``/``bicubic`` and takes 4-D input only;
  opset 20 and 22 name them ``linear``/``nearest``/``cubic`` and take any rank (4-D and
  5-D in practice; every mode is implemented for every rank).

float16 input is computed in float32, float32 in float32, float64 in float64 (the
coordinates in float64 only for a float64 grid). Declined (onnx's op runs them): mode or
padding_mode names the version does not define, and non-float input (integer, bool,
string, complex, bfloat16) via ``dtypes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import factory
from onnxep.reference._registry import kernels

__all__: list[str] = []

_PADDINGS = ("zeros", "border", "reflection")
#: Each version's mode names -> the interpolation they select.
_MODES = {
    16: {"bilinear": "linear", "nearest": "nearest", "bicubic": "cubic"},
    20: {"linear": "linear", "nearest": "nearest", "cubic": "cubic"},
}


def _modes(info: NodeInfo) -> dict[str, str]:
    return _MODES[16 if info.node.key.since_version < 20 else 20]


def _check(default_mode: str) -> Callable[[NodeInfo], str | None]:
    def check(info: NodeInfo) -> str | None:
        modes = _modes(info)
        mode = info.attrs.get("mode", default_mode)
        if mode not in modes:
            return f"mode={mode!r} is not implemented (takes {sorted(modes)})"
        padding = info.attrs.get("padding_mode", "zeros")
        if padding not in _PADDINGS:
            return f"padding_mode={padding!r} is not implemented (takes {sorted(_PADDINGS)})"
        return None

    return check


def _reflect(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Reflect ``x`` by the near bound until it lies in [low, high] (onnx's _gs_reflect)."""
    span = high - low
    if span <= 0:
        return np.full_like(x, low)
    below, above = x < low, x > high
    dx = np.where(below, low - x, np.where(above, x - high, 0))
    flips = np.trunc(dx / span)
    rest = dx - flips * span
    even = flips % 2 == 0
    from_low, from_high = low + rest, high - rest
    reflected = np.where(below, np.where(even, from_low, from_high), x)
    return np.where(above, np.where(even, from_high, from_low), reflected)


def _cubic(t: np.ndarray) -> list[np.ndarray]:
    """Keys' cubic convolution weights (A = -0.75) of taps -1, 0, 1, 2 at offset t in [0, 1)."""
    a = -0.75
    u, v, w = t + 1, 1 - t, 2 - t
    return [
        ((a * u - 5 * a) * u + 8 * a) * u - 4 * a,
        ((a + 2) * t - (a + 3)) * t * t + 1,
        ((a + 2) * v - (a + 3)) * v * v + 1,
        ((a * w - 5 * a) * w + 8 * a) * w - 4 * a,
    ]


def _axis_taps(
    n: np.ndarray, size: int, mode: str, padding: str, align: bool, dtype: Any
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(index in [0, size), weight or None for 1) of each tap along one spatial axis."""
    x = (n + 1) / 2 * (size - 1) if align else ((n + 1) * size - 1) / 2
    if mode == "nearest":
        x = np.rint(x)
    low, high = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
    if padding == "border":
        x = np.where((x < low) | (x > high), np.clip(x, 0, size - 1), x)
    elif padding == "reflection":
        x = _reflect(x, low, high)
    if mode == "nearest":
        taps, weights = [np.nan_to_num(x).astype(np.int64)], [None]
    else:
        base = np.floor(x)
        t = (x - base).astype(dtype)
        base = np.nan_to_num(base).astype(np.int64)
        if mode == "linear":
            taps, weights = [base, base + 1], [1 - t, t]
        else:
            taps, weights = [base - 1, base, base + 1, base + 2], _cubic(t)
    out = []
    for tap, weight in zip(taps, weights):
        if padding == "zeros":
            inside = (tap >= 0) & (tap < size)
            weight = inside.astype(dtype) if weight is None else np.where(inside, weight, 0)
        elif padding == "reflection":
            tap = _reflect(tap.astype(np.float64), low, high).astype(np.int64)
        out.append((np.clip(tap, 0, size - 1), weight))
    return out


def _grid_sample(
    X: np.ndarray, grid: np.ndarray, mode: str, padding: str, align: bool
) -> np.ndarray:
    batch, channels, *spatial = X.shape
    rank = len(spatial)
    if grid.ndim != rank + 2 or grid.shape[-1] != rank or grid.shape[0] != batch:
        raise ValueError(
            f"GridSample: grid {grid.shape} does not fit input {X.shape} "
            f"(expected (N, ..., {rank}))"
        )
    out_spatial = grid.shape[1:-1]
    dtype = np.float64 if X.dtype == np.float64 else np.float32
    if batch * channels * int(np.prod(out_spatial)) == 0 or int(np.prod(spatial)) == 0:
        return np.zeros((batch, channels, *out_spatial), X.dtype)
    coord_dtype = np.float64 if grid.dtype == np.float64 else np.float32
    points = grid.reshape(batch, -1, rank).astype(coord_dtype, copy=False)
    # channels last, one row per (batch, input point)
    rows = np.moveaxis(X.reshape(batch, channels, -1), 1, 2).astype(dtype, copy=False)
    rows = rows.reshape(-1, channels)
    index = (np.arange(batch, dtype=np.int64) * int(np.prod(spatial)))[:, None]
    combos: list[tuple[np.ndarray, np.ndarray | None]] = [(np.zeros((1, 1), np.int64), None)]
    for axis, size in enumerate(spatial):  # grid's last component is the first axis' coord
        taps = _axis_taps(points[..., rank - 1 - axis], size, mode, padding, align, dtype)
        combos = [
            (
                flat * size + tap,
                w if weight is None else (weight if w is None else w * weight),
            )
            for flat, w in combos
            for tap, weight in taps
        ]
    out = np.zeros((batch, points.shape[1], channels), dtype)
    for flat, weight in combos:
        values = rows.take((flat + index).reshape(-1), axis=0).reshape(out.shape)
        if weight is None:
            out += values
        else:
            out += values * weight[..., None]
    result = np.moveaxis(out, 2, 1).reshape(batch, channels, *out_spatial)
    return result.astype(X.dtype, copy=False)


def _build(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., np.ndarray]:
    mode = _modes(info)[attrs["mode"]]
    padding, align = attrs["padding_mode"], bool(attrs["align_corners"])

    def run(X: Any, grid: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return _grid_sample(np.asarray(X), np.asarray(grid), mode, padding, align)

    return run


_DTYPES = ("float16", "float32", "float64")


@kernels.register(
    "GridSample", versions=(16,), dtypes=_DTYPES, check=_check("bilinear"), factory=True
)
@factory(align_corners=0, mode="bilinear", padding_mode="zeros")
def grid_sample_16(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., np.ndarray]:
    """Sample X (N, C, H, W) at grid (N, H_out, W_out, 2): (N, C, H_out, W_out)."""
    return _build(info, attrs)


@kernels.register(
    "GridSample", versions=(20, 22), dtypes=_DTYPES, check=_check("linear"), factory=True
)
@factory(align_corners=0, mode="linear", padding_mode="zeros")
def grid_sample(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., np.ndarray]:
    """Sample X (N, C, D1..Dr) at grid (N, D1_out..Dr_out, r): (N, C, D1_out..Dr_out)."""
    return _build(info, attrs)
