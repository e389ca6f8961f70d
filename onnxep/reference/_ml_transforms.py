"""The post-transforms of the ``ai.onnx.ml`` ops (the tree ensembles), in onnxruntime's
float32 formulas: LOGISTIC, SOFTMAX, SOFTMAX_ZERO and PROBIT, each on several scores per row.

onnxruntime computes them per score with C's float functions; the functions here follow
those formulas.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TRANSFORMS",
    "logistic",
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
