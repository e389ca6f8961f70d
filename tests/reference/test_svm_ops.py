"""The ai.onnx.ml support vector machines (SVMClassifier, SVMRegressor) on the hand-written
kernels, against onnxruntime and onnx's ReferenceEvaluator.

Models are random: support vectors, dual coefficients, offsets and Platt parameters drawn
from a seed, for each kernel, two to five classes, integer and string labels. onnxruntime
computes kernels in float32, so scores are compared within float32 rounding of the largest
score (``_atol``); labels exactly. Where onnxruntime and onnx disagree the kernels follow
onnxruntime; each such case has a test below that shows both answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest

import onnxep
from onnxep.reference import svm_ops
from onnxep.reference._ml_transforms import logistic, mlas_logistic, probit, softmax
from onnxep.testing import kernel_test_options

from .helpers import (
    assert_close,
    hand_written_nodes,
    make_model,
    run_evaluator,
    run_onnxep,
    run_onnxruntime,
)

ML = "ai.onnx.ml"
CLS, REG = "SVMClassifier", "SVMRegressor"
KERNELS = ["LINEAR", "POLY", "RBF", "SIGMOID"]
POSTS = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]
F = np.float32


# --- building models ----------------------------------------------------------------------
def classifier(
    seed: int,
    n_classes: int,
    *,
    features: int = 5,
    kernel: str = "RBF",
    proba: bool = False,
    strings: bool = False,
    post: str = "NONE",
    scale: float = 1.0,
    degree: float = 2.0,
    per_class: list[int] | None = None,
) -> dict[str, Any]:
    """SVC attributes: a few support vectors per class, random dual coefficients (times
    ``scale``), offsets and, with ``proba``, Platt parameters."""
    rng = np.random.default_rng(seed)
    per_class = per_class or [int(n) for n in rng.integers(1, 6, n_classes)]
    n_vectors, n_pairs = sum(per_class), n_classes * (n_classes - 1) // 2
    attrs = {
        "coefficients": (rng.normal(size=(n_classes - 1) * n_vectors) * scale).tolist(),
        "kernel_type": kernel,
        "kernel_params": [float(rng.uniform(0.1, 0.5)), float(rng.normal()), degree],
        "rho": rng.normal(size=n_pairs).tolist(),
        "support_vectors": rng.normal(size=n_vectors * features).tolist(),
        "vectors_per_class": per_class,
        "post_transform": post,
    }
    attrs.update(_labels(rng, n_classes, strings))
    if proba:
        attrs["prob_a"] = (-rng.uniform(0.5, 3.0, n_pairs)).tolist()
        attrs["prob_b"] = (rng.normal(size=n_pairs) * 0.5).tolist()
    return attrs


def _labels(rng: np.random.Generator, n_classes: int, strings: bool) -> dict[str, Any]:
    if strings:
        return {"classlabels_strings": [f"class {i}" for i in range(n_classes)]}
    return {"classlabels_ints": (rng.permutation(20)[:n_classes] * 3 - 7).tolist()}


def linear(
    seed: int,
    n_classes: int,
    *,
    features: int = 5,
    proba: bool = False,
    positive: bool = False,
    strings: bool = False,
    post: str = "NONE",
) -> dict[str, Any]:
    """The linear form: no support vectors, one coefficient row per class (a kernel type
    that the linear form ignores)."""
    rng = np.random.default_rng(seed)
    coefficients = rng.normal(size=n_classes * features)
    if positive:
        coefficients = np.abs(coefficients) * 0.2
    attrs = {
        "coefficients": coefficients.tolist(),
        "rho": [float(rng.normal())],
        "kernel_type": "RBF",
        "kernel_params": [0.3, 0.1, 2.0],
        "post_transform": post,
    }
    attrs.update(_labels(rng, n_classes, strings))
    if proba:
        attrs["prob_a"], attrs["prob_b"] = [-1.0], [0.1]
    return attrs


def regressor(
    seed: int,
    n_supports: int,
    *,
    features: int = 5,
    kernel: str = "RBF",
    one_class: int = 0,
    post: str = "NONE",
) -> dict[str, Any]:
    """SVR (or OneClassSVM) attributes; ``n_supports`` 0 is the linear form."""
    rng = np.random.default_rng(seed)
    attrs = {
        "coefficients": rng.normal(size=n_supports or features).tolist(),
        "rho": [float(rng.normal())],
        "kernel_type": kernel,
        "kernel_params": [float(rng.uniform(0.1, 0.5)), float(rng.normal()), 2.0],
        "n_supports": n_supports,
        "one_class": one_class,
        "post_transform": post,
    }
    if n_supports:
        attrs["support_vectors"] = rng.normal(size=n_supports * features).tolist()
    return attrs


def inputs(seed: int, rows: int = 40, features: int = 5, dtype: Any = np.float32) -> np.ndarray:
    """Normal features (times 3 for integer types)."""
    x = np.random.default_rng(seed + 1000).normal(size=(rows, features))
    return (x * 3).astype(dtype) if np.dtype(dtype).kind == "i" else x.astype(dtype)


def model(op: str, attrs: dict[str, Any], x: np.ndarray) -> onnx.ModelProto:
    """One SVM node over input X; scores typed float (onnx's inference copies X's type)."""
    n_outputs = 2 if op == CLS else 1
    m = make_model(op, {"X": x}, 1, n_outputs=n_outputs, domain=ML, **attrs)
    m.graph.output[n_outputs - 1].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    return m


def _atol(expected: list[Any]) -> float:
    """float32 rounding of onnxruntime's float32 kernels, relative to the largest score."""
    scores = np.asarray(expected[-1], dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    return 2e-6 * max(1.0, float(np.abs(finite).max()) if finite.size else 1.0)


def check(
    op: str,
    attrs: dict[str, Any],
    x: np.ndarray,
    *,
    evaluator: bool | str = True,
    rtol: float = 1e-5,
    atol: float | None = None,
) -> list[Any]:
    """Run hand-written on onnxep; compare with onnxruntime and (``evaluator``) onnx, all
    outputs or (``evaluator="scores"``) the scores only."""
    m = model(op, attrs, x)
    ours = run_onnxep(m, {"X": x})
    expected = run_onnxruntime(m, {"X": x})
    tol = _atol(expected) if atol is None else atol
    assert_close(ours, expected, rtol, tol)
    if evaluator:
        theirs = run_evaluator(m, {"X": x})
        if theirs[0].dtype.kind == "U":  # onnx's op returns numpy strings
            theirs[0] = theirs[0].astype(object)
        if evaluator == "scores":
            assert_close(ours[-1:], theirs[-1:], rtol, tol)
        else:
            assert_close(ours, theirs, rtol, tol)
    return ours


def runs_hand_written(op: str, attrs: dict[str, Any], x: np.ndarray) -> bool:
    """Whether onnxep runs the node on the hand-written kernel (else onnx's op)."""
    session = onnxep.InferenceSession(
        model(op, attrs, x).SerializeToString(), kernel_test_options(), providers=["reference"]
    )
    (ran,) = hand_written_nodes(session).values()
    return ran


# --- the classifier -----------------------------------------------------------------------
@pytest.mark.parametrize("n_classes", [2, 3, 4])
@pytest.mark.parametrize("kernel", KERNELS)
def test_classifier_kernels(kernel, n_classes):
    """Each kernel, two to four classes, no probabilities: pair scores and voted labels."""
    for seed in range(3):
        attrs = classifier(seed, n_classes, kernel=kernel)
        check(CLS, attrs, inputs(seed))


@pytest.mark.parametrize("kernel", ["POLY", "RBF"])
def test_classifier_many_vectors(kernel):
    """200 support vectors of 20 features, as in the benchmark."""
    attrs = classifier(5, 3, features=20, kernel=kernel, per_class=[80, 70, 50], degree=3.0)
    attrs["kernel_params"][0] = 0.05
    check(CLS, attrs, inputs(5, rows=300, features=20))


@pytest.mark.parametrize("n_classes", [2, 3, 4, 5])
@pytest.mark.parametrize("kernel", ["LINEAR", "RBF", "SIGMOID"])
def test_classifier_probabilities(kernel, n_classes):
    """Platt probabilities coupled into class probabilities; onnx's op agrees for two
    classes only (see ``test_onnx_coupling_matrix``)."""
    for seed in range(2):
        attrs = classifier(seed, n_classes, kernel=kernel, proba=True, scale=2.0)
        (_, scores) = check(CLS, attrs, inputs(seed, rows=200), evaluator=n_classes == 2)
        np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-5)


