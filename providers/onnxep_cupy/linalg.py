"""MatMul and Gemm: ``matmul`` of the array module (cuBLAS on the GPU)."""

from __future__ import annotations

from typing import Any

from onnxep_cupy._backend import xp_of
from onnxep_cupy._registry import FLOATS, kernels

__all__ = ["gemm", "matmul"]


@kernels.register("MatMul", versions=(1, 9, 13), dtypes=FLOATS)
def matmul(A: Any, B: Any) -> Any:
    """numpy matmul semantics (1-D operands promoted, batch dims broadcast), as ONNX."""
    return xp_of(A, B).matmul(A, B)


@kernels.register("Gemm", versions=(7, 9, 11, 13), dtypes=FLOATS)
def gemm(
    A: Any,
    B: Any,
    C: Any = None,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,
    transB: int = 0,
) -> Any:
    """``alpha * A' @ B' + beta * C`` with C broadcast to the result."""
    xp = xp_of(A, B, C)
    y = xp.matmul(A.T if transA else A, B.T if transB else B)
    if alpha != 1.0:
        y *= alpha  # y is a fresh array, scaling in place saves one allocation
    if C is not None and beta != 0.0:
        y += C if beta == 1.0 else beta * C
    return y
