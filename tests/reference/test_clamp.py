"""Relu/Clip through filled bound arrays give exactly numpy's maximum/minimum results."""

from __future__ import annotations

import numpy as np
import pytest

from onnxep.reference._clamp import MIN_ELEMENTS, clamp

RNG = np.random.default_rng(0)


def _input(dtype, size=MIN_ELEMENTS * 3, contiguous=True):
    x = RNG.standard_normal(size * (1 if contiguous else 2)).astype(dtype) * 4
    x[::97] = np.nan
    x[1::89] = -0.0
    return x if contiguous else x[::2]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize(("lo", "hi"), [(0, None), (-1.5, 6), (None, 2), (3, -3)])
def test_clamp_matches_numpy(dtype, contiguous, lo, hi):
    x = _input(dtype, contiguous=contiguous).reshape(-1, 3)
    lo_s = None if lo is None else dtype(lo)
    hi_s = None if hi is None else dtype(hi)
    want = x
    if lo is not None:
        want = np.maximum(want, lo_s)
    if hi is not None:
        want = np.minimum(want, hi_s)
    got = clamp(x, lo_s, hi_s)
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, want)
    assert got is not x and not np.shares_memory(got, x)


def test_bound_arrays_are_shared_and_read_only():
    from onnxep.reference import _clamp

    x = _input(np.float32)
    clamp(x, np.float32(0))
    zeros = _clamp._bound_array(np.float32(0), x.size)
    assert not zeros.flags.writeable and not zeros.any()
    bigger = _input(np.float32, size=x.size * 2)
    clamp(bigger, np.float32(0))
    assert _clamp._bound_array(np.float32(0), 1).size >= bigger.size


def test_no_bound_returns_the_input_and_ints_take_numpy():
    x = np.arange(-5, 5)
    assert clamp(x) is x
    np.testing.assert_array_equal(clamp(x, np.int64(0), np.int64(3)), np.clip(x, 0, 3))
