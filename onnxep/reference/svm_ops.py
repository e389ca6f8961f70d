"""The ``ai.onnx.ml`` support vector machines, vectorised: SVMClassifier and SVMRegressor
(ml opset 1, the only version onnx defines), as skl2onnx exports scikit-learn's SVC, NuSVC,
SVR, NuSVR and OneClassSVM.

onnx's reference ops loop over the samples in Python, one kernel value at a time. Here the
support-vector tables are built once per node, when the plan is built, and a run is a few
whole-array steps: the kernel matrix between all samples and all support vectors is one
matrix product (plus the squared norms for RBF); the one-vs-one decision values of all class
pairs are a second (each pair's coefficients gathered into one column at build time) and the
votes a third; the Platt probabilities and their pairwise coupling run for all samples at
once, each sample stopping at its own iteration.

The semantics are onnxruntime's CPU kernels (checked against onnxruntime 1.31):

- every input type is cast to float32 first; kernel and decision values are computed in
  float64 from there (onnxruntime: float32 kernels summed in float64) and written as float32,
  so they agree with onnxruntime's to its float32 rounding (about 1e-7 of the sum of
  ``|coefficient x kernel|``), not bit for bit; a pair's vote goes to its first class when
  its decision value is above 0;
- the kernels: LINEAR ``x.s``, POLY ``(gamma x.s + coef0) ** degree`` (a float degree, so a
  negative base with a fractional degree gives NaN), RBF ``exp(-gamma |x - s|^2)``, SIGMOID
  ``tanh(gamma x.s + coef0)``; ``kernel_params`` is (gamma, coef0, degree), zeros when absent
  (as in onnx's op; onnxruntime refuses such a node);
- with no support vectors (``vectors_per_class`` summing to 0, ``n_supports`` 0) the model is
  linear: one score per class ``x.c + rho[0]``, whatever the kernel type;
- classifier labels come from the votes (the first class with most votes), with two classes
  and with ``prob_a`` too; in the linear form from the best score, except that with two
  classes and no ``prob_a`` the label is the second whenever the best score is above 0 (some
  coefficient negative) or at least 0.5 (none negative); string labels win over integers;
- scores without ``prob_a``: the decision value of each pair; with two classes ``[-s, s]``
  for NONE, ``[logistic(-s), logistic(s)]`` for LOGISTIC and ``[1 - s, s]`` for SOFTMAX and
  SOFTMAX_ZERO;
- scores with ``prob_a``: per pair the Platt probability ``1 - logistic(a s + b)`` clipped to
  [1e-7, 1 - 1e-7], then class probabilities by libsvm's pairwise coupling (Wu, Lin and
  Weng's second method: sweeps of coordinate updates, at most 100, stopping when every
  ``|(Qp)_i - pQp|`` is below 0.005 / n_classes), in float32 and in onnxruntime's order of
  operations, for two classes too;
- the post-transform of several scores per row: LOGISTIC by MLAS's approximation
  (``mlas_logistic``, as onnxruntime hands the row to MLAS), the others by the float32
  formulas of the tree ensembles;
- SVMRegressor: ``sum(coefficient x kernel) + rho[0]`` (one column); +1 or -1 with
  ``one_class`` (+1 above 0); its post_transform is ignored.

Inputs large enough to overflow float32 inside a kernel (near 1e38) overflow in onnxruntime
(inf or NaN scores) and not here.

onnx's ops differ (each point has a test): they build the coupling matrix with a dot product
where libsvm multiplies element by element, so their probabilities are wrong from three
classes on; with two classes and no ``prob_a`` they give SOFTMAX and SOFTMAX_ZERO of
``[-s, s]``, and the second label whenever no coefficient is negative; in the linear form
their label is 1 or 0 (best score above 0 or not) from three classes on, and the best
class's with two; they fail on string labels on those two-class and linear paths, and on
nodes with both label lists; they compute in the input's type (float64 or integer scores);
they read a 1-D input as a column, one feature per row; they truncate the POLY degree to an
integer; SVMRegressor fails on any post_transform but NONE.

Declined (onnx's op runs them): SVMRegressor on inputs other than float32 (onnxruntime has no
kernel), kernel types and post-transforms outside the lists above and ``kernel_params`` of
another length than 3 (onnxruntime refuses them), a single class (onnxruntime leaves its
scores unwritten), attribute lists too short for the counts (onnxruntime refuses them or
reads past them), support vectors that do not split into rows, and the binary classifier
with PROBIT and no ``prob_a`` (onnxruntime leaves the second score unwritten).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import factory, quiet
from onnxep.reference._ml_transforms import TRANSFORMS, logistic, mlas_logistic, transform
from onnxep.reference._registry import kernels

__all__: list[str] = []

ML = "ai.onnx.ml"
KERNELS = ("LINEAR", "POLY", "RBF", "SIGMOID")
_F = np.float32
#: Platt probabilities are clipped to [_CLIP, 1 - _CLIP] before the coupling.
_CLIP = _F(1e-7)
#: The coupling's sweeps at most (libsvm's max(100, k) for fewer than 100 classes).
_SWEEPS = 100
#: Kernel-matrix elements computed at once: larger batches are taken in blocks of rows.
BLOCK = 1 << 22


# --- kernel matrices ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Vectors:
    """Support vectors (or the linear form's coefficient rows) and their kernel, built once.

    ``rows`` is (n_features, n_vectors), transposed for the product. For RBF it is
    ``[2 gamma s; -gamma |s|^2; -gamma]`` stacked, (n_features + 2, n_vectors), so that
    ``-gamma |x - s|^2`` is the product of ``[x, 1, |x|^2]`` with it.
    """

    kind: str
    gamma: float
    coef0: float
    degree: float
    rows: np.ndarray  # (n_features (+ 2 for RBF), n_vectors) float64
    plain: np.ndarray  # (n_vectors, n_features) float64, the vectors as given

    @property
    def n_features(self) -> int:
        """The width of the inputs the vectors take."""
        return self.plain.shape[1]

    def matrix(self, x: np.ndarray) -> np.ndarray:
        """The kernel between each row of ``x`` (float64) and each vector: (n_rows, n_vectors)."""
        if self.kind == "RBF":
            return self._rbf(x)
        product = x @ self.rows
        if self.kind == "LINEAR":
            return product
        product *= self.gamma
        product += self.coef0
        if self.kind == "POLY":
            return np.power(product, self.degree, out=product)
        return np.tanh(product, out=product)

    def _rbf(self, x: np.ndarray) -> np.ndarray:
        """exp(-gamma |x - s|^2): one product of ``[x, 1, |x|^2]`` with ``rows`` (the
        expansion's rounding, about 1e-16 of |x|^2 + |s|^2, is far below float32's)."""
        n_rows, width = x.shape
        wide = np.empty((n_rows, width + 2))
        wide[:, :width] = x
        wide[:, width] = 1.0
        norms = np.einsum("ij,ij->i", x, x, out=wide[:, width + 1])
        product = wide @ self.rows
        odd = np.flatnonzero(~np.isfinite(norms))
        if odd.size:  # inf or NaN features: the expansion would give NaN for inf
            diff = x[odd, None, :] - self.plain[None]
            product[odd] = -self.gamma * np.einsum("rvf,rvf->rv", diff, diff)
        return np.exp(product, out=product)


def _kernel_params(attrs: dict[str, Any]) -> tuple[float, float, float]:
    """(gamma, coef0, degree) as onnxruntime stores them (float32), zeros when absent."""
    params = list(attrs.get("kernel_params") or (0.0, 0.0, 0.0))
    gamma, coef0, degree = (float(_F(p)) for p in params)
    return gamma, coef0, degree


def _vectors(vectors: np.ndarray, kind: str, attrs: dict[str, Any]) -> Vectors:
    """The kernel tables of ``vectors`` (n_vectors, n_features)."""
    gamma, coef0, degree = _kernel_params(attrs)
    plain = np.ascontiguousarray(vectors, dtype=np.float64)
    rows = plain.T.copy()
    if kind == "RBF":
        norms = np.einsum("ij,ij->i", plain, plain)
        rows = np.vstack([2 * gamma * rows, -gamma * norms, np.full(len(plain), -gamma)])
    return Vectors(kind, gamma, coef0, degree, rows, plain)


def _floats(attrs: dict[str, Any], name: str) -> np.ndarray:
    """Float list attribute ``name`` as float32 values in float64 (empty when absent)."""
    return np.asarray(attrs.get(name) or (), dtype=_F).astype(np.float64)


def _rows(X: Any, n_features: int) -> np.ndarray:
    """The input as float64 rows (n_rows, n_features), cast to float32 first as onnxruntime
    does; a 1-D input is one row."""
    x = np.asarray(X)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError(f"SVMs take a 1-D or 2-D input, not rank {x.ndim}")
    if x.shape[1] != n_features:
        raise ValueError(f"the input has {x.shape[1]} features; the model takes {n_features}")
    if x.dtype != _F:
        x = x.astype(_F)
    return x.astype(np.float64)


def _blocks(x: np.ndarray, n_vectors: int) -> list[np.ndarray]:
    """``x`` cut into blocks of rows whose kernel matrices hold at most ``BLOCK`` values."""
    step = max(1, BLOCK // max(1, n_vectors))
    if len(x) <= step:
        return [x]
    return [x[i : i + step] for i in range(0, len(x), step)]


# --- the classifier -----------------------------------------------------------------------
def _pairs(n_classes: int) -> list[tuple[int, int]]:
    """The one-vs-one pairs (i, j), i < j, in onnxruntime's (and libsvm's) order."""
    return [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]


@dataclasses.dataclass(frozen=True)
class OneVsOne:
    """Decision values of every class pair: ``K @ weights + rho``, and the votes they give."""

    weights: np.ndarray  # (n_vectors, n_pairs) each vector's coefficient in each pair
    rho: np.ndarray  # (n_pairs,)
    swing: np.ndarray  # (n_pairs, n_classes) +1 to the first class, -1 to the second
    losses: np.ndarray  # (n_classes,) votes of a class when every pair goes to the second

    def votes(self, decision: np.ndarray) -> np.ndarray:
        """(n_rows, n_classes) votes: a pair votes for its first class when above 0."""
        return (decision > 0) @ self.swing + self.losses


def _one_vs_one(coefficients: np.ndarray, per_class: np.ndarray, rho: np.ndarray) -> OneVsOne:
    """The pair tables: pair (i, j) weighs class i's vectors by coefficient row j - 1 and
    class j's by row i (libsvm's layout of the dual coefficients)."""
    n_classes, n_vectors = len(per_class), int(per_class.sum())
    starts = np.r_[0, np.cumsum(per_class)]
    coef = coefficients[: (n_classes - 1) * n_vectors].reshape(n_classes - 1, n_vectors)
    pairs = _pairs(n_classes)
    weights = np.zeros((n_vectors, len(pairs)))
    swing = np.zeros((len(pairs), n_classes))
    for p, (i, j) in enumerate(pairs):
        own, other = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
        weights[own, p] = coef[j - 1, own]
        weights[other, p] = coef[i, other]
        swing[p, i], swing[p, j] = 1, -1
    losses = -np.minimum(swing, 0).sum(axis=0)
    return OneVsOne(weights, rho[: len(pairs)].copy(), swing, losses)


def platt(decision: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise probabilities ``1 - logistic(a s + b)`` in float32, clipped as libsvm does."""
    value = decision.astype(_F) * a + b
    return np.clip(_F(1) - logistic(value), _CLIP, _F(1) - _CLIP)