def test_onnx_coupling_matrix():
    """onnx's op fills Q[t, t+1:] with a dot product (libsvm: element by element), so its
    probabilities are wrong from three classes on."""
    attrs = classifier(3, 3, proba=True, scale=2.0)
    x = inputs(3, rows=50)
    m = model(CLS, attrs, x)
    ours, ort = run_onnxep(m, {"X": x}), run_onnxruntime(m, {"X": x})
    assert_close(ours, ort, 1e-5, 1e-6)
    theirs = run_evaluator(m, {"X": x})
    assert np.abs(theirs[1] - ort[1]).max() > 1e-2


def test_classifier_many_rows_many_sweeps():
    """Rows stop their coupling sweeps at different times (2,000 rows, 5 classes)."""
    attrs = classifier(7, 5, proba=True, scale=3.0, per_class=[4, 3, 5, 2, 6])
    check(CLS, attrs, inputs(7, rows=2000), evaluator=False)


@pytest.mark.parametrize("proba", [False, True])
@pytest.mark.parametrize("n_classes", [3, 4])
@pytest.mark.parametrize("post", POSTS)
def test_classifier_post_transforms(post, n_classes, proba):
    """Post-transforms of the pair scores (3 and 6 of them: onnxruntime hands 6 to MLAS's
    softmax) and of the class probabilities."""
    attrs = classifier(11, n_classes, kernel="RBF", proba=proba, post=post, scale=2.0)
    x = inputs(11, rows=100)
    if post == "PROBIT":
        _check_probit(attrs, x)
        return
    same = not proba  # onnx's coupling is wrong from three classes on
    check(CLS, attrs, x, evaluator=same, atol=None if post == "NONE" else 2e-7)


