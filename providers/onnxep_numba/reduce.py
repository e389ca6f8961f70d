"""ReduceSum, ReduceMean, ReduceMax: axes as attribute (older opsets) or input (newer).

The reduced axes are made one contiguous block (a transposed copy only when they are not),
then a ``prange`` loop reduces ``[outer, reduced, inner]`` with float64 accumulators.
Empty reductions give 0 (sum), NaN (mean) and -inf (max), as onnxruntime does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from onnxep_numba._jit import jit
from onnxep_numba._registry import FLOATS, contiguous, kernels

__all__ = ["reduce"]

SUM, MEAN, MAX = range(3)


@jit
def _reduce3(x, y, op):
    outer, n, inner = x.shape
    for o in numba.prange(outer):
        acc = np.empty(inner)
        for i in range(inner):
            acc[i] = -np.inf if op == 2 else 0.0
        for r in range(n):
            for i in range(inner):
                v = x[o, r, i]
                if op == 2:
                    acc[i] = v if (v > acc[i] or v != v) else acc[i]
                else:
                    acc[i] += v
        for i in range(inner):
            y[o, i] = acc[i] / n if op == 1 else acc[i]


def reduce(
    data: np.ndarray, axes: Sequence[int] | None, keepdims: int, noop: int, op: int
) -> np.ndarray:
    """Reduce ``data`` over ``axes`` (all axes when empty, unless ``noop``)."""
    x = np.asarray(data)
    if not axes:
        if noop:
            return x.copy()
        axes = range(x.ndim)
    red = sorted({int(a) % x.ndim for a in axes}) if x.ndim else []
    keep = [a for a in range(x.ndim) if a not in red]
    if red and red != list(range(red[0], red[0] + len(red))):
        x = np.transpose(x, [*keep, *red])
        first = len(keep)
    else:
        first = red[0] if red else x.ndim
    x = contiguous(x)
    shape = x.shape
    outer = int(np.prod(shape[:first], dtype=np.int64))
    n = int(np.prod(shape[first : first + len(red)], dtype=np.int64))
    inner = int(np.prod(shape[first + len(red) :], dtype=np.int64))
    y = np.empty((outer, inner), dtype=x.dtype)
    if y.size:
        _reduce3(x.reshape(outer, n, inner), y, op)
    out_shape = (
        [1 if a in red else d for a, d in enumerate(data.shape)]
        if keepdims
        else [data.shape[a] for a in keep]
    )
    return y.reshape(out_shape)


def _attr_kernel(op: int, name: str):
    def kernel(data: np.ndarray, *, axes: tuple[int, ...] = (), keepdims: int = 1) -> np.ndarray:
        return reduce(data, axes, keepdims, 0, op)

    kernel.__name__ = kernel.__qualname__ = name
    kernel.__doc__ = f"ONNX {name} with ``axes`` as an attribute."
    return kernel


def _input_kernel(op: int, name: str):
    def kernel(
        data: np.ndarray,
        axes: np.ndarray | None = None,
        *,
        keepdims: int = 1,
        noop_with_empty_axes: int = 0,
    ) -> np.ndarray:
        listed = () if axes is None else tuple(int(a) for a in np.asarray(axes).reshape(-1))
        return reduce(data, listed, keepdims, noop_with_empty_axes, op)

    kernel.__name__ = kernel.__qualname__ = name
    kernel.__doc__ = f"ONNX {name} with ``axes`` as an input."
    return kernel


kernels.register("ReduceSum", versions=(1, 11), dtypes=FLOATS)(_attr_kernel(SUM, "reduce_sum"))
kernels.register("ReduceSum", versions=(13,), dtypes=FLOATS, host_inputs=(1,))(
    _input_kernel(SUM, "reduce_sum")
)
kernels.register("ReduceMean", versions=(1, 11, 13), dtypes=FLOATS)(
    _attr_kernel(MEAN, "reduce_mean")
)
kernels.register("ReduceMean", versions=(18,), dtypes=FLOATS, host_inputs=(1,))(
    _input_kernel(MEAN, "reduce_mean")
)
kernels.register("ReduceMax", versions=(1, 11, 12, 13), dtypes=FLOATS)(
    _attr_kernel(MAX, "reduce_max")
)
kernels.register("ReduceMax", versions=(18, 20), dtypes=FLOATS, host_inputs=(1,))(
    _input_kernel(MAX, "reduce_max")
)
