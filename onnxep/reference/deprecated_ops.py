"""Deprecated ops that onnx's reference implementation no longer runs.

``Scatter`` (opsets 9-10, deprecated in 11 for ScatterElements) still appears in models
exported for old opsets, and onnxruntime runs it.
"""

from __future__ import annotations

import numpy as np

from onnxep.reference._registry import kernels

__all__: list[str] = []


@kernels.register("Scatter", versions=(9, 11))
def scatter(
    data: np.ndarray, indices: np.ndarray, updates: np.ndarray, *, axis: int = 0
) -> np.ndarray:
    """ScatterElements semantics: ``out[..., indices[i], ...] = updates[i]`` along ``axis``."""
    out = np.array(data, copy=True)
    axis = axis % max(out.ndim, 1)
    index = np.where(indices < 0, indices + out.shape[axis], indices)
    np.put_along_axis(out, index, updates, axis)
    return out
