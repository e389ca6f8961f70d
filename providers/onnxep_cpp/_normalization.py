"""Softmax (opset 13 semantics only) and LayerNormalization (``csrc/norm.cpp``)."""

from __future__ import annotations

import numpy as np

from onnxep.graph import NodeInfo
from onnxep_cpp._registry import FLOAT, kernels, native

__all__: list[str] = []


@kernels.register("Softmax", versions=(13,), dtypes=FLOAT)
def softmax(input: np.ndarray, *, axis: int = -1, threads: int = 0) -> np.ndarray:
    """exp(x - max) / sum along ``axis``; Softmax-1/11 (2-D coercion) stay elsewhere."""
    return native.softmax(input, axis=axis, threads=threads)


def _check_layer_norm(info: NodeInfo) -> str | None:
    if info.attrs.get("stash_type", 1) != 1:
        return "stash_type other than 1 (float32 statistics) is not implemented"
    return None


@kernels.register("LayerNormalization", versions=(17,), dtypes=FLOAT, check=_check_layer_norm)
def layer_normalization(
    X: np.ndarray,
    Scale: np.ndarray,
    B: np.ndarray | None = None,
    *,
    axis: int = -1,
    epsilon: float = 9.999999747378752e-06,
    stash_type: int = 1,
    threads: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Y, Mean, InvStdDev) over ``X.shape[axis:]``; Scale and B broadcast to that shape."""
    normalized = X.shape[axis % X.ndim if X.ndim else 0 :]
    Scale = _fit(Scale, normalized)
    B = None if B is None else _fit(B, normalized)
    return native.layer_norm(X, Scale, B, axis=axis, epsilon=epsilon, threads=threads)


def _fit(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as one value per normalized element (a copy only when it broadcasts)."""
    if value.shape == shape:
        return value
    return np.ascontiguousarray(np.broadcast_to(value, shape))
