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


def _check_batch_norm(info: NodeInfo) -> str | None:
    if info.attrs.get("training_mode", 0):
        return "training_mode=1 is not implemented (inference only)"
    if any(info.node.outputs[1:]):
        return "the running/saved statistics outputs (training) are not implemented"
    shape = info.input_shape(0)
    if shape is not None and len(shape) < 2:
        return f"input rank {len(shape)}: needs (N, C, ...)"
    return None


def folded_batch_norm(
    scale: np.ndarray, B: np.ndarray, mean: np.ndarray, var: np.ndarray, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (a, b) with BatchNormalization(x) == x * a + b."""
    a = (scale / np.sqrt(var + np.float32(epsilon))).astype(np.float32, copy=False)
    return a, (B - mean * a).astype(np.float32, copy=False)


@kernels.register("BatchNormalization", versions=(9, 14, 15), dtypes=FLOAT, check=_check_batch_norm)
def batch_normalization(
    X: np.ndarray,
    scale: np.ndarray,
    B: np.ndarray,
    input_mean: np.ndarray,
    input_var: np.ndarray,
    *,
    epsilon: float = 9.999999747378752e-06,
    momentum: float = 0.8999999761581421,
    training_mode: int = 0,
    threads: int = 0,
) -> tuple[np.ndarray]:
    """Inference mode: (Y,) with Y = (X - mean) / sqrt(var + epsilon) * scale + B per channel."""
    a, b = folded_batch_norm(scale, B, input_mean, input_var, epsilon)
    return (native.channel_affine(X, a, b, threads=threads),)