def _check_probit(attrs: dict[str, Any], x: np.ndarray) -> None:
    """PROBIT magnifies the last bits of scores near 0, 1/2 and 1 (onnxruntime's float32
    formula cancels there): exactly ``probit`` of our plain scores, and close to
    onnxruntime's; ``probit`` of onnxruntime's plain scores is onnxruntime's PROBIT."""
    m = model(CLS, attrs, x)
    plain = model(CLS, {**attrs, "post_transform": "NONE"}, x)
    ours, ort = run_onnxep(m, {"X": x}), run_onnxruntime(m, {"X": x})
    np.testing.assert_array_equal(ours[0], ort[0])
    np.testing.assert_array_equal(ours[1], probit(run_onnxep(plain, {"X": x})[1]))
    np.testing.assert_allclose(probit(run_onnxruntime(plain, {"X": x})[1]), ort[1], atol=2e-6)
    np.testing.assert_allclose(ours[1], ort[1], rtol=1e-3, atol=2e-3)


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"])
def test_binary_scores(post):
    """Two classes, no prob_a: one decision value s, written [-s, s] (NONE),
    [logistic(-s), logistic(s)] (LOGISTIC) or [1 - s, s] (SOFTMAX, SOFTMAX_ZERO); onnx's op
    gives the softmax of [-s, s] for the last two."""
    x = inputs(13)
    attrs = classifier(13, 2, post=post)
    softmaxes = post.startswith("SOFTMAX")
    _, scores = check(CLS, attrs, x, evaluator=not softmaxes)
    plain = run_onnxep(model(CLS, {**attrs, "post_transform": "NONE"}, x), {"X": x})[1]
    s = plain[:, 1]
    np.testing.assert_array_equal(plain[:, 0], -s)
    expected = {
        "NONE": plain,
        "LOGISTIC": np.stack([logistic(-s), logistic(s)], axis=1),
        "SOFTMAX": np.stack([1 - s, s], axis=1),
        "SOFTMAX_ZERO": np.stack([1 - s, s], axis=1),
    }[post]
    np.testing.assert_array_equal(scores, expected)
    if softmaxes:
        theirs = run_evaluator(model(CLS, attrs, x), {"X": x})[1]
        np.testing.assert_allclose(theirs, softmax(plain), rtol=1e-5, atol=1e-7)


