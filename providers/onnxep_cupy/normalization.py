"""BatchNormalization (inference), Softmax/LogSoftmax, LayerNormalization and reductions.

float16 inputs are normalised and reduced in float32 and rounded once at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep_cupy._backend import xp_of
from onnxep_cupy._fused import run_spec
from onnxep_cupy._registry import FLOATS, kernels
from onnxep_cupy.codegen import EwNode, fuse_tree

__all__ = ["BATCH_NORMS", "batch_norm", "bn_affine", "layer_normalization", "softmax"]

_EPS = 9.999999747378752e-06  # the schemas' float32 1e-5
_MOMENTUM = 0.8999999761581421
_SCALE_SHIFT = fuse_tree(EwNode("Add", ("xs", "b"), "y"), {"xs": EwNode("Mul", ("x", "s"), "xs")})


def bn_affine(scale: Any, B: Any, mean: Any, var: Any, epsilon: float) -> tuple[Any, Any]:
    """BatchNorm as ``x * s + t``: ``s = scale / sqrt(var + eps)``, ``t = B - mean * s``."""
    xp = xp_of(scale, B, mean, var)
    s = scale.astype(np.float32) / xp.sqrt(var.astype(np.float32) + np.float32(epsilon))
    return s, B.astype(np.float32) - mean.astype(np.float32) * s


def _inference_check(info: NodeInfo) -> str | None:
    if info.attrs.get("training_mode", 0):
        return "training_mode=1 is not supported (inference only)"
    if any(info.node.outputs[1:]):
        return "running statistics outputs are not supported (inference only)"
    return None


@kernels.register("BatchNormalization", versions=(14, 15), dtypes=FLOATS, check=_inference_check)
def batch_norm(
    X: Any,
    scale: Any,
    B: Any,
    input_mean: Any,
    input_var: Any,
    *,
    epsilon: float = _EPS,
    momentum: float = _MOMENTUM,
    training_mode: int = 0,
) -> tuple[Any, ...]:
    """Inference BatchNorm over axis 1, as one fused multiply-add kernel."""
    s, t = bn_affine(scale, B, input_mean, input_var, epsilon)
    shape = (1, -1, *(1,) * (X.ndim - 2))
    y = run_spec(
        _SCALE_SHIFT, X, s.astype(X.dtype).reshape(shape), t.astype(X.dtype).reshape(shape)
    )
    return (y, None, None, None, None)


@kernels.register("BatchNormalization", versions=(9,), dtypes=FLOATS, check=_inference_check)
def batch_norm_9(
    X: Any,
    scale: Any,
    B: Any,
    mean: Any,
    var: Any,
    *,
    epsilon: float = _EPS,
    momentum: float = _MOMENTUM,
) -> tuple[Any, ...]:
    """BatchNormalization-9 (its statistics inputs are named ``mean`` and ``var``)."""
    return batch_norm(X, scale, B, mean, var, epsilon=epsilon)


#: The BatchNormalization kernels (the compiler folds them into a preceding Conv).
BATCH_NORMS = (batch_norm, batch_norm_9)


def _softmax_last(x: Any, axis: int, log: bool) -> Any:
    xp = xp_of(x)
    x32 = x.astype(np.float32, copy=False)
    shifted = x32 - x32.max(axis=axis, keepdims=True)
    e = xp.exp(shifted)
    total = e.sum(axis=axis, keepdims=True)
    y = shifted - xp.log(total) if log else e / total
    return y.astype(x.dtype, copy=False)


def _coerced(x: Any, axis: int, log: bool) -> Any:
    """Softmax-1/11: over the flattened axes from ``axis`` on."""
    axis = axis % x.ndim if x.ndim else 0
    flat = x.reshape(int(np.prod(x.shape[:axis])), -1)
    return _softmax_last(flat, 1, log).reshape(x.shape)


@kernels.register("Softmax", versions=(13,), dtypes=FLOATS)
def softmax(input: Any, *, axis: int = -1) -> Any:
    """Softmax along one axis (max-subtracted)."""
    return _softmax_last(input, axis, log=False)


@kernels.register("Softmax", versions=(1, 11), dtypes=FLOATS)
def softmax_11(input: Any, *, axis: int = 1) -> Any:
    """Softmax-1/11: the input is coerced to 2-D at ``axis``."""
    return _coerced(input, axis, log=False)


@kernels.register("LogSoftmax", versions=(13,), dtypes=FLOATS)
def log_softmax(input: Any, *, axis: int = -1) -> Any:
    """Log of softmax, computed as ``x - max - log(sum(exp(x - max)))``."""
    return _softmax_last(input, axis, log=True)


@kernels.register("LogSoftmax", versions=(1, 11), dtypes=FLOATS)
def log_softmax_11(input: Any, *, axis: int = 1) -> Any:
    """LogSoftmax-1/11 (coerced to 2-D)."""
    return _coerced(input, axis, log=True)


@kernels.register("LayerNormalization", versions=(17,), dtypes=FLOATS)
def layer_normalization(
    X: Any,
    Scale: Any,
    B: Any = None,
    *,
    axis: int = -1,
    epsilon: float = _EPS,
    stash_type: int = 1,
) -> tuple[Any, Any, Any]:
    """Normalise over the axes from ``axis`` on; returns ``(Y, Mean, InvStdDev)``."""
    xp = xp_of(X, Scale, B)
    axes = tuple(range(axis % X.ndim, X.ndim))
    x32 = X.astype(np.float32, copy=False)
    mean = x32.mean(axis=axes, keepdims=True)
    centred = x32 - mean
    inv = 1.0 / xp.sqrt((centred * centred).mean(axis=axes, keepdims=True) + np.float32(epsilon))
    y = centred * inv * Scale
    if B is not None:
        y += B
    return y.astype(X.dtype, copy=False), mean, inv


# --- reductions ---------------------------------------------------------------------------
def _reduce(name: str, data: Any, axes: Any, keepdims: int, noop: int) -> Any:
    if axes is None or len(axes) == 0:
        if noop:
            return data
        axes = tuple(range(data.ndim))
    axes = tuple(int(a) % max(data.ndim, 1) for a in np.asarray(axes).reshape(-1))
    if name == "max":
        return data.max(axis=axes, keepdims=bool(keepdims))
    acc = np.float32 if data.dtype == np.float16 else None
    out = getattr(data, name)(axis=axes, keepdims=bool(keepdims), dtype=acc)
    return out.astype(data.dtype, copy=False)


def _attr_axes(name: str, op: str, versions: tuple[int, ...]) -> None:
    def kernel(data: Any, *, axes: tuple[int, ...] | None = None, keepdims: int = 1) -> Any:
        return _reduce(name, data, axes, keepdims, 0)

    kernel.__name__ = f"reduce_{name}"
    kernel.__doc__ = f"{op} with the axes as an attribute."
    kernels.register(op, versions=versions, dtypes=FLOATS)(kernel)


def _input_axes(name: str, op: str, versions: tuple[int, ...]) -> None:
    def kernel(
        data: Any, axes: Any = None, *, keepdims: int = 1, noop_with_empty_axes: int = 0
    ) -> Any:
        return _reduce(name, data, axes, keepdims, noop_with_empty_axes)

    kernel.__name__ = f"reduce_{name}_input_axes"
    kernel.__doc__ = f"{op} with the axes as a (host) input."
    kernels.register(op, versions=versions, dtypes=FLOATS, host_inputs=(1,))(kernel)


_attr_axes("mean", "ReduceMean", (1, 11, 13))
_input_axes("mean", "ReduceMean", (18,))
_attr_axes("sum", "ReduceSum", (1, 11))
_input_axes("sum", "ReduceSum", (13,))
_attr_axes("max", "ReduceMax", (1, 11, 12, 13))
_input_axes("max", "ReduceMax", (18, 20))
