"""The detection heads' ops: NonMaxSuppression, RoiAlign (vectorised) and MaxRoiPool.

onnx's reference versions loop in Python per box pair and per sample (a YOLO-sized NMS took
0.3-0.5 s, a 100-RoI RoiAlign 3 s, against milliseconds in onnxruntime). Semantics are
onnxruntime's CPU kernels (which onnx's reference ops mirror):

* NonMaxSuppression keeps, per batch and class, the boxes scoring above
  ``score_threshold`` (when given) greedily by score (ties: lower index first), dropping each
  box whose IoU with a kept one is above ``iou_threshold``; boxes with no positive
  intersection or area never suppress. Corners may come in either order.
* RoiAlign averages (or, as onnxruntime does, takes the max of the weighted corner values
  of) ``sampling_ratio`` (or ``ceil(size / output_size)``) bilinear samples per bin.
  Bilinear sampling is separable, so an average is two small matrix products per RoI over
  the window it reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import attr_in, factory
from onnxep.reference._registry import kernels

__all__: list[str] = []


# --- NonMaxSuppression -------------------------------------------------------------------------
def _edges(boxes: np.ndarray, center_point_box: int) -> tuple[np.ndarray, ...]:
    """x_min, x_max, y_min, y_max and area of each box (N, 4), in the boxes' float type."""
    if center_point_box:
        half_w, half_h = boxes[:, 2] / 2, boxes[:, 3] / 2
        x_min, x_max = boxes[:, 0] - half_w, boxes[:, 0] + half_w
        y_min, y_max = boxes[:, 1] - half_h, boxes[:, 1] + half_h
    else:
        x_min, x_max = np.minimum(boxes[:, 1], boxes[:, 3]), np.maximum(boxes[:, 1], boxes[:, 3])
        y_min, y_max = np.minimum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 0], boxes[:, 2])
    return x_min, x_max, y_min, y_max, (x_max - x_min) * (y_max - y_min)


def _suppressed(edges: tuple[np.ndarray, ...], top: int, rest: np.ndarray, iou: float) -> Any:
    """Which boxes of ``rest`` the kept box ``top`` suppresses."""
    x_min, x_max, y_min, y_max, area = edges
    width = np.minimum(x_max[rest], x_max[top]) - np.maximum(x_min[rest], x_min[top])
    height = np.minimum(y_max[rest], y_max[top]) - np.maximum(y_min[rest], y_min[top])
    inter = width * height
    union = area[rest] + area[top] - inter
    overlap = (width > 0) & (height > 0) & (inter > 0) & (area[rest] > 0) & (union > 0)
    return overlap & (area[top] > 0) & (inter / np.where(overlap, union, 1) > iou)


def _greedy(edges: tuple[np.ndarray, ...], order: np.ndarray, iou: float, limit: int) -> list[int]:
    """Indices kept from ``order`` (best first): each drops what it overlaps too much."""
    kept: list[int] = []
    while order.size and len(kept) < limit:
        top, order = int(order[0]), order[1:]
        kept.append(top)
        if order.size:
            order = order[~_suppressed(edges, top, order, iou)]
    return kept


def _scalar(value: Any, default: Any) -> Any:
    if value is None or np.size(value) == 0:
        return default
    return np.asarray(value).reshape(-1)[0]


@kernels.register(
    "NonMaxSuppression", versions=(10, 11), dtypes=("float32", "int64"), host_inputs=(2, 3, 4)
)
def non_max_suppression(
    boxes: Any,
    scores: Any,
    max_output_boxes_per_class: Any = None,
    iou_threshold: Any = None,
    score_threshold: Any = None,
    *,
    center_point_box: int = 0,
) -> np.ndarray:
    """Selected (batch, class, box) indices, int64 [selected, 3]."""
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    limit = max(int(_scalar(max_output_boxes_per_class, 0)), 0)
    iou = np.float32(_scalar(iou_threshold, 0.0))
    threshold = _scalar(score_threshold, None)
    selected: list[tuple[int, int, int]] = []
    for batch in range(boxes.shape[0] if limit else 0):
        edges = _edges(boxes[batch], center_point_box)
        for cls in range(scores.shape[1]):
            score = scores[batch, cls]
            candidates = (
                np.arange(score.size) if threshold is None else np.flatnonzero(score > threshold)
            )
            order = candidates[np.argsort(-score[candidates], kind="stable")]
            selected += [(batch, cls, box) for box in _greedy(edges, order, iou, limit)]
    return np.array(selected, dtype=np.int64).reshape(-1, 3)