def test_binary_labels_follow_the_vote():
    """Two classes: the first label when the decision value is above 0, with or without
    prob_a and whatever the coefficients' signs; onnx's op gives the second label whenever
    no coefficient is negative."""
    x = inputs(17)
    attrs = classifier(17, 2)
    attrs["coefficients"] = np.abs(attrs["coefficients"]).tolist()
    attrs["rho"] = [-1.0]  # decision values around 0: both labels occur
    labels, scores = check(CLS, attrs, x, evaluator=False)
    first, second = attrs["classlabels_ints"]
    np.testing.assert_array_equal(labels, np.where(scores[:, 1] > 0, first, second))
    assert len(set(labels.tolist())) == 2
    theirs = run_evaluator(model(CLS, attrs, x), {"X": x})[0]
    assert (theirs == second).all()
    proba = {**attrs, "prob_a": [-2.0], "prob_b": [0.3]}
    labels_p, _ = check(CLS, proba, x)
    np.testing.assert_array_equal(labels_p, labels)


@pytest.mark.parametrize("proba", [False, True])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_string_labels(n_classes, proba):
    """String labels; onnx's op fails on two of them (it reads the integer list)."""
    attrs = classifier(19, n_classes, strings=True, proba=proba)
    x = inputs(19)
    labels, _ = check(CLS, attrs, x, evaluator=n_classes == 3 and not proba)
    assert set(labels.tolist()) <= set(attrs["classlabels_strings"])
    if n_classes == 2:
        with pytest.raises(Exception):  # noqa: B017 - onnx's op fails in its own way
            run_evaluator(model(CLS, attrs, x), {"X": x})


def test_both_label_lists():
    """Both lists set: onnxruntime takes the strings; onnx's op fails."""
    attrs = classifier(23, 3, strings=True)
    attrs["classlabels_ints"] = [4, 5, 6]
    x = inputs(23)
    labels, _ = check(CLS, attrs, x, evaluator=False)
    assert labels.dtype == object
    with pytest.raises(Exception):  # noqa: B017
        run_evaluator(model(CLS, attrs, x), {"X": x})


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_classifier_input_types(dtype):
    """Inputs are cast to float32 and scores are float32; onnx's op computes in the input's
    type (float64 scores, or integer scores truncated)."""
    x = inputs(29, dtype=dtype)
    for proba in (False, True):
        attrs = classifier(29, 3, proba=proba)
        ours = check(CLS, attrs, x, evaluator=False)
        assert ours[1].dtype == np.float32
        float32 = run_onnxep(model(CLS, attrs, x.astype(np.float32)), {"X": x.astype(F)})
        np.testing.assert_array_equal(ours[1], float32[1])
    theirs = run_evaluator(model(CLS, attrs, x), {"X": x})
    assert theirs[1].dtype == np.dtype(dtype)


def test_poly_fractional_degree():
    """POLY raises to a float degree: NaN for negative bases and degree 2.5, as in
    onnxruntime; onnx's op truncates the degree to 2."""
    attrs = classifier(31, 3, kernel="POLY", degree=2.5)
    x = inputs(31)
    _, scores = check(CLS, attrs, x, evaluator=False)
    assert np.isnan(scores).any()
    theirs = run_evaluator(model(CLS, attrs, x), {"X": x})[1]
    assert np.isfinite(theirs).all()


@pytest.mark.parametrize("kernel", KERNELS)
def test_non_finite_inputs(kernel):
    """NaN and infinite features, as onnxruntime computes them (RBF: an infinite feature
    gives kernel 0, a NaN gives NaN scores); with probabilities, NaN rows get 1/k each."""
    x = inputs(37, rows=10)
    x[0, 0], x[1, 1], x[2, 2] = np.nan, np.inf, -np.inf
    for proba in (False, True):
        _, scores = check(CLS, classifier(37, 3, kernel=kernel, proba=proba), x, evaluator=False)
        if proba:
            np.testing.assert_array_equal(scores[0], np.full(3, F(1) / F(3)))


