"""Multinomial: the distribution of its draws (they cannot equal onnxruntime's), its types
and its seeding."""

from __future__ import annotations

import numpy as np
import pytest

import onnxep

from .helpers import make_model, run_onnxep

LOGITS = np.log(np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 1e-4, 0.2, 0.0999]], np.float32))


def _draw(x: np.ndarray, opset: int = 7, **attrs) -> np.ndarray:
    (y,) = run_onnxep(make_model("Multinomial", {"x": x}, opset, **attrs), {"x": x})
    return y


@pytest.mark.parametrize("opset", [7, 22])
@pytest.mark.parametrize(("dtype", "want"), [(6, np.int32), (7, np.int64)])
def test_draws_follow_the_softmax(opset, dtype, want):
    n = 40000
    y = _draw(LOGITS, opset, sample_size=n, dtype=dtype)
    assert y.dtype == want and y.shape == (2, n)
    p = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
    freq = np.stack([np.bincount(row, minlength=4) / n for row in y])
    np.testing.assert_allclose(freq, p, atol=5 * np.sqrt(0.25 / n))


def test_impossible_classes_are_never_drawn():
    x = np.array([[-np.inf, 0.0, -np.inf], [5.0, -np.inf, 5.0]], np.float64)
    y = _draw(x, sample_size=5000)
    assert set(y[0].tolist()) == {1} and set(y[1].tolist()) == {0, 2}


def test_a_seeded_session_repeats_its_sequence_and_unseeded_draws_differ():
    def draws(**attrs):
        model = make_model("Multinomial", {"x": LOGITS}, 7, sample_size=50, **attrs)
        session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
        return [session.run(None, {"x": LOGITS})[0] for _ in range(2)]

    first, second = draws(seed=5.0), draws(seed=5.0)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])  # the generator moves on between runs
    assert not np.array_equal(draws()[0], draws()[0])


def test_refuses_other_than_a_batch_of_rows():
    model = make_model("Multinomial", {"x": LOGITS[0]}, 7)
    with pytest.raises(onnxep.Fail, match=r"\(batch, classes\) log-probabilities, got shape"):
        run_onnxep(model, {"x": LOGITS[0]})