# --- RoiAlign ---------------------------------------------------------------------------------
def _samples(start: Any, bin_size: Any, grid: int, pooled: int) -> np.ndarray:
    """Sample positions (pooled, grid) along one axis, in onnxruntime's float32 arithmetic."""
    f32 = np.float32
    bins = np.arange(pooled, dtype=f32)[:, None] * f32(bin_size)
    steps = (np.arange(grid, dtype=f32) + f32(0.5))[None, :] * f32(bin_size) / f32(grid)
    return (f32(start) + bins) + steps


def _corners(pos: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Low and high neighbours and their weights for each sample (0 outside [-1, size])."""
    valid = (pos >= -1.0) & (pos <= size)
    pos = np.maximum(pos, 0)
    low = pos.astype(np.int64)
    clamp = low >= size - 1
    low = np.where(clamp, size - 1, low)
    high = np.where(clamp, size - 1, low + 1)
    frac = np.where(clamp, np.float32(0), pos - low.astype(np.float32))
    return low, high, np.where(valid, 1 - frac, 0), np.where(valid, frac, 0)


def _axis_matrix(corners: tuple[np.ndarray, ...], size: int) -> np.ndarray:
    """(pooled, size) weights: each bin's samples' bilinear weights, summed per pixel."""
    low, high, w_low, w_high = corners
    pooled = low.shape[0]
    rows = np.arange(pooled)[:, None] * size
    flat = np.concatenate([(rows + low).ravel(), (rows + high).ravel()])
    weights = np.concatenate([w_low.ravel(), w_high.ravel()])
    return np.bincount(flat, weights, minlength=pooled * size).reshape(pooled, size)


def _roi_average(x: np.ndarray, ys: tuple[np.ndarray, ...], xs: tuple[np.ndarray, ...]) -> Any:
    """The bins' sample sums, as (pooled_h, H) @ x (C, H, W) @ (W, pooled_w), windowed."""
    c, height, width = x.shape
    my, mx = _axis_matrix(ys, height), _axis_matrix(xs, width)
    rows, cols = np.flatnonzero(my.any(0)), np.flatnonzero(mx.any(0))
    if not rows.size or not cols.size:
        return np.zeros((c, my.shape[0], mx.shape[0]), np.float32)
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    window = x[:, r0:r1, c0:c1]  # (C, h, w)
    along_h = my[:, r0:r1].astype(np.float32) @ window.transpose(1, 0, 2).reshape(r1 - r0, -1)
    along_w = along_h.reshape(-1, c1 - c0) @ mx[:, c0:c1].T.astype(np.float32)
    return along_w.reshape(my.shape[0], c, mx.shape[0]).transpose(1, 0, 2)


def _roi_max(x: np.ndarray, ys: tuple[np.ndarray, ...], xs: tuple[np.ndarray, ...]) -> Any:
    """onnxruntime's max mode: the max over samples of the max weighted corner value."""
    y_lo, y_hi, wy_lo, wy_hi = (a.ravel() for a in ys)
    x_lo, x_hi, wx_lo, wx_hi = (a.ravel() for a in xs)
    best = None
    for yi, wy in ((y_lo, wy_lo), (y_hi, wy_hi)):
        for xi, wx in ((x_lo, wx_lo), (x_hi, wx_hi)):
            weighted = x[:, yi[:, None], xi[None, :]] * (wy[:, None] * wx[None, :])
            best = weighted if best is None else np.maximum(best, weighted)
    (ph, gh), (pw, gw) = ys[0].shape, xs[0].shape
    return best.reshape(x.shape[0], ph, gh, pw, gw).max(axis=(2, 4))


@kernels.register(
    "RoiAlign",
    versions=(10, 16, 22),
    dtypes=("float32", "int64"),
    check=attr_in("mode", ("avg", "max"), "avg"),
    factory=True,
)
@factory(
    mode="avg",
    output_height=1,
    output_width=1,
    sampling_ratio=0,
    spatial_scale=1.0,
    coordinate_transformation_mode="half_pixel",
)
def roi_align(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., np.ndarray]:
    """Bilinear RoI pooling to (num_rois, C, output_height, output_width)."""
    # before opset 16 there was no such attribute; the behaviour was output_half_pixel
    modern = info.node.key.since_version >= 16
    half_pixel = modern and attrs["coordinate_transformation_mode"] == "half_pixel"
    pooled_h, pooled_w = attrs["output_height"], attrs["output_width"]
    ratio, scale, mode = attrs["sampling_ratio"], np.float32(attrs["spatial_scale"]), attrs["mode"]
    pool = _roi_average if mode == "avg" else _roi_max

    def run(X: Any, rois: Any, batch_indices: Any) -> np.ndarray:
        X, rois = np.asarray(X, np.float32), np.asarray(rois, np.float32)
        height, width = X.shape[2:]
        out = np.empty((rois.shape[0], X.shape[1], pooled_h, pooled_w), np.float32)
        offset = np.float32(0.5 if half_pixel else 0.0)
        for r, (roi, batch) in enumerate(zip(rois, np.asarray(batch_indices))):
            x0, y0, x1, y1 = roi * scale - offset
            roi_w, roi_h = x1 - x0, y1 - y0
            if not half_pixel:
                roi_w, roi_h = max(roi_w, np.float32(1)), max(roi_h, np.float32(1))
            bin_h, bin_w = roi_h / np.float32(pooled_h), roi_w / np.float32(pooled_w)
            grid_h = ratio if ratio > 0 else math.ceil(roi_h / pooled_h)
            grid_w = ratio if ratio > 0 else math.ceil(roi_w / pooled_w)
            if grid_h <= 0 or grid_w <= 0:
                out[r] = 0
                continue
            ys = _corners(_samples(y0, bin_h, grid_h, pooled_h), height)
            xs = _corners(_samples(x0, bin_w, grid_w, pooled_w), width)
            out[r] = pool(X[int(batch)], ys, xs)
            if mode == "avg":
                out[r] /= np.float32(grid_h * grid_w)
        return out

    return run


# --- MaxRoiPool -------------------------------------------------------------------------------
def _c_round(v: np.ndarray) -> np.ndarray:
    """C's ``round``: halves away from zero (numpy rounds them to even)."""
    return np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))


