"""MatMul and Gemm through BLAS.

numba's own ``np.dot`` needs SciPy's BLAS bindings (not a dependency here), and a parallel
blocked loop written in numba reached 5-6 GFLOP/s against OpenBLAS's 25-200 GFLOP/s on
this project's 2-core CI machine (see docs/numba-provider.md), so both ops call numpy's
``matmul`` (OpenBLAS sgemm/dgemm) on C-contiguous or transposed operands, batch dims
broadcast by numpy; the bias/alpha epilogue of Gemm is applied in place.
"""

from __future__ import annotations

import numpy as np

from onnxep.graph import NodeInfo
from onnxep_numba._registry import FLOATS, NUMERIC, kernels

__all__ = ["gemm", "matmul"]


@kernels.register("MatMul", versions=(1, 9, 13), dtypes=NUMERIC)
def matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """numpy-style matrix product with broadcast batch dims (ONNX MatMul)."""
    return np.matmul(A, B)


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
    y = np.matmul(a, b)
    if alpha != 1.0:
        y *= y.dtype.type(alpha)
    if C is not None and beta != 0.0:
        c = C if beta == 1.0 else C * C.dtype.type(beta)
        y += c
    return y