def couple(pairwise: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities (n_rows, n_classes) from the pairwise ones (n_rows, n_pairs).

    libsvm's ``multiclass_probability`` as onnxruntime writes it, in float32 and its order
    of operations, vectorised over the rows (kept last, contiguous): each row sweeps until
    its own stopping test passes (or 100 sweeps); finished rows leave the working set.
    """
    k, n_rows = n_classes, pairwise.shape[0]
    r = np.zeros((k, k, n_rows), dtype=_F)
    for p, (i, j) in enumerate(_pairs(k)):
        r[i, j] = pairwise[:, p]
        r[j, i] = _F(1) - pairwise[:, p]
    q = np.zeros((k, k, n_rows), dtype=_F)
    for i in range(k):
        for j in range(k):
            if j != i:
                q[i, i] += r[j, i] * r[j, i]
        for j in range(i):
            q[i, j] = q[j, i]
        for j in range(i + 1, k):
            q[i, j] = -r[j, i] * r[i, j]
    done = np.full((k, n_rows), _F(1) / _F(k), dtype=_F)
    rows, p, eps = np.arange(n_rows), done.copy(), _F(0.005) / _F(k)
    for _ in range(_SWEEPS):
        qp, pqp = _products(q, p)
        error = np.zeros_like(pqp)
        for i in range(k):  # a NaN error counts as none, as in C++'s comparison
            np.fmax(error, np.abs(qp[i] - pqp), out=error)
        going = error >= eps
        if not going.all():
            done[:, rows[~going]] = p[:, ~going]
            rows, q, p, qp, pqp = rows[going], q[:, :, going], p[:, going], qp[:, going], pqp[going]
            if not rows.size:
                break
        p = _sweep(q, p, qp, pqp)
    done[:, rows] = p
    return done.T


def _products(q: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Qp and pQp, summed in onnxruntime's order (float32, rows last)."""
    k = p.shape[0]
    qp = np.zeros_like(p)
    for j in range(k):
        qp += q[:, j] * p[j]
    pqp = np.zeros_like(p[0])
    for i in range(k):
        pqp += p[i] * qp[i]
    return qp, pqp


def _sweep(q: np.ndarray, p: np.ndarray, qp: np.ndarray, pqp: np.ndarray) -> np.ndarray:
    """One sweep of the coupling's coordinate updates over the classes, in order."""
    for i in range(p.shape[0]):
        qii = q[i, i]
        diff = (-qp[i] + pqp) / qii
        p[i] += diff
        grow = _F(1) + diff
        pqp = (pqp + diff * (diff * qii + _F(2) * qp[i])) / grow / grow
        qp = (qp + diff * q[i]) / grow
        p /= grow
    return p


def _transform(scores: np.ndarray, post: str) -> np.ndarray:
    """The post-transform of several scores per row, LOGISTIC by MLAS as onnxruntime does."""
    return mlas_logistic(scores) if post == "LOGISTIC" else transform(scores, post)


def _binary(s: np.ndarray, post: str) -> np.ndarray:
    """The two scores of one decision value ``s``: ``[-s, s]``, their logistic for LOGISTIC
    (C's formula, not MLAS's), ``[1 - s, s]`` for SOFTMAX and SOFTMAX_ZERO."""
    if post == "LOGISTIC":
        return np.stack([logistic(-s), logistic(s)], axis=1)
    return np.stack([-s if post == "NONE" else _F(1) - s, s], axis=1)


@dataclasses.dataclass(frozen=True)
class Classifier:
    """Everything a classifier node needs at run time."""

    vectors: Vectors
    labels: np.ndarray  # int64, or object strings
    post: str
    pairs: OneVsOne | None  # None: the linear form
    prob_a: np.ndarray | None  # float32 (n_pairs,); None: no probabilities
    prob_b: np.ndarray | None
    rho: float  # the linear form's offset
    positive: bool  # no coefficient below 0

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels and float32 scores of float64 rows ``x``, a block of rows at a time."""
        parts = [self._block(b) for b in _blocks(x, self.vectors.plain.shape[0])]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _block(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels and float32 scores of a block of rows."""
        if self.pairs is None:
            return self._linear(x)
        decision = self.vectors.matrix(x) @ self.pairs.weights
        decision += self.pairs.rho
        best = np.argmax(self.pairs.votes(decision), axis=1)
        n_classes = len(self.labels)
        if self.prob_a is not None:
            pairwise = platt(decision, self.prob_a, self.prob_b)
            scores = _transform(couple(pairwise, n_classes), self.post)
        elif n_classes == 2:
            scores = _binary(decision[:, 0].astype(_F), self.post)
        else:
            scores = _transform(decision.astype(_F), self.post)
        return self.labels[best], scores

    def _linear(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The linear form: one score per class, the label of the best (``prob_a`` only
        turns off the binary rule: the linear form has no probabilities)."""
        scores = self.vectors.matrix(x)
        scores += self.rho
        scores = scores.astype(_F)
        best = np.argmax(scores, axis=1)
        if len(self.labels) == 2 and self.prob_a is None:
            top = scores.max(axis=1)
            second = (top >= 0.5) if self.positive else (top > 0)
            best = np.where(second, 1, best)
        return self.labels[best], _transform(scores, self.post)


def _labels(attrs: dict[str, Any]) -> np.ndarray:
    """The class labels: object strings or int64."""
    strings = attrs.get("classlabels_strings") or ()
    if strings:
        return np.array(list(strings), dtype=object)
    return np.array(attrs.get("classlabels_ints") or (), dtype=np.int64)


def _classifier(attrs: dict[str, Any]) -> Classifier:
    """The run-time tables of a classifier node (attributes checked by the check)."""
    labels = _labels(attrs)
    n_classes = len(labels)
    coefficients = _floats(attrs, "coefficients")
    rho = _floats(attrs, "rho")
    per_class = np.asarray(attrs.get("vectors_per_class") or (), dtype=np.int64)
    prob_a, prob_b = _floats(attrs, "prob_a"), _floats(attrs, "prob_b")
    n_vectors = int(per_class.sum())
    if n_vectors:
        sv = _floats(attrs, "support_vectors").reshape(n_vectors, -1)
        vectors = _vectors(sv, attrs["kernel_type"], attrs)
        pairs = _one_vs_one(coefficients, per_class, rho)
    else:
        rows = coefficients.reshape(n_classes, -1)
        vectors, pairs = _vectors(rows, "LINEAR", attrs), None
    n_pairs = n_classes * (n_classes - 1) // 2
    proba = prob_a.size > 0
    return Classifier(
        vectors=vectors,
        labels=labels,
        post=attrs["post_transform"],
        pairs=pairs,
        prob_a=prob_a[:n_pairs].astype(_F) if proba else None,
        prob_b=prob_b[:n_pairs].astype(_F) if proba else None,
        rho=float(rho[0]),
        positive=not (coefficients < 0).any(),
    )


def _check_common(attrs: dict[str, Any]) -> str | None:
    """Refusals shared by the classifier and the regressor."""
    kind = attrs.get("kernel_type", "LINEAR")
    if kind not in KERNELS:
        return f"kernel_type={kind!r} is not one of {KERNELS}"
    post = attrs.get("post_transform", "NONE")
    if post not in TRANSFORMS:
        return f"post_transform={post!r} is not one of {TRANSFORMS}"
    n_params = len(attrs.get("kernel_params") or ())
    if n_params not in (0, 3):
        return f"{n_params} kernel_params, not gamma, coef0 and degree (onnxruntime refuses)"
    if not len(attrs.get("coefficients") or ()):
        return "no coefficients (onnxruntime refuses the node)"
    if not len(attrs.get("rho") or ()):
        return "no rho (onnxruntime refuses the node)"
    return None


def _check_support_vectors(attrs: dict[str, Any], n_vectors: int) -> str | None:
    """A refusal when ``support_vectors`` does not split into ``n_vectors`` rows."""
    size = len(attrs.get("support_vectors") or ())
    if size == 0 or size % n_vectors:
        return f"{size} support_vectors values do not make {n_vectors} vectors"
    return None


def _check_classifier(info: NodeInfo) -> str | None:
    """Why the kernel declines an SVMClassifier node, or None."""
    attrs = dict(info.attrs)
    reason = _check_common(attrs)
    if reason:
        return reason
    n_classes = len(_labels(attrs))
    if not n_classes:
        return "no classlabels_strings or classlabels_ints"
    if n_classes < 2:
        return "a single class (onnxruntime leaves the scores unwritten)"
    n_a, n_b = len(attrs.get("prob_a") or ()), len(attrs.get("prob_b") or ())
    if n_a != n_b:
        return f"{n_a} prob_a but {n_b} prob_b (onnxruntime refuses the node)"
    per_class = list(attrs.get("vectors_per_class") or ())
    if per_class and min(per_class) < 0:
        return f"vectors_per_class {per_class} holds a negative count"
    n_vectors = sum(per_class)
    if n_vectors == 0:
        n_coef = len(attrs["coefficients"])
        if n_coef % n_classes:
            return f"{n_coef} coefficients do not make a row for each of {n_classes} classes"
        return None
    if len(per_class) != n_classes:
        return f"vectors_per_class {per_class} does not fit {n_classes} classes"
    n_pairs = n_classes * (n_classes - 1) // 2
    if len(attrs["coefficients"]) < (n_classes - 1) * n_vectors:
        return "fewer coefficients than (classes - 1) x support vectors"
    if len(attrs["rho"]) < n_pairs or 0 < n_a < n_pairs:
        return f"rho, prob_a or prob_b shorter than the {n_pairs} class pairs"
    if n_classes == 2 and not n_a and attrs.get("post_transform", "NONE") == "PROBIT":
        return "binary PROBIT without prob_a: onnxruntime leaves the second score unwritten"
    return _check_support_vectors(attrs, n_vectors)


@kernels.register(
    "SVMClassifier",
    versions=(1,),
    domain=ML,
    dtypes=("float32", "float64", "int64", "int32"),
    check=_check_classifier,
    factory=True,
)
@factory(kernel_type="LINEAR", post_transform="NONE")
def svm_classifier(
    info: NodeInfo, attrs: dict[str, Any]
) -> Callable[[Any], tuple[np.ndarray, np.ndarray]]:
    """Classification by an SVM: labels (n_rows,) and float32 scores."""
    model = _classifier(attrs)
    n_features = model.vectors.n_features

    @quiet
    def run(X: Any) -> tuple[np.ndarray, np.ndarray]:
        return model.run(_rows(X, n_features))

    return run


# --- the regressor ------------------------------------------------------------------------
def _check_regressor(info: NodeInfo) -> str | None:
    """Why the kernel declines an SVMRegressor node, or None."""
    attrs = dict(info.attrs)
    reason = _check_common(attrs)
    if reason:
        return reason
    n_vectors = int(attrs.get("n_supports", 0))
    if n_vectors < 0:
        return f"n_supports={n_vectors} is negative"
    if n_vectors == 0:
        return None
    if len(attrs["coefficients"]) < n_vectors:
        return f"fewer coefficients than the {n_vectors} support vectors"
    return _check_support_vectors(attrs, n_vectors)


@kernels.register(
    "SVMRegressor",
    versions=(1,),
    domain=ML,
    dtypes=("float32",),
    check=_check_regressor,
    factory=True,
)
@factory(kernel_type="LINEAR", post_transform="NONE", n_supports=0, one_class=0)
def svm_regressor(info: NodeInfo, attrs: dict[str, Any]) -> Callable[[Any], np.ndarray]:
    """Regression (or one-class detection) by an SVM: float32 (n_rows, 1)."""
    coefficients = _floats(attrs, "coefficients")
    n_vectors = int(attrs["n_supports"])
    if n_vectors:
        sv = _floats(attrs, "support_vectors").reshape(n_vectors, -1)
        vectors = _vectors(sv, attrs["kernel_type"], attrs)
        weights = coefficients[:n_vectors]
    else:
        vectors, weights = _vectors(coefficients[None], "LINEAR", attrs), np.ones(1)
    rho, one_class = float(_floats(attrs, "rho")[0]), bool(attrs["one_class"])

    @quiet
    def run(X: Any) -> np.ndarray:
        blocks = _blocks(_rows(X, vectors.n_features), len(weights))
        y = np.concatenate([vectors.matrix(b) @ weights for b in blocks])
        y = (y + rho).astype(_F)[:, None]
        return np.where(y > 0, _F(1), _F(-1)) if one_class else y

    return run
