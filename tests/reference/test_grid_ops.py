"""GridSample, hand-written, against onnxruntime and onnx's evaluator (tiny inputs: it loops)."""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest

import onnxep

from .helpers import check, hand_written_nodes, make_model, rand

PADDINGS = ("zeros", "border", "reflection")
MODES_16 = ("bilinear", "nearest", "bicubic")
MODES_20 = ("linear", "nearest", "cubic")


def _grid(*shape: int, seed: int = 1, reach: float = 1.4, dtype=np.float32) -> np.ndarray:
    """Coordinates in [-reach, reach] (outside [-1, 1] too), a few exactly on -1, 0 and 1."""
    grid = rand(*shape, seed=seed, low=-reach, high=reach).astype(np.float64)
    flat = grid.reshape(-1)
    flat[::7] = np.resize([-1.0, 0.0, 1.0], flat[::7].shape)
    return grid.astype(dtype)


def _combos(modes: tuple[str, ...], *, ort: bool = False) -> list:
    """Every mode x padding_mode x align_corners. onnxruntime (like PyTorch) clamps only the
    taps in cubic + border, never the coordinate, where onnx's reference op (followed here)
    first clamps the coordinate to [0, size - 1]: those cases are left to the evaluator."""
    return [
        pytest.param(m, p, a, id=f"{m}-{p}-align{a}")
        for m, p, a in itertools.product(modes, PADDINGS, (0, 1))
        if not (ort and "cubic" in m and p == "border")
    ]


@pytest.mark.parametrize(("mode", "padding", "align"), _combos(MODES_20))
def test_4d_against_evaluator(mode: str, padding: str, align: int) -> None:
    inputs = {"X": rand(1, 2, 5, 6), "grid": _grid(1, 4, 3, 2)}
    check(
        "GridSample", inputs, 20, mode=mode, padding_mode=padding, align_corners=align,
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip


@pytest.mark.parametrize(("mode", "padding", "align"), _combos(MODES_20))
def test_5d_against_evaluator(mode: str, padding: str, align: int) -> None:
    inputs = {"X": rand(1, 2, 3, 4, 5, seed=2), "grid": _grid(1, 2, 2, 3, 3, seed=3)}
    check(
        "GridSample", inputs, 20, mode=mode, padding_mode=padding, align_corners=align,
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip


@pytest.mark.parametrize("mode", MODES_20)
@pytest.mark.parametrize("padding", PADDINGS)
def test_3d_and_opset_22_against_evaluator(mode: str, padding: str) -> None:
    inputs = {"X": rand(2, 3, 7, seed=4), "grid": _grid(2, 5, 1, seed=5, reach=2.5)}
    check("GridSample", inputs, 22, mode=mode, padding_mode=padding, atol=1e-5)


@pytest.mark.parametrize("align", [0, 1])
@pytest.mark.parametrize("padding", PADDINGS)
def test_nearest_rounds_half_to_even(padding: str, align: int) -> None:
    size = 5
    # denormalised coordinates -2.5 .. 6.5 in halves: every rounding tie, inside and outside
    x = np.arange(-2.5, 7.0, 0.5)
    n = 2 * x / (size - 1) - 1 if align else (2 * x + 1) / size - 1
    grid = np.stack([n, np.zeros_like(n)], -1).reshape(1, 1, -1, 2).astype(np.float32)
    inputs = {"X": np.arange(size * 3, dtype=np.float32).reshape(1, 1, 3, size), "grid": grid}
    check(
        "GridSample", inputs, 20, mode="nearest", padding_mode=padding, align_corners=align
    )  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("mode", MODES_20)
def test_float16_and_float64_against_evaluator(mode: str, dtype) -> None:
    # coordinates on a coarse lattice, exact in float16 (the evaluator denormalises in it)
    grid = np.round(_grid(1, 3, 4, 2, seed=6) * 8) / 8
    inputs = {"X": rand(1, 2, 5, 6, dtype=dtype), "grid": grid.astype(dtype)}
    tol = 2e-2 if dtype == np.float16 else 1e-6
    check("GridSample", inputs, 20, mode=mode, padding_mode="reflection", rtol=tol, atol=tol)


# --- onnxruntime: opset 16's names, bigger inputs, several batches ----------------------------
needs_ort = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="compared with onnxruntime"
)


@needs_ort
@pytest.mark.parametrize(("mode", "padding", "align"), _combos(MODES_16, ort=True))
def test_opset_16_against_onnxruntime(mode: str, padding: str, align: int) -> None:
    inputs = {"X": rand(2, 3, 7, 9, seed=7), "grid": _grid(2, 5, 6, 2, seed=8, reach=2.2)}
    check(
        "GridSample", inputs, 16, oracle="ort", mode=mode, padding_mode=padding,
        align_corners=align, rtol=1e-4, atol=1e-5,
    )  # fmt: skip


@needs_ort
@pytest.mark.parametrize(("mode", "padding", "align"), _combos(MODES_20, ort=True))
def test_opset_20_against_onnxruntime(mode: str, padding: str, align: int) -> None:
    inputs = {"X": rand(2, 3, 8, 6, seed=9), "grid": _grid(2, 7, 5, 2, seed=10, reach=3.5)}
    check(
        "GridSample", inputs, 20, oracle="ort", mode=mode, padding_mode=padding,
        align_corners=align, rtol=1e-4, atol=1e-5,
    )  # fmt: skip


@needs_ort
@pytest.mark.parametrize(("mode", "padding", "align"), _combos(("linear", "nearest")))
def test_5d_against_onnxruntime(mode: str, padding: str, align: int) -> None:
    inputs = {"X": rand(2, 3, 4, 5, 6, seed=11), "grid": _grid(2, 3, 4, 5, 3, seed=12)}
    check(
        "GridSample", inputs, 20, oracle="ort", mode=mode, padding_mode=padding,
        align_corners=align, rtol=1e-4, atol=1e-5,
    )  # fmt: skip


@needs_ort
def test_spatial_transformer_sized_input_against_onnxruntime() -> None:
    inputs = {"X": rand(1, 32, 64, 64, seed=13), "grid": _grid(1, 64, 64, 2, seed=14)}
    check("GridSample", inputs, 16, oracle="ort", rtol=1e-4, atol=1e-5)


# --- declines -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("opset", "mode", "dtype"),
    [(16, "linear", np.float32), (20, "bilinear", np.float32), (20, "linear", np.int32)],
)
def test_declines_other_mode_names_and_dtypes(opset: int, mode: str, dtype) -> None:
    inputs = {"X": rand(1, 1, 3, 3, dtype=dtype), "grid": _grid(1, 2, 2, 2)}
    model = make_model("GridSample", inputs, opset, mode=mode)
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    assert not any(hand_written_nodes(session).values())