def test_one_row_and_no_rows():
    """A 1-D input is one row (onnx's op reads it as a column, one feature per row); an
    empty batch gives empty outputs."""
    for proba in (False, True):
        attrs = classifier(41, 3, proba=proba)
        labels, scores = check(CLS, attrs, inputs(41)[0], evaluator=False)
        assert labels.shape == (1,) and scores.shape == (1, 3)
        theirs = run_evaluator(model(CLS, attrs, inputs(41)[0]), {"X": inputs(41)[0]})
        assert theirs[1].shape == (5, 3)
        labels, scores = check(CLS, attrs, inputs(41)[:0], evaluator=False)
        assert labels.shape == (0,) and scores.shape == (0, 3)


def test_wrong_width_fails():
    """onnxruntime refuses an input of another width than the support vectors'."""
    m = model(CLS, classifier(43, 3), inputs(43, features=4))
    with pytest.raises(Exception, match="features"):
        run_onnxep(m, {"X": inputs(43, features=4)})
    with pytest.raises(Exception):  # noqa: B017
        run_onnxruntime(m, {"X": inputs(43, features=4)})


def test_missing_kernel_params():
    """No kernel_params: gamma, coef0 and degree 0, as in onnx's op (onnxruntime refuses)."""
    attrs = classifier(47, 3, kernel="POLY")
    del attrs["kernel_params"]
    x = inputs(47)
    ours = run_onnxep(model(CLS, attrs, x), {"X": x})
    assert_close(ours, run_evaluator(model(CLS, attrs, x), {"X": x}), 1e-5, 1e-6)
    zeros = run_onnxruntime(model(CLS, {**attrs, "kernel_params": [0.0, 0.0, 0.0]}, x), {"X": x})
    assert_close(ours, zeros, 1e-5, 1e-6)


# --- the linear form ----------------------------------------------------------------------
@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("proba", [False, True])
@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_linear_form(n_classes, proba, positive):
    """No support vectors: one linear score per class (the kernel type ignored). onnx's op
    agrees on the scores; its labels differ (``test_linear_labels``)."""
    for post in ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"]:
        attrs = linear(53, n_classes, proba=proba, positive=positive, post=post)
        check(CLS, attrs, inputs(53), evaluator="scores", atol=2e-6)


def test_linear_labels():
    """The linear form's label is the best class's; onnx's op gives 1 or 0 (best score
    above 0 or not) from three classes on, and fails on string labels."""
    attrs = linear(57, 3)
    x = inputs(57, rows=100)
    labels, scores = check(CLS, attrs, x, evaluator="scores")
    np.testing.assert_array_equal(labels, np.array(attrs["classlabels_ints"])[scores.argmax(1)])
    theirs = run_evaluator(model(CLS, attrs, x), {"X": x})[0]
    np.testing.assert_array_equal(theirs, (scores.max(axis=1) > 0).astype(np.int64))
    strings = linear(57, 3, strings=True)
    labels, _ = check(CLS, strings, x, evaluator=False)
    np.testing.assert_array_equal(
        labels, np.array(strings["classlabels_strings"])[scores.argmax(1)]
    )
    with pytest.raises(Exception):  # noqa: B017
        run_evaluator(model(CLS, strings, x), {"X": x})


def test_linear_binary_labels():
    """Two classes, no prob_a: the second label when the best score is above 0 (some
    coefficient negative), also when the best is the first class's; onnx's op gives the
    best class's label. With no negative coefficient the threshold is 0.5."""
    x = inputs(59, rows=200)
    attrs = linear(59, 2)
    labels, scores = check(CLS, attrs, x, evaluator=False)
    first, second = attrs["classlabels_ints"]
    top = scores.max(axis=1)
    best = np.where(scores[:, 0] >= scores[:, 1], first, second)
    np.testing.assert_array_equal(labels, np.where(top > 0, second, best))
    assert ((top > 0) & (best == first)).any() and (top <= 0).any()
    theirs = run_evaluator(model(CLS, attrs, x), {"X": x})[0]
    np.testing.assert_array_equal(theirs, best)
    positive = linear(59, 2, positive=True)
    labels, scores = check(CLS, positive, x, evaluator=False)
    top, best = scores.max(axis=1), scores.argmax(axis=1)
    expected = np.where(top >= 0.5, 1, best)
    np.testing.assert_array_equal(labels, np.array(positive["classlabels_ints"])[expected])


