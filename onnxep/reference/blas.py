"""Matrix products through numpy's BLAS, run on one thread when they are small.

OpenBLAS splits every product above a small size over all its threads, and its threads
sleep between calls: waking them costs more than a mid-sized product gains from them.
Measured on 2 cores with a numpy op between products (as in a model): a 68x68 @ 68x196
product takes 24 us on two threads and 14 us on one; from about 2M multiply-adds on, two
threads win. ShuffleNet (grouped 1x1 convs) runs about 15% faster with its small products
on one thread, and SqueezeNet (large products) is unchanged.

OpenBLAS's thread count is process-wide (``openblas_set_num_threads_local`` too, in the
pthreads builds numpy ships), so concurrent single-thread sections are counted under a
lock: the first one saves the count and sets 1, the last one restores it. Another thread's
large product that starts inside such a section runs on one thread. Like any change of
thread count, one thread may round a product differently in the last bits.
With a BLAS other than OpenBLAS, or none found, products run as numpy runs them.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ONE_THREAD_BELOW", "matmul"]

#: Products with fewer multiply-adds per matrix than this run on one thread.
ONE_THREAD_BELOW = 1 << 21
#: OpenBLAS itself runs products below this on one thread (``interface/gemm.c``).
_OPENBLAS_ONE_THREAD = 65536 * 4


def _openblas_controls() -> tuple[Callable[[], int], Callable[[int], Any]] | None:
    """The get/set thread-count functions of the OpenBLAS numpy loaded, if any."""
    folder = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    names = (
        ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
        ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
        ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
        ("openblas_get_num_threads", "openblas_set_num_threads"),
    )
    for path in sorted(glob.glob(os.path.join(folder, "lib*openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in names:
            get, put = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get is not None and put is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                put.restype, put.argtypes = None, [ctypes.c_int]
                return get, put
    return None


_controls = _openblas_controls()
_lock = threading.Lock()
_depth = 0
_saved = 1


def _enter_one_thread() -> None:
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = _controls[0]()
            if _saved > 1:
                _controls[1](1)
        _depth += 1


def _leave_one_thread() -> None:
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0 and _saved > 1:
            _controls[1](_saved)


def _madds_per_matrix(a: np.ndarray, b: np.ndarray) -> int:
    rows = a.shape[-2] if a.ndim > 1 else 1
    cols = b.shape[-1] if b.ndim > 1 else 1
    return rows * a.shape[-1] * cols


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)``, on one BLAS thread when each product is small."""
    if _controls is None or a.dtype.kind != "f":
        return np.matmul(a, b, out=out)
    madds = _madds_per_matrix(a, b)
    if madds < _OPENBLAS_ONE_THREAD or madds >= ONE_THREAD_BELOW:
        return np.matmul(a, b, out=out)
    _enter_one_thread()
    try:
        return np.matmul(a, b, out=out)
    finally:
        _leave_one_thread()
