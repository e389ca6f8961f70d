"""CuPy, imported lazily, and the few helpers that tell host arrays from device arrays.

Kernels are written once against the array API that numpy and CuPy share and pick the module
from their inputs (:func:`xp_of`): device values run on the GPU, host values (shapes, small
integer tensors) stay numpy. Importing this module never imports CuPy.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "cupy",
    "cupy_status",
    "is_host",
    "to_device",
    "to_host",
    "xp_of",
]


@functools.lru_cache(maxsize=1)
def _import_cupy() -> ModuleType | None:
    try:
        import cupy

        return cupy
    except Exception:  # ImportError, or a CUDA library missing at import time
        return None


def cupy() -> ModuleType:
    """The cupy module; raises ImportError with the reason when it cannot be imported."""
    module = _import_cupy()
    if module is None:
        try:
            import cupy as module
        except Exception as exc:
            raise ImportError(f"cupy cannot be imported: {type(exc).__name__}: {exc}") from exc
    return module


@functools.lru_cache(maxsize=1)
def cupy_status() -> tuple[bool, str]:
    """Whether CuPy can run kernels on a CUDA device here, and if not, why (never raises)."""
    try:
        import cupy as cp
    except Exception as exc:
        return False, f"cupy is not installed or fails to import ({type(exc).__name__}: {exc})"
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, driver too old, CUDA runtime missing
        return False, f"CUDA is unusable: {type(exc).__name__}: {exc}"
    if count < 1:
        return False, "no CUDA device found"
    try:
        if not cp.is_available():
            return False, "cupy.is_available() is False"
    except Exception as exc:
        return False, f"cupy.is_available() raised {type(exc).__name__}: {exc}"
    return True, f"{count} CUDA device(s)"


def is_host(value: Any) -> bool:
    """True for numpy arrays and scalars (and None): values that live in host memory."""
    return value is None or isinstance(value, (np.ndarray, np.generic, int, float, bool))


def xp_of(*arrays: Any) -> ModuleType:
    """numpy when every array is on the host, else cupy."""
    for a in arrays:
        if not is_host(a) and not isinstance(a, (list, tuple)):
            return cupy()
    return np


def to_device(value: Any) -> Any:
    """A host array copied to the current CUDA device (device arrays are returned as they are)."""
    if value is None:
        return None
    return cupy().asarray(value)


def to_host(value: Any) -> Any:
    """A device array copied to host memory (host arrays are returned as they are)."""
    if is_host(value):
        return value
    return cupy().asnumpy(value)
