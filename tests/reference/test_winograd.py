"""Winograd F(2x2, 3x3) convolution: against im2col on random geometries, and through a
session (constant 3x3 weights on a plane where it pays) against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from onnxep.reference import conv_ops, winograd

from .helpers import check, rand


def _im2col(x, w, b, begin, end, out):
    return conv_ops._conv_float(x, w, b, 1, [1, 1], [1, 1], begin, end, out)


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_im2col_on_random_geometry(seed, dtype):
    """Odd and even planes from 1x1 up, pads 0-2 on each side, batches, with and without
    bias: every output position, including the last row and column of odd planes."""
    rng = np.random.default_rng(seed)
    n, c, k = (int(v) for v in rng.integers(1, 4, 3))
    h, w = (int(v) for v in rng.integers(1, 13, 2))
    begin = [int(v) for v in rng.integers(0, 3, 2)]
    end = [int(v) for v in rng.integers(0, 3, 2)]
    out = [h + begin[0] + end[0] - 2, w + begin[1] + end[1] - 2]
    if min(out) < 1:
        out = [max(o, 1) for o in out]
        end = [o + 2 - s - b for o, s, b in zip(out, (h, w), begin)]
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weights = rng.standard_normal((k, c, 3, 3)).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype) if seed % 2 else None
    expected = _im2col(x, weights, bias, begin, end, out)
    got = winograd.conv3x3(x, winograd.transformed_filters(weights), bias, begin, out)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * 10)


def test_pays_only_where_measured_faster():
    assert winograd.pays(192, 256, (14, 14))
    assert winograd.pays(256, 256, (56, 56))
    assert not winograd.pays(128, 128, (28, 28))  # OpenBLAS runs its products on one core
    assert not winograd.pays(16, 64, (55, 55))
    assert not winograd.pays(512, 512, (7, 7))


def test_session_takes_the_winograd_path(monkeypatch):
    """A Conv with constant 3x3 weights on a 14x14 plane with 96 channels runs through
    Winograd and agrees with onnxruntime; weights fed at run time keep im2col."""
    calls = []
    original = winograd.conv3x3

    def counted(*args):
        calls.append(args[0].shape)
        return original(*args)

    monkeypatch.setattr(winograd, "conv3x3", counted)
    inputs = {"x": rand(2, 96, 14, 14), "w": rand(96, 96, 3, 3, seed=1), "b": rand(96, seed=2)}
    attrs = {"pads": [1, 1, 1, 1]}
    check("Conv", inputs, 11, oracle="ort", rtol=1e-4, atol=1e-4, constants=("w", "b"), **attrs)
    assert calls, "the constant-weight conv did not run through Winograd"
    calls.clear()
    check("Conv", inputs, 11, oracle="ort", rtol=1e-4, atol=1e-4, **attrs)
    assert not calls
