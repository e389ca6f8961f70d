"""Col2Im, hand-written, against onnxruntime, onnx's evaluator and a loop over the
definition."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from .helpers import check, make_model, rand, run_onnxep, run_onnxruntime


def _blocks(image, block, strides, dilations, pads) -> list[int]:
    nd = len(image)
    return [
        (image[i] + pads[i] + pads[i + nd] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1
        for i in range(nd)
    ]


def _inputs(image, block, strides=None, dilations=None, pads=None, *, n=1, c=2, dtype=np.float32):
    """(inputs, attrs) of a Col2Im node producing an (n, c, *image) image."""
    nd = len(image)
    strides, dilations = strides or [1] * nd, dilations or [1] * nd
    pads = pads or [0] * (2 * nd)
    length = math.prod(_blocks(image, block, strides, dilations, pads))
    inputs = {
        "input": rand(n, c * math.prod(block), length, seed=len(image) + n, dtype=dtype),
        "image_shape": np.array(image, dtype=np.int64),
        "block_shape": np.array(block, dtype=np.int64),
    }
    return inputs, {"strides": strides, "dilations": dilations, "pads": pads}


def _definition(x: np.ndarray, image, block, *, strides, dilations, pads) -> np.ndarray:
    """Col2Im by its definition, one column value at a time (tiny inputs only)."""
    nd = len(image)
    blocks = _blocks(image, block, strides, dilations, pads)
    n, rows, _ = x.shape
    c = rows // math.prod(block)
    y = np.zeros((n, c, *image), dtype=np.float64)
    cols = x.reshape(n, c, *block, *blocks)
    for pos in itertools.product(*map(range, block)):
        for where in itertools.product(*map(range, blocks)):
            at = [where[i] * strides[i] - pads[i] + pos[i] * dilations[i] for i in range(nd)]
            if all(0 <= a < s for a, s in zip(at, image)):
                y[(slice(None), slice(None), *at)] += cols[(slice(None), slice(None), *pos, *where)]
    return y.astype(x.dtype)


ORT_CASES = {
    "2-D": ([5, 5], [2, 2], None, None, None),
    "2-D strides": ([7, 8], [3, 2], [2, 3], None, None),
    "2-D dilations": ([8, 7], [3, 2], None, [2, 3], None),
    "2-D pads": ([5, 6], [3, 3], None, None, [1, 0, 2, 1]),
    "2-D all": ([9, 10], [3, 2], [2, 1], [2, 2], [1, 2, 0, 1]),
    "2-D ResNet": ([56, 56], [3, 3], None, None, [1, 1, 1, 1]),
    "1-D": ([9], [3], [2], None, [1, 2]),
    "3-D strides pads": ([4, 5, 6], [2, 3, 2], [1, 2, 2], None, [0, 1, 1, 1, 0, 0]),
    "4-D": ([3, 4, 3, 4], [2, 1, 2, 2], [1, 1, 1, 2], None, [1, 0, 0, 1, 0, 0, 1, 0]),
}


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", list(ORT_CASES))
def test_against_onnxruntime(name: str, batch: int) -> None:
    inputs, attrs = _inputs(*ORT_CASES[name], n=batch, c=3)
    check("Col2Im", inputs, 18, oracle="ort", rtol=1e-5, atol=1e-5, **attrs)


EVALUATOR_CASES = {
    "2-D all": ([6, 7], [2, 3], [2, 1], [1, 2], [1, 0, 0, 2]),
    "1-D dilations": ([7], [2], [1], [3], [0, 1]),
    "1-D all": ([9], [3], [2], [2], [1, 2]),
    "3-D dilations": ([4, 5, 6], [2, 2, 2], [1, 2, 1], [1, 2, 2], [1, 0, 0, 0, 1, 1]),
}


@pytest.mark.parametrize("name", list(EVALUATOR_CASES))
def test_against_evaluator_and_definition(name: str) -> None:
    """Dilations in a Col2Im other than 2-D: onnxruntime's N-D path passes the dilated
    kernel extent where the kernel shape belongs, so it reads the columns of the wrong
    rows (right only by chance, as for one channel and two taps); onnx's op and the
    definition agree, and are followed."""
    image, block, *_ = case = EVALUATOR_CASES[name]
    inputs, attrs = _inputs(*case)
    actual = check("Col2Im", inputs, 18, **attrs)[0]
    expected = _definition(inputs["input"], image, block, **attrs)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_onnxruntime_differs_on_nd_dilations() -> None:
    """The onnxruntime difference above is still there (else the docstrings are stale)."""
    inputs, attrs = _inputs(*EVALUATOR_CASES["3-D dilations"])
    model = make_model("Col2Im", inputs, 18, **attrs)
    ours, theirs = run_onnxep(model, inputs)[0], run_onnxruntime(model, inputs)[0]
    assert not np.allclose(ours, theirs, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.int64, np.uint8])
def test_other_dtypes(dtype) -> None:
    """float16 is summed in float32 (onnx's op sums in float16: a looser tolerance);
    integers wrap as in C."""
    inputs, attrs = _inputs([5, 6], [2, 3], [1, 2], None, [1, 1, 0, 1], dtype=dtype)
    tolerance = 2e-3 if dtype == np.float16 else 0
    y = check("Col2Im", inputs, 18, rtol=tolerance, atol=tolerance, **attrs)[0]
    assert y.dtype == dtype


def test_blocks_that_do_not_fit_are_refused() -> None:
    inputs, attrs = _inputs([5, 5], [2, 2])
    inputs["input"] = inputs["input"][:, :, :-1]
    model = make_model("Col2Im", inputs, 18, **attrs)
    with pytest.raises(Exception, match="Col2Im"):
        run_onnxep(model, inputs)


def test_empty_batch() -> None:
    inputs, attrs = _inputs([4, 5], [2, 2], n=0)
    check("Col2Im", inputs, 18, oracle="ort", **attrs)
