"""MatMul and Gemm through BLAS micro-kernels driven by numba threads (:mod:`._blas`).

A parallel blocked GEMM loop written in numba reached 4-6 GFLOP/s where OpenBLAS's sgemm
reaches 100+ per core here (see docs/numba-provider.md), so the inner products are BLAS
calls, one per batch item or block, from a ``prange`` loop. Transposed operands are passed
to BLAS as transposed (no copy); Gemm's ``beta * C`` is BLAS's own ``beta`` on an output
pre-filled with the broadcast ``C``.
"""

from __future__ import annotations

import numpy as np

from onnxep.graph import NodeInfo
from onnxep_numba._blas import matmul as blas_matmul
from onnxep_numba._registry import FLOATS, NUMERIC, kernels

__all__ = ["gemm", "matmul"]


@kernels.register("MatMul", versions=(1, 9, 13), dtypes=NUMERIC)
def matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """numpy-style matrix product with broadcast batch dims (ONNX MatMul)."""
    return blas_matmul(A, B)


def _gemm_check(info: NodeInfo) -> str | None:
    for i in (0, 1):
        rank = info.input_type(i).rank
        if rank is not None and rank != 2:
            return f"input {i} has rank {rank}; Gemm takes matrices"
    return None


@kernels.register("Gemm", versions=(7, 9, 11, 13), dtypes=FLOATS, check=_gemm_check)
def gemm(
    A: np.ndarray,
    B: np.ndarray,
    C: np.ndarray | None = None,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,
    transB: int = 0,
) -> np.ndarray:
    """``alpha * A' @ B' + beta * C`` with C broadcast to the result (ONNX Gemm)."""
    a = A.T if transA else A
    b = B.T if transB else B
    if C is None or beta == 0.0:
        return blas_matmul(a, b, alpha=alpha)
    y = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    y[...] = C
    return blas_matmul(a, b, y, alpha=alpha, beta=beta)
