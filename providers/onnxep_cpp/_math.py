"""Gemm and MatMul: thin wrappers over the blocked SIMD GEMM of ``csrc/gemm.cpp``."""

from __future__ import annotations

import numpy as np

from onnxep_cpp._registry import FLOAT, kernels, native, rank_check

__all__: list[str] = []


@kernels.register("Gemm", versions=(7, 9, 11, 13), dtypes=FLOAT, check=rank_check((2,), (2,)))
def gemm(
    A: np.ndarray,
    B: np.ndarray,
    C: np.ndarray | None = None,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,
    transB: int = 0,
    threads: int = 0,
) -> np.ndarray:
    """alpha * op(A) @ op(B) + beta * C, C broadcast to the output."""
    return native.gemm(
        A,
        B,
        C,
        alpha=alpha,
        beta=beta,
        trans_a=bool(transA),
        trans_b=bool(transB),
        threads=threads,
    )


@kernels.register("MatMul", versions=(1, 9, 13), dtypes=FLOAT)
def matmul(A: np.ndarray, B: np.ndarray, *, threads: int = 0) -> np.ndarray:
    """numpy.matmul semantics: batched, broadcast batch dims, 1-D operands."""
    return native.matmul(A, B, threads=threads)
