"""NonMaxSuppression, RoiAlign and MaxRoiPool, hand-written, against onnxruntime on random
detections."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import check, make_model, run_onnxep

pytest.importorskip("onnxruntime", reason="the detection kernels are compared with onnxruntime")


def _boxes(rng: np.random.Generator, batches: int, n: int, center: bool) -> np.ndarray:
    corner = rng.uniform(0, 100, (batches, n, 2))
    size = rng.uniform(0, 30, (batches, n, 2))
    size[:, ::17] = 0  # degenerate boxes never suppress
    if center:
        return np.concatenate([corner, size], -1).astype(np.float32)
    far = corner + size
    boxes = np.concatenate([corner, far], -1)
    boxes[:, ::5] = boxes[:, ::5][..., [2, 3, 0, 1]]  # corners in the other order
    return boxes.astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("center", [0, 1])
def test_non_max_suppression(seed: int, center: int) -> None:
    rng = np.random.default_rng(seed)
    batches, classes, n = 2, 3, int(rng.integers(1, 300))
    scores = rng.uniform(0, 1, (batches, classes, n)).astype(np.float32)
    scores[..., ::7] = 0.5  # ties: the lower index first
    inputs = {
        "boxes": _boxes(rng, batches, n, bool(center)),
        "scores": scores,
        "max": np.array([int(rng.integers(1, 40))], np.int64),
        "iou": np.array([rng.uniform(0.1, 0.8)], np.float32),
        "score": np.array([0.3], np.float32) if seed % 2 else None,
    }
    check(
        "NonMaxSuppression", inputs, 11, oracle="ort",
        constants=("max", "iou", "score"), center_point_box=center,
    )  # fmt: skip


def test_non_max_suppression_without_a_limit_selects_nothing() -> None:
    rng = np.random.default_rng(0)
    inputs = {"boxes": _boxes(rng, 1, 10, False), "scores": rng.uniform(0, 1, (1, 2, 10))}
    inputs["scores"] = inputs["scores"].astype(np.float32)
    (selected,) = check("NonMaxSuppression", inputs, 11, oracle="ort")
    assert selected.shape == (0, 3)


@pytest.mark.parametrize(
    ("opset", "attrs"),
    [
        (10, {}),
        (16, {}),
        (16, {"coordinate_transformation_mode": "output_half_pixel"}),
        (16, {"mode": "max", "sampling_ratio": 2}),
        (16, {"sampling_ratio": 3, "spatial_scale": 0.25, "output_height": 3}),
    ],
)
def test_roi_align(opset: int, attrs: dict) -> None:
    rng = np.random.default_rng(opset)
    x = rng.standard_normal((2, 5, 20, 24)).astype(np.float32)
    scale = attrs.get("spatial_scale", 1.0)
    start = rng.uniform(-4, 22, (30, 2)) / scale  # some RoIs hang over the edges
    rois = np.concatenate([start, start + rng.uniform(0, 12, (30, 2)) / scale], 1)
    inputs = {
        "x": x,
        "rois": rois.astype(np.float32),
        "batch": rng.integers(0, 2, 30).astype(np.int64),
    }
    attrs = {"output_height": 4, "output_width": 5, **attrs}
    check("RoiAlign", inputs, opset, oracle="ort", rtol=1e-5, atol=1e-5, **attrs)


def _rois(rng: np.random.Generator, n: int, batches: int, size: float) -> np.ndarray:
    corner = rng.uniform(-5, size, (n, 2))
    far = corner + rng.uniform(-2, size / 2, (n, 2))  # some malformed (end before start)
    batch = rng.integers(0, batches, (n, 1))
    return np.concatenate([batch, corner, far], 1).astype(np.float32)


@pytest.mark.parametrize(("pooled", "scale"), [((2, 2), 1.0), ((7, 7), 0.25), ((3, 5), 0.5)])
def test_max_roi_pool(pooled: tuple, scale: float) -> None:
    """Non-negative features (onnxruntime's max starts at 1.2e-38, see the next test)."""
    rng = np.random.default_rng(sum(pooled))
    x = rng.uniform(0, 4, (2, 6, 20, 24)).astype(np.float32)
    rois = _rois(rng, 30, 2, 24 / scale)
    inputs = {"x": x, "rois": rois}
    check("MaxRoiPool", inputs, 1, oracle="ort", pooled_shape=list(pooled), spatial_scale=scale)


def test_max_roi_pool_takes_the_max_of_negative_bins() -> None:
    x = -np.arange(1, 1 + 2 * 4 * 4, dtype=np.float32).reshape(1, 2, 4, 4)
    rois = np.array([[0, 0, 0, 3, 3], [0, 1.5, 0.5, 2.49, 2.5]], np.float32)
    (y,) = run_onnxep(
        make_model("MaxRoiPool", {"x": x, "rois": rois}, 22, pooled_shape=[2, 2]),
        {"x": x, "rois": rois},
    )
    # RoI 0: 4x4 in 2x2 bins; RoI 1: x from round(1.5)=2 to round(2.49)=2, y 1..3 (C's round)
    np.testing.assert_array_equal(y[0], x[0, :, ::2, ::2])
    np.testing.assert_array_equal(y[1, :, :, 0], x[0, :, [1, 2], 2].T)
    np.testing.assert_array_equal(y[1, :, :, 1], y[1, :, :, 0])
