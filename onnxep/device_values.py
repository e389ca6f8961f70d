"""Values in device memory, told apart from host values and copied to the host.

A device value is anything with ``__cuda_array_interface__`` (CuPy, Numba, PyTorch CUDA
tensors) or DLPack-only (``__dlpack__`` without ``__array__``); numpy arrays and Python
values are host values.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from onnxep.errors import InvalidArgument

if TYPE_CHECKING:
    from onnxep.plan import TransferStats

__all__ = [
    "cupy_module",
    "device_of",
    "element_dtype",
    "from_pointer",
    "host_value",
    "is_device_array",
]

_DEVICES = {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda"}


def is_device_array(value: Any) -> bool:
    """Whether ``value`` is an array in device memory (CUDA array interface or DLPack only)."""
    if value is None or isinstance(value, (np.ndarray, np.generic)):
        return False
    return hasattr(value, "__cuda_array_interface__") or (
        hasattr(value, "__dlpack__") and not hasattr(value, "__array__")
    )


def host_value(value: Any, stats: TransferStats | None = None) -> Any:
    """``value`` in host memory: numpy and other host values unchanged, device arrays copied."""
    if not is_device_array(value):
        return value
    try:
        import cupy

        result = cupy.asnumpy(cupy.asarray(value))
    except ImportError:
        try:
            result = np.from_dlpack(value)
        except Exception as exc:
            raise InvalidArgument(
                f"cannot copy a {type(value).__name__} to the host without cupy: {exc}"
            ) from exc
    if stats is not None:
        stats.record(result)
    return result


def device_of(device_type: str) -> str:
    """``"cpu"`` or ``"cuda"`` for onnxruntime's device type names (``"gpu"`` is cuda)."""
    device = _DEVICES.get(str(device_type).lower())
    if device is None:
        raise InvalidArgument(f"unknown device_type {device_type!r}; onnxep has 'cpu' and 'cuda'")
    return device


def cupy_module() -> Any:
    """CuPy, imported for a value on ``"cuda"``; a clear error when it is not installed."""
    try:
        import cupy
    except ImportError as exc:
        raise InvalidArgument("a value on 'cuda' needs CuPy (pip install 'onnxep[gpu]')") from exc
    return cupy


def element_dtype(element_type: Any) -> np.dtype:
    """A numpy dtype from a numpy type or an onnx ``TensorProto`` element type number."""
    if isinstance(element_type, int | np.integer) and not isinstance(element_type, bool):
        try:
            return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(int(element_type)))
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidArgument(f"unknown onnx element type {element_type}") from exc
    try:
        return np.dtype(element_type)
    except TypeError as exc:
        raise InvalidArgument(f"not a tensor element type: {element_type!r}") from exc


def from_pointer(
    device: str, device_id: int, element_type: Any, shape: Sequence[int], ptr: int
) -> Any:
    """An array over someone else's memory at ``ptr`` (host or CUDA), not copied."""
    dtype = element_dtype(element_type)
    shape = tuple(int(d) for d in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if device == "cpu":
        buffer = (ctypes.c_char * nbytes).from_address(ptr)
        return np.frombuffer(buffer, dtype=dtype).reshape(shape)
    cupy = cupy_module()
    memory = cupy.cuda.UnownedMemory(ptr, nbytes, None, device_id)
    return cupy.ndarray(shape, dtype, cupy.cuda.MemoryPointer(memory, 0))