# --- post-transforms ----------------------------------------------------------------------
def test_mlas_logistic():
    """LOGISTIC on several scores per row is MLAS's approximation: exactly onnxruntime's
    where the exact logistic is 1e-7 away (scores far below 0). Identity coefficients make
    the scores the inputs themselves."""
    v = np.linspace(-25, 25, 20001, dtype=F)
    x = np.stack([v, -v, v / 3], axis=1)
    attrs = {
        "coefficients": np.eye(3).reshape(-1).tolist(),
        "rho": [0.0],
        "kernel_params": [0.0, 0.0, 0.0],
        "classlabels_ints": [0, 1, 2],
        "post_transform": "LOGISTIC",
    }
    m = model(CLS, attrs, x)
    ours, ort = run_onnxep(m, {"X": x}), run_onnxruntime(m, {"X": x})
    np.testing.assert_allclose(ours[1], ort[1], rtol=1e-5, atol=1.2e-7)
    assert (ours[1] == ort[1]).mean() > 0.999
    np.testing.assert_array_equal(ours[1], mlas_logistic(x))
    assert np.abs(logistic(x) - ort[1]).max() > 5e-8


# --- the regressor ------------------------------------------------------------------------
@pytest.mark.parametrize("n_supports", [0, 1, 7, 30])
@pytest.mark.parametrize("kernel", KERNELS)
def test_regressor(kernel, n_supports):
    check(REG, regressor(67, n_supports, kernel=kernel), inputs(67))


@pytest.mark.parametrize("kernel", KERNELS)
def test_one_class(kernel):
    """OneClassSVM: +1 above 0, else -1."""
    attrs = regressor(71, 9, kernel=kernel, one_class=1)
    (y,) = check(REG, attrs, inputs(71, rows=100))
    assert set(np.unique(y).tolist()) <= {-1.0, 1.0}


def test_regressor_post_transform_ignored():
    """onnxruntime ignores the regressor's post_transform; onnx's op fails on it."""
    x = inputs(73)
    plain = check(REG, regressor(73, 5), x)
    attrs = regressor(73, 5, post="LOGISTIC")
    ours = check(REG, attrs, x, evaluator=False)
    np.testing.assert_array_equal(ours[0], plain[0])
    with pytest.raises(Exception, match="not implemented"):
        run_evaluator(model(REG, attrs, x), {"X": x})


def test_regressor_one_row():
    """A 1-D input is one row (onnx's op reads it as a column)."""
    (y,) = check(REG, regressor(79, 4), inputs(79)[0], evaluator=False)
    assert y.shape == (1, 1)


# --- the coupling on its own ----------------------------------------------------------------
def _couple_scalar(r: np.ndarray, k: int) -> np.ndarray:
    """onnxruntime's multiclass_probability transcribed loop for loop, float32 scalars."""
    q = [[F(0)] * k for _ in range(k)]
    p = [F(1) / F(k)] * k
    for i in range(k):
        for j in range(i):
            q[i][i] += r[j, i] * r[j, i]
            q[i][j] = q[j][i]
        for j in range(i + 1, k):
            q[i][i] += r[j, i] * r[j, i]
            q[i][j] = -r[j, i] * r[i, j]
    for _ in range(100):
        qp = [F(0)] * k
        pqp = F(0)
        for i in range(k):
            for j in range(k):
                qp[i] += q[i][j] * p[j]
            pqp += p[i] * qp[i]
        if max(abs(qp[i] - pqp) for i in range(k)) < F(0.005) / F(k):
            break
        for i in range(k):
            diff = (-qp[i] + pqp) / q[i][i]
            p[i] += diff
            pqp = (pqp + diff * (diff * q[i][i] + F(2) * qp[i])) / (F(1) + diff) / (F(1) + diff)
            for j in range(k):
                qp[j] = (qp[j] + diff * q[i][j]) / (F(1) + diff)
                p[j] /= F(1) + diff
    return np.array(p, dtype=F)


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_couple_is_the_loop(k):
    """The vectorised coupling equals the scalar loop bit for bit, rows stopping at their
    own sweep."""
    rng = np.random.default_rng(k)
    n_pairs = k * (k - 1) // 2
    pairwise = rng.uniform(1e-7, 1 - 1e-7, (60, n_pairs)).astype(F)
    pairwise[:5] = rng.choice([F(1e-7), F(1 - 1e-7)], (5, n_pairs))
    ours = svm_ops.couple(pairwise, k)
    for row in range(len(pairwise)):
        r = np.zeros((k, k), dtype=F)
        for p, (i, j) in enumerate(svm_ops._pairs(k)):
            r[i, j], r[j, i] = pairwise[row, p], F(1) - pairwise[row, p]
        np.testing.assert_array_equal(ours[row], _couple_scalar(r, k))


