"""The post-transforms of the ``ai.onnx.ml`` ops (tree ensembles, SVMs), in onnxruntime's
float32 formulas: LOGISTIC, SOFTMAX, SOFTMAX_ZERO and PROBIT, each on several scores per row.

onnxruntime computes them per score with C's float functions; ``logistic`` and the others
here follow those formulas. Where a kernel hands a whole row to MLAS instead (the SVM
classifier's LOGISTIC), ``mlas_logistic`` reproduces MLAS's rational approximation.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TRANSFORMS",
    "logistic",
    "mlas_logistic",
    "probit",
    "softmax",
    "softmax_zero",
    "transform",
]

TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")
_F = np.float32


def _exp(x: np.ndarray) -> np.ndarray:
    """float32 exp rounded from float64 (as C's expf: numpy's float32 exp is a few ulps off,
    which PROBIT's cancellation would magnify)."""
    return np.exp(x.astype(np.float64)).astype(_F)


def _log(x: np.ndarray) -> np.ndarray:
    """float32 log rounded from float64 (see ``_exp``)."""
    return np.log(x.astype(np.float64)).astype(_F)


def logistic(v: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-v)), from |v| as onnxruntime computes it."""
    v = v.astype(_F, copy=False)
    a = _F(1) / (_F(1) + _exp(-np.abs(v)))
    return np.where(v < 0, _F(1) - a, a)


def probit(v: np.ndarray) -> np.ndarray:
    """sqrt(2) * erfinv(2v - 1) with onnxruntime's approximation of erfinv."""
    x = _F(2) * v.astype(_F, copy=False) - _F(1)
    sign = np.where(x < 0, _F(-1), _F(1))
    log = _log((_F(1) - x) * (_F(1) + x))
    a = _F(2) / (_F(np.pi) * _F(0.147)) + _F(0.5) * log
    b = _F(1) / _F(0.147) * log
    return _F(np.sqrt(2)) * sign * np.sqrt(-a + np.sqrt(a * a - b))


def softmax(v: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32."""
    v = v.astype(_F, copy=False)
    e = _exp(v - np.maximum(v.max(axis=1, keepdims=True), np.finfo(_F).min))
    return e / e.sum(axis=1, keepdims=True)


def softmax_zero(v: np.ndarray) -> np.ndarray:
    """onnxruntime's SOFTMAX_ZERO: scores within 1e-7 of 0 stay (nearly) 0, out of the sum."""
    v = v.astype(_F, copy=False)
    top = np.maximum(v.max(axis=1, keepdims=True), np.finfo(_F).min)
    big = np.abs(v) > _F(1e-7)
    e = np.where(big, _exp(v - top), v * _exp(-top))
    return e / np.where(big, e, _F(0)).sum(axis=1, keepdims=True)


_TRANSFORM = {"SOFTMAX": softmax, "LOGISTIC": logistic, "SOFTMAX_ZERO": softmax_zero}
_TRANSFORM["PROBIT"] = probit


def transform(values: np.ndarray, post: str) -> np.ndarray:
    """The post-transform of several scores per row (NONE keeps the computation type)."""
    return values if post == "NONE" else _TRANSFORM[post](values)


#: MLAS's logistic: p(x) / q(x) + 1/2 on x clamped to [-18, 18], p odd of degree 9 and q even
#: of degree 10 (Eigen's coefficients), each step a fused multiply-add.
_MLAS_P = tuple(_F(c) for c in (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05))
_MLAS_P += (_F(8.51377133304701e-03), _F(2.48287947061529e-01))
_MLAS_Q = tuple(_F(c) for c in (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06))
_MLAS_Q += (_F(1.70198817374094e-03), _F(1.16817656904453e-01), _F(9.93151921023180e-01))


def _fma(a: np.ndarray, b: np.ndarray, c: np.float32) -> np.ndarray:
    """float32 a * b + c rounded once, as an FMA instruction (the float32 product is exact in
    float64; the double rounding of the sum is off in rare ties only)."""
    return (a.astype(np.float64) * b + np.float64(c)).astype(_F)


def mlas_logistic(v: np.ndarray) -> np.ndarray:
    """onnxruntime's MlasComputeLogistic (its FMA kernel, x86-64 with AVX2): within about
    1.2e-7 of the logistic, but not relatively close for very negative ``v`` (a difference
    from 1/2 there: below about -16 it is 0 or a few 1e-8)."""
    x = np.clip(v.astype(_F, copy=False), _F(-18), _F(18))
    x2 = x * x
    p = _fma(x2, _MLAS_P[0], _MLAS_P[1])
    for c in _MLAS_P[2:]:
        p = _fma(p, x2, c)
    q = _fma(x2, _MLAS_Q[0], _MLAS_Q[1])
    for c in _MLAS_Q[2:]:
        q = _fma(q, x2, c)
    return np.clip(p * x / q + _F(0.5), _F(0), _F(1))
