"""numpy's OpenBLAS thread count, capped while a session with ``intra_op_num_threads`` runs.

onnxruntime scripts set ``SessionOptions.intra_op_num_threads`` (often to 1) to bound the
cores a session uses. The reference path's matrix products are numpy's, run by OpenBLAS on
all cores, so the setting caps OpenBLAS's threads for the duration of each run. It matters
most on a busy machine: OpenBLAS's threads then wait on each other for scheduler ticks
(light SqueezeNet, the other core loaded: 22.8 ms on two threads, 9.1 ms on one).

OpenBLAS's count is process-wide (``openblas_set_num_threads_local`` too, in the pthreads
builds numpy ships), so concurrent runs are tracked under a lock: the count is the smallest
cap of the runs in progress, and the count found before the first one is restored after the
last. A numpy product of other code that overlaps such a run is capped too. Without
OpenBLAS (another BLAS, or none found) this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["capped", "controls", "numpy_openblas", "numpy_openblas_path"]


def numpy_openblas_path() -> str | None:
    """The OpenBLAS library numpy's wheel bundles (``numpy.libs``), or None."""
    folder = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    found = sorted(glob.glob(os.path.join(folder, "lib*openblas*.so*")))
    return found[0] if found else None


def numpy_openblas() -> ctypes.CDLL | None:
    """numpy's own OpenBLAS instance (the loaded library, not a copy), or None."""
    path = numpy_openblas_path()
    if path is None:
        return None
    try:
        return ctypes.CDLL(path)
    except OSError:
        return None


def _find_controls() -> tuple[Callable[[], int], Callable[[int], Any]] | None:
    names = (
        ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
        ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
        ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
        ("openblas_get_num_threads", "openblas_set_num_threads"),
    )
    lib = numpy_openblas()
    if lib is None:
        return None
    for get_name, set_name in names:
        get, put = getattr(lib, get_name, None), getattr(lib, set_name, None)
        if get is not None and put is not None:
            get.restype, get.argtypes = ctypes.c_int, []
            put.restype, put.argtypes = None, [ctypes.c_int]
            return get, put
    return None


_controls = _find_controls()
_lock = threading.Lock()
_caps: list[int] = []
_original = 0


def controls() -> tuple[Callable[[], int], Callable[[int], Any]] | None:
    """(get, set) of numpy's OpenBLAS thread count, or None when numpy's BLAS is not one."""
    return _controls


@contextlib.contextmanager
def capped(threads: int | None) -> Iterator[None]:
    """At most ``threads`` OpenBLAS threads inside the block (None or 0: no cap)."""
    if not threads or _controls is None:
        yield
        return
    get, put = _controls
    global _original
    with _lock:
        if not _caps:
            _original = get()
        _caps.append(int(threads))
        put(min(min(_caps), _original))
    try:
        yield
    finally:
        with _lock:
            _caps.remove(int(threads))
            put(min(min(_caps), _original) if _caps else _original)
