"""Multinomial, which onnx's reference implementation lacks (onnxruntime runs it).

Samples come from numpy's generator, so they never equal onnxruntime's; their distribution
does. With a ``seed`` the node keeps one generator for the session, so a session's sequence
of draws repeats from run to run of the program, as onnxruntime's does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import TensorProto

from onnxep.graph import NodeInfo
from onnxep.reference._common import FLOATS, factory
from onnxep.reference._registry import kernels

__all__: list[str] = []

_INDEX_TYPES = {TensorProto.INT32: np.int32, TensorProto.INT64: np.int64}


def _check(info: NodeInfo) -> str | None:
    if info.attrs.get("dtype", TensorProto.INT32) not in _INDEX_TYPES:
        return "Multinomial's dtype must be int32 or int64"
    return None


@kernels.register("Multinomial", versions=(7, 22), dtypes=FLOATS, check=_check, factory=True)
@factory(dtype=TensorProto.INT32, sample_size=1, seed=None)
def multinomial(info: NodeInfo, attrs: dict[str, Any]) -> Callable[[Any], np.ndarray]:
    """``sample_size`` class indices per row of unnormalised log-probabilities."""
    seed = attrs["seed"]
    rng = np.random.default_rng(None if seed is None else int(np.float32(seed).view(np.uint32)))
    index_type, count = _INDEX_TYPES[attrs["dtype"]], attrs["sample_size"]

    def run(input: Any) -> np.ndarray:
        logits = np.asarray(input, np.float64)
        if logits.ndim != 2:
            raise ValueError(
                f"Multinomial expects (batch, classes) log-probabilities, got shape {logits.shape}"
            )
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        cdf = np.cumsum(weights, axis=1)
        draws = rng.random((logits.shape[0], count)) * cdf[:, -1:]
        picks = [np.searchsorted(row, u, side="right") for row, u in zip(cdf, draws)]
        out = np.array(picks, dtype=index_type).reshape(logits.shape[0], count)
        return np.minimum(out, logits.shape[1] - 1)  # a draw of exactly the total

    return run
