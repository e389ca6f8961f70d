"""DeformConv, hand-written, against onnxruntime (and onnx's evaluator on tiny inputs: it
loops per output pixel and channel)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import onnxep
from onnxep.reference import ReferenceProvider

from .helpers import (
    assert_close,
    check,
    hand_written_nodes,
    make_model,
    rand,
    run_evaluator,
    run_onnxep,
    run_onnxruntime,
)


def _out(size: int, k: int, s: int, d: int, begin: int, end: int) -> int:
    return (size + begin + end - d * (k - 1) - 1) // s + 1


def _inputs(
    n: int = 1, c: int = 4, m: int = 6, size: tuple[int, int] = (7, 8),
    kernel: tuple[int, int] = (3, 3), *, strides=(1, 1), dilations=(1, 1), pads=(1, 1, 1, 1),
    group: int = 1, offset_group: int = 1, bias: bool = False, mask: bool = False,
    reach: float = 3.0, seed: int = 0, dtype=np.float32,
) -> dict:  # fmt: skip
    """Random inputs; offsets in [-reach, reach] push many samples past the borders."""
    out = [_out(size[a], kernel[a], strides[a], dilations[a], pads[a], pads[a + 2]) for a in (0, 1)]
    taps = kernel[0] * kernel[1]
    return {
        "X": rand(n, c, *size, seed=seed, dtype=dtype),
        "W": rand(m, c // group, *kernel, seed=seed + 1, dtype=dtype),
        "offset": rand(
            n, offset_group * taps * 2, *out, seed=seed + 2, low=-reach, high=reach
        ).astype(dtype),
        "B": rand(m, seed=seed + 3, dtype=dtype) if bias else None,
        "mask": rand(n, offset_group * taps, *out, seed=seed + 4, low=0, high=1, dtype=dtype)
        if mask
        else None,
    }


def _attrs(**config) -> dict:
    """The node attributes of a config of :func:`_inputs` (pads default to 1 there too)."""
    keys = ("strides", "dilations", "pads", "group", "offset_group")
    config = {"pads": (1, 1, 1, 1), **config}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if k in keys}


CONFIGS = {
    "plain": {},
    "no-pads": {"pads": (0, 0, 0, 0)},
    "asymmetric-pads": {"pads": (0, 2, 1, 0)},
    "strides": {"strides": (2, 3)},
    "dilations": {"dilations": (2, 1), "size": (9, 8)},
    "strides-dilations": {"strides": (2, 2), "dilations": (2, 3), "size": (11, 12)},
    "groups": {"group": 2},
    "offset-groups": {"offset_group": 2},
    "groups-and-offset-groups": {"group": 2, "offset_group": 4, "c": 8, "m": 4},
    "offset-groups-across-groups": {"group": 4, "offset_group": 2, "c": 8, "m": 8},
    "depthwise": {"group": 4, "offset_group": 4, "m": 4},
    "mask": {"mask": True},
    "mask-bias-groups": {"mask": True, "bias": True, "group": 2, "offset_group": 2},
    "kernel-1x1": {"kernel": (1, 1), "pads": (0, 0, 0, 0)},
    "kernel-2x3": {"kernel": (2, 3), "pads": (1, 0, 0, 1)},
    "batch": {"n": 3, "mask": True, "bias": True},
    "far-outside": {"reach": 12.0},
    "1x1-image": {"size": (1, 1), "kernel": (1, 1), "pads": (0, 0, 0, 0), "reach": 1.5},
}


@pytest.mark.parametrize("opset", [19, 22])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_against_onnxruntime(name: str, opset: int) -> None:
    config = CONFIGS[name]
    check(
        "DeformConv", _inputs(**config), opset, oracle="ort", rtol=1e-5, atol=1e-5,
        kernel_shape=list(config.get("kernel", (3, 3))), **_attrs(**config),
    )  # fmt: skip


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"mask": True, "bias": True, "strides": (2, 1), "dilations": (1, 2)},
        {"group": 2, "offset_group": 2, "pads": (0, 1, 2, 0)},
    ],
)
def test_against_evaluator(config: dict) -> None:
    inputs = _inputs(c=2 * config.get("group", 1), m=2, size=(4, 5), **config)
    check("DeformConv", inputs, 22, rtol=1e-5, atol=1e-5, **_attrs(**config))


def test_samples_on_and_past_the_borders() -> None:
    """Sample points exactly on -1, 0, H - 1 and H and just inside or outside them, where
    the bilinear corners leave the image one by one: every pairing of such rows and
    columns, one sample per output pixel of a 1x1 kernel (pixel (i, j) samples at
    (i + dh, j + dw)), over a batch of six images."""
    h, w = 4, 5
    rows = [-1.5, -1.0, -0.75, -0.25, 0.0, 0.5, 2.5, 3.0, 3.25, 3.75, 4.0, 4.5]
    cols = [-1.5, -1.0, -0.5, 0.0, 1.5, 4.0, 4.25, 4.999, 5.0, 5.5]
    points = np.array(list(itertools.product(rows, cols))).reshape(6, h, w, 2)
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), axis=-1)
    offset = (points - grid).transpose(0, 3, 1, 2).astype(np.float32)
    inputs = {"X": rand(6, 2, h, w, seed=3), "W": rand(3, 2, 1, 1, seed=4), "offset": offset}
    check("DeformConv", inputs, 22, oracle="ort", rtol=1e-6, atol=1e-6)
    check("DeformConv", inputs, 22, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [(1, 6), (6, 1), (1, 1)])
def test_height_or_width_one_follows_onnxruntime(size: tuple[int, int]) -> None:
    """onnx's op normalises the sample coordinate by H - 1 and W - 1 for GridSample and
    fails on a single row or column; onnxruntime (followed) samples it bilinearly."""
    inputs = _inputs(c=2, m=3, size=size, kernel=(1, 1), pads=(0, 0, 0, 0), reach=1.2)
    check("DeformConv", inputs, 22, oracle="ort", rtol=1e-6, atol=1e-6)
    model = make_model("DeformConv", inputs, 22)
    with pytest.raises(ValueError, match="NaN"):
        run_evaluator(model, inputs)


def test_mask_scales_each_sample() -> None:
    """A zero mask drops its tap; a NaN offset reads 0 (as a zero mask does)."""
    inputs = _inputs(mask=True, bias=True)
    inputs["mask"][:, 4] = 0
    model = make_model("DeformConv", inputs, 22, pads=[1, 1, 1, 1])
    expected = run_onnxep(model, inputs)[0]
    assert_close([expected], run_onnxruntime(model, inputs), 1e-5, 1e-5)
    inputs["offset"][:, 8:10] = np.nan  # tap 4's (dh, dw)
    assert_close(run_onnxep(model, inputs), [expected], 0, 0)


def test_inf_at_pixel_0_0_stays_there() -> None:
    """Neighbours outside the image read zeros. onnxruntime reads pixel (0, 0) with weight
    0 for them: an inf there makes every sample with such a neighbour NaN."""
    x = np.ones((1, 1, 3, 3), np.float32)
    x[0, 0, 0, 0] = np.inf
    offset = np.zeros((1, 2, 3, 3), np.float32)
    offset[0, 0, 2, 2] = 0.5  # pixel (2, 2) samples (2.5, 2): half of it below the image
    offset[0, 1, 1, 1] = 10.0  # pixel (1, 1) samples far right of the image
    inputs = {"X": x, "W": np.ones((1, 1, 1, 1), np.float32), "offset": offset}
    model = make_model("DeformConv", inputs, 22)
    expected = np.array([[np.inf, 1, 1], [1, 0, 1], [1, 1, 0.5]], np.float32)
    np.testing.assert_array_equal(run_onnxep(model, inputs)[0][0, 0], expected)
    theirs = run_onnxruntime(model, inputs)[0][0, 0]
    assert np.isnan(theirs[:, 2]).all() and np.isnan(theirs[2]).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float16_and_float64(dtype) -> None:
    """float64 runs in float64; float16 in float32, rounded at the end (onnxruntime has no
    float16 DeformConv on the CPU: compared with its float32 result)."""
    inputs = _inputs(mask=True, bias=True, group=2, dtype=dtype)
    model = make_model("DeformConv", inputs, 22, group=2, pads=[1, 1, 1, 1])
    actual = run_onnxep(model, inputs)[0]
    assert actual.dtype == dtype
    wide = {k: None if v is None else v.astype(np.float32) for k, v in inputs.items()}
    wide_model = make_model("DeformConv", wide, 22, group=2, pads=[1, 1, 1, 1])
    expected = run_onnxruntime(wide_model, wide)[0]
    tolerance = 1e-3 if dtype == np.float16 else 1e-5  # float16 rounds once, at the end
    np.testing.assert_allclose(actual, expected.astype(dtype), rtol=tolerance, atol=tolerance)


def test_constant_weights_and_bias() -> None:
    """Initializer weights are laid out once per node; runs with other inputs reuse them."""
    inputs = _inputs(bias=True, group=2, offset_group=2)
    attrs = _attrs(group=2, offset_group=2)
    model = make_model("DeformConv", inputs, 22, constants=["W", "B"], **attrs)
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    assert all(hand_written_nodes(session).values())
    for seed in (5, 6):
        feeds = {"X": rand(1, 4, 7, 8, seed=seed), "offset": rand(1, 36, 7, 8, seed=seed + 1)}
        expected = run_onnxruntime(model, {**inputs, **feeds})
        assert_close(session.run(None, feeds), expected, 1e-5, 1e-5)


def test_resnet_sized_layer() -> None:
    """The (1, 64, 56, 56) DCNv2 layer of the benchmark, against onnxruntime."""
    inputs = _inputs(c=64, m=64, size=(56, 56), mask=True, bias=True, reach=2.0)
    check("DeformConv", inputs, 19, oracle="ort", rtol=1e-4, atol=1e-4, **_attrs())


@pytest.mark.parametrize(
    ("shapes", "attrs"),
    [
        pytest.param(((1, 2, 6), (2, 2, 3), (1, 6, 4)), {}, id="1-D"),
        pytest.param(((1, 2, 4, 4, 4), (2, 2, 1, 1, 1), (1, 3, 4, 4, 4)), {}, id="3-D"),
        pytest.param(((1, 2, 4, 4), (2, 2, 1, 1), (1, 2, 4, 4)), {"pads": [0] * 6}, id="pads"),
    ],
)
def test_declines_other_ranks(shapes, attrs: dict) -> None:
    inputs = {name: rand(*shape) for name, shape in zip(("X", "W", "offset"), shapes)}
    model = make_model("DeformConv", inputs, 22, **attrs)
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    assert not any(hand_written_nodes(session).values())
    segment = session.plan.partition.segments[0]
    node = segment.nodes[0]
    reason = ReferenceProvider.kernels.lookup(node.key).check(segment.info(node))
    assert "only 2-D DeformConv" in reason


def test_mismatched_offset_is_refused() -> None:
    inputs = _inputs()
    inputs["offset"] = inputs["offset"][:, :, :-1]
    model = make_model("DeformConv", inputs, 22, pads=[1, 1, 1, 1])
    with pytest.raises(Exception, match="offset"):
        run_onnxep(model, inputs)


def test_empty_batch() -> None:
    inputs = {
        "X": np.zeros((0, 2, 4, 4), np.float32),
        "W": rand(3, 2, 3, 3),
        "offset": np.zeros((0, 18, 2, 2), np.float32),
    }
    check("DeformConv", inputs, 22, oracle="ort")
