"""Batched GEMM: BLAS micro-kernels driven by numba's thread pool.

numba's own ``np.dot`` needs SciPy's BLAS bindings (not a dependency). Instead the
``cblas_?gemm`` of a private, single-threaded copy of numpy's OpenBLAS
(:mod:`onnxep_numba._openblas`) is called through ctypes function pointers passed to a
``prange`` loop: each task runs one GEMM on one batch item, or on a block of columns/rows
of it. One thread pool (numba's) does all the work. Without a usable OpenBLAS (another
numpy build) :func:`matmul` is ``np.matmul``.

Operands may be transposed views (strides are read, not copied); batch dims broadcast.
"""

from __future__ import annotations

import numba
import numpy as np

from onnxep_numba._jit import jit
from onnxep_numba._openblas import Blas, blas

__all__ = ["gemm_available", "matmul"]

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def gemm_available() -> bool:
    """Whether GEMMs run through numba-driven BLAS (else numpy's matmul)."""
    return blas() is not None


@jit
def _gemm_tasks(fn, geo, pa, offa, pb, offb, pc, offc, alpha, beta, splits, split_n):
    ta, tb, m, n, k = geo[0], geo[1], geo[2], geo[3], geo[4]
    lda, ldb, ldc, size = geo[5], geo[6], geo[7], geo[8]
    batch = offc.shape[0]
    for t in numba.prange(batch * splits):
        bi = t // splits
        s = t - bi * splits
        a0, b0, c0 = offa[bi], offb[bi], offc[bi]
        mm, nn = m, n
        if split_n:
            step = (n + splits - 1) // splits
            j0 = min(n, s * step)
            nn = min(n, j0 + step) - j0
            b0 += j0 * ldb if tb else j0
            c0 += j0
        else:
            step = (m + splits - 1) // splits
            i0 = min(m, s * step)
            mm = min(m, i0 + step) - i0
            a0 += i0 if ta else i0 * lda
            c0 += i0 * ldc
        if mm > 0 and nn > 0:
            fn(
                101,
                112 if ta else 111,
                112 if tb else 111,
                mm,
                nn,
                k,
                alpha,
                pa + a0 * size,
                lda,
                pb + b0 * size,
                ldb,
                beta,
                pc + c0 * size,
                ldc,
            )


@jit
def _gemv_tasks(fn, geo, pa, px, py, alpha, beta, splits):
    """``y = alpha * op(A) @ x + beta * y`` with the output split into ``splits`` blocks."""
    trans, rows, cols, lda, incx, size = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    n_out = cols if trans else rows
    step = (n_out + splits - 1) // splits
    for s in numba.prange(splits):
        o0 = min(n_out, s * step)
        count = min(n_out, o0 + step) - o0
        if count > 0:
            if trans:  # output j is column j of A: a block of columns
                fn(101, 112, rows, count, alpha, pa + o0 * size, lda, px, incx, beta,
                   py + o0 * size, 1)  # fmt: skip
            else:  # output i is row i of A: a block of rows
                fn(101, 111, count, cols, alpha, pa + o0 * lda * size, lda, px, incx, beta,
                   py + o0 * size, 1)  # fmt: skip


def _operand(x: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, bool, int]:
    """(array, transposed, leading dim) for a BLAS operand whose last two dims are its matrix."""
    size = x.itemsize
    s_row, s_col = x.strides[-2], x.strides[-1]
    if all(s >= 0 and s % size == 0 for s in x.strides):
        if s_col == size or cols == 1:
            ld = s_row // size if rows > 1 else cols
            if ld >= max(1, cols):
                return x, False, ld
        if s_row == size or rows == 1:
            ld = s_col // size if cols > 1 else rows
            if ld >= max(1, rows):
                return x, True, ld
    return np.ascontiguousarray(x), False, max(1, cols)