@pytest.mark.parametrize("k", [2, 3, 5])
def test_couple_is_onnxruntime(k):
    """Given onnxruntime's own decision values, Platt and the coupling give onnxruntime's
    probabilities to the last bit or so (no float32 kernel differences left)."""
    x = inputs(83, rows=500)
    attrs = classifier(83, k, proba=True, scale=3.0)
    probabilities = run_onnxruntime(model(CLS, attrs, x), {"X": x})[1]
    plain = {n: v for n, v in attrs.items() if n not in ("prob_a", "prob_b")}
    decision = run_onnxruntime(model(CLS, plain, x), {"X": x})[1]
    decision = decision[:, 1:] if k == 2 else decision
    a, b = (np.array(attrs[n], dtype=F) for n in ("prob_a", "prob_b"))
    ours = svm_ops.couple(svm_ops.platt(decision, a, b), k)
    np.testing.assert_allclose(ours, probabilities, rtol=0, atol=1.2e-7)
    assert (ours == probabilities).mean() > 0.99


# --- declines -------------------------------------------------------------------------------
def _declines() -> list[Any]:
    base = classifier(89, 3)
    cases = {
        "lowercase kernel": (CLS, {**base, "kernel_type": "rbf"}),
        "unknown post_transform": (CLS, {**base, "post_transform": "probit"}),
        "four kernel_params": (CLS, {**base, "kernel_params": [0.1, 0.0, 2.0, 1.0]}),
        "one class": (CLS, {**base, "classlabels_ints": [3], "vectors_per_class": [9]}),
        "binary PROBIT": (CLS, classifier(89, 2, post="PROBIT")),
        "short rho": (CLS, {**base, "rho": base["rho"][:2]}),
        "short prob_a": (CLS, {**base, "prob_a": [-1.0], "prob_b": [0.0]}),
        "prob_b missing": (CLS, {**base, "prob_a": [-1.0, -1.0, -1.0]}),
        "short coefficients": (CLS, {**base, "coefficients": base["coefficients"][:-1]}),
        "vectors_per_class": (CLS, {**base, "vectors_per_class": base["vectors_per_class"][:2]}),
        "ragged vectors": (CLS, {**base, "support_vectors": base["support_vectors"][:-1]}),
        "ragged linear": (CLS, {**linear(89, 3), "coefficients": [1.0] * 14}),
        "regressor vectors": (REG, {**regressor(89, 4), "support_vectors": [1.0] * 19}),
        "regressor coefficients": (REG, {**regressor(89, 4), "coefficients": [1.0] * 3}),
    }
    return [pytest.param(op, attrs, id=name) for name, (op, attrs) in cases.items()]


@pytest.mark.parametrize(("op", "attrs"), _declines())
def test_declined(op, attrs):
    """What the kernels do not implement runs on onnx's op."""
    assert not runs_hand_written(op, attrs, inputs(89))


def test_regressor_declines_other_types():
    """onnxruntime's SVMRegressor takes float32 only."""
    assert runs_hand_written(REG, regressor(97, 4), inputs(97))
    assert not runs_hand_written(REG, regressor(97, 4), inputs(97, dtype=np.float64))


def test_blocks_of_rows(monkeypatch):
    """Large batches are computed a block of rows at a time, with the same results."""
    x = inputs(101, rows=300)
    for op, attrs in [
        (CLS, classifier(101, 3, proba=True)),
        (CLS, classifier(101, 2)),
        (CLS, linear(101, 3)),
        (REG, regressor(101, 8)),
    ]:
        whole = run_onnxep(model(op, attrs, x), {"X": x})
        monkeypatch.setattr(svm_ops, "BLOCK", 64)
        assert len(svm_ops._blocks(x, 8)) == 38
        blocks = run_onnxep(model(op, attrs, x), {"X": x})
        monkeypatch.undo()
        assert_close(blocks, whole, 0, 0)