def _bins(start: int, size: int, pooled: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of each of ``pooled`` bins over ``size`` cells from ``start``, clipped."""
    step = np.float32(size) / np.float32(pooled)
    index = np.arange(pooled, dtype=np.float32)
    lo = np.floor(index * step).astype(np.int64) + start
    hi = np.ceil((index + 1) * step).astype(np.int64) + start
    return np.clip(lo, 0, limit), np.clip(hi, 0, limit)


@kernels.register("MaxRoiPool", versions=(1, 22), dtypes=("float32", "float64", "float16"))
def max_roi_pool(
    X: Any, rois: Any, *, pooled_shape: tuple[int, int], spatial_scale: float = 1.0
) -> np.ndarray:
    """Max over each of pooled_shape bins of each RoI ``[batch, x1, y1, x2, y2]`` (corners
    scaled by ``spatial_scale`` and rounded, the RoI at least 1x1; an empty bin is 0), as
    onnxruntime's kernel bins it; one numpy max per RoI and bin, over all channels (onnx's
    reference has no MaxRoiPool). onnxruntime starts each max at float32's smallest positive
    number (Caffe's old bug), so a bin of only negative values gives it ~1.2e-38 where this
    gives the max the spec asks for."""
    x, boxes = np.asarray(X), np.asarray(rois, np.float32)
    pooled_h, pooled_w = pooled_shape
    n, c, height, width = x.shape
    out = np.zeros((boxes.shape[0], c, pooled_h, pooled_w), x.dtype)
    corners = _c_round(boxes[:, 1:] * np.float32(spatial_scale)).astype(np.int64)
    for r, (batch, (x1, y1, x2, y2)) in enumerate(zip(boxes[:, 0].astype(np.int64), corners)):
        if not 0 <= batch < n:
            raise ValueError(f"MaxRoiPool: RoI {r} names batch {batch}, the input has {n}")
        h0, h1 = _bins(y1, max(y2 - y1 + 1, 1), pooled_h, height)
        w0, w1 = _bins(x1, max(x2 - x1 + 1, 1), pooled_w, width)
        for i in np.flatnonzero(h1 > h0):
            rows = x[batch, :, h0[i] : h1[i]].max(axis=1)  # (C, W)
            for j in np.flatnonzero(w1 > w0):
                out[r, :, i, j] = rows[:, w0[j] : w1[j]].max(axis=1)
    return out