def _offsets(x: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
    """Element offset of each batch item of ``x`` (broadcast dims repeat offset 0)."""
    lead = len(batch) - (x.ndim - 2)
    total = np.zeros(batch, dtype=np.int64)
    for d in range(x.ndim - 2):
        n = x.shape[d]
        step = 0 if n == 1 else x.strides[d] // x.itemsize
        shape = [1] * len(batch)
        shape[lead + d] = batch[lead + d]
        total = total + (np.arange(batch[lead + d], dtype=np.int64) * step).reshape(shape)
    return np.ascontiguousarray(total.reshape(-1))


def matmul(
    a: np.ndarray,
    b: np.ndarray,
    out: np.ndarray | None = None,
    *,
    alpha: float = 1.0,
    beta: float = 0.0,
) -> np.ndarray:
    """``alpha * a @ b + beta * out`` with numpy's matmul semantics (1-D, broadcasting)."""
    lib = blas()
    if lib is None or a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        result = np.matmul(a, b) * alpha if alpha != 1.0 else np.matmul(a, b)
        if out is None:
            return result
        out[...] = result + (beta * out if beta else 0)
        return out
    vec_a, vec_b = a.ndim == 1, b.ndim == 1
    a2 = a.reshape(1, -1) if vec_a else a
    b2 = b.reshape(-1, 1) if vec_b else b
    m, k = a2.shape[-2:]
    n = b2.shape[-1]
    if b2.shape[-2] != k:
        raise ValueError(f"matmul: inner dims differ ({k} vs {b2.shape[-2]})")
    batch = tuple(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]))
    target = out
    if out is None or not out.flags.c_contiguous:
        target = np.empty((*batch, m, n), dtype=a.dtype)
        if out is not None and beta:
            target[...] = out.reshape(target.shape)
        beta = beta if out is not None else 0.0
    if target.size and k == 0:
        target *= beta
    elif target.size:
        _run(lib, a2, b2, target.reshape((*batch, m, n)), batch, (m, n, k), alpha, beta)
    if out is not None and target is not out:
        out[...] = target.reshape(out.shape)
    out = target if out is None else out
    if vec_a or vec_b:
        shape = batch + ((m,) if not vec_a else ()) + ((n,) if not vec_b else ())
        return out.reshape(shape)
    return out


def _run(
    lib: Blas,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    batch: tuple[int, ...],
    mnk: tuple[int, int, int],
    alpha: float,
    beta: float,
) -> None:
    m, n, k = mnk
    a, ta, lda = _operand(a, m, k)
    b, tb, ldb = _operand(b, k, n)
    items = int(np.prod(batch, dtype=np.int64))
    threads = numba.get_num_threads()
    if items == 1 and (m == 1 or n == 1):  # a matrix-vector product: GEMM would pack A
        _run_gemv(lib, (a, ta, lda), (b, tb, ldb), c, (m, n, k), alpha, beta, threads)
        return
    splits, split_n = 1, True
    if items < threads:
        split_n = n >= m
        splits = max(1, min(-(-threads // items), (n if split_n else m) // 32))
    geo = np.array([ta, tb, m, n, k, lda, ldb, n, a.itemsize], dtype=np.int64)
    fn = lib.sgemm if a.dtype == np.float32 else lib.dgemm
    real = a.dtype.type
    offsets = (_offsets(a, batch), _offsets(b, batch), np.arange(items, dtype=np.int64) * (m * n))
    lib.single_threaded()
    _gemm_tasks(
        fn,
        geo,
        a.ctypes.data,
        offsets[0],
        b.ctypes.data,
        offsets[1],
        c.ctypes.data,
        offsets[2],
        real(alpha),
        real(beta),
        splits,
        split_n,
    )


def _run_gemv(
    lib: Blas,
    a: tuple[np.ndarray, bool, int],
    b: tuple[np.ndarray, bool, int],
    c: np.ndarray,
    mnk: tuple[int, int, int],
    alpha: float,
    beta: float,
    threads: int,
) -> None:
    """``c = alpha * a @ b + beta * c`` where ``a`` is one row or ``b`` one column."""
    m, n, k = mnk
    (xa, ta, lda), (xb, tb, ldb) = a, b
    if m == 1:  # c^T = b^T a^T: the matrix is b, stored (k, n), or (n, k) when transposed
        matrix, vector = xb, xa
        trans, rows, cols, ld = (False, n, k, ldb) if tb else (True, k, n, ldb)
        inc = lda if ta else 1
    else:  # n == 1: the matrix is a, stored (m, k), or (k, m) when transposed
        matrix, vector = xa, xb
        trans, rows, cols, ld = (True, k, m, lda) if ta else (False, m, k, lda)
        inc = 1 if tb else ldb
    n_out = cols if trans else rows
    splits = max(1, min(threads, n_out // 64))
    geo = np.array([trans, rows, cols, ld, inc, matrix.itemsize], dtype=np.int64)
    fn = lib.sgemv if matrix.dtype == np.float32 else lib.dgemv
    real = matrix.dtype.type
    lib.single_threaded()
    _gemv_tasks(
        fn, geo, matrix.ctypes.data, vector.ctypes.data, c.ctypes.data, real(alpha), real(beta),
        splits,
    )  # fmt: skip
