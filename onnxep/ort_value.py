"""onnxruntime's ``OrtValue``: a value (tensor, sequence, map or empty optional) that knows
which device holds it.

An onnxep OrtValue wraps what onnxep computes with: a numpy array on ``"cpu"`` (shared, not
copied, like onnxruntime's ``ortvalue_from_numpy``), a CuPy array on ``"cuda"``, or a list or
dict for sequences and maps. Sessions take OrtValues wherever onnxruntime does (``run``
feeds, ``run_with_ort_values``, ``IOBinding.bind_ortvalue_input/output``) and return them
from ``run_with_ort_values`` and ``IOBinding.get_outputs``. Device arrays cross DLPack
(``__dlpack__``) and ``__cuda_array_interface__`` unchanged, so ``cupy.asarray(value)`` or
``torch.from_dlpack(value)`` read a device result without a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from onnxep import errors
from onnxep.device_values import cupy_module, device_of, element_dtype, host_value, is_device_array
from onnxep.errors import InvalidArgument
from onnxep.graph import tensor_type_text

__all__ = ["OrtValue", "copy_tensors", "unwrap", "write"]

_DLPACK_CPU = 1


class OrtValue:
    """A value and where it lives, with onnxruntime's ``OrtValue`` methods."""

    def __init__(self, value: Any) -> None:
        self._value = value._value if isinstance(value, OrtValue) else value

    # --- construction, as onnxruntime's class methods ---------------------------------
    @classmethod
    def ortvalue_from_numpy(
        cls, numpy_obj: Any, device_type: str = "cpu", device_id: int = 0, vendor_id: int = -1
    ) -> OrtValue:
        """A tensor from an array: shared on ``"cpu"`` when contiguous, copied to a device."""
        array = np.ascontiguousarray(numpy_obj)
        if device_of(device_type) == "cpu":
            return cls(array)
        cupy = cupy_module()
        with cupy.cuda.Device(device_id):
            return cls(cupy.asarray(array))

    @classmethod
    def ortvalue_from_numpy_with_onnx_type(cls, data: Any, onnx_element_type: int) -> OrtValue:
        """``data``'s bytes reinterpreted as ``onnx_element_type`` (same item size), no copy."""
        array = np.ascontiguousarray(data)
        dtype = element_dtype(int(onnx_element_type))
        if dtype.itemsize != array.dtype.itemsize:
            raise InvalidArgument(
                f"onnx element type {onnx_element_type} ({dtype}) has {dtype.itemsize}-byte "
                f"items but the array's {array.dtype} has {array.dtype.itemsize}"
            )
        return cls(array.view(dtype))

    @classmethod
    def ortvalue_from_shape_and_type(
        cls,
        shape: Sequence[int],
        element_type: Any,
        device_type: str = "cpu",
        device_id: int = 0,
        vendor_id: int = -1,
    ) -> OrtValue:
        """An uninitialised tensor; ``element_type`` is a numpy type or an onnx type number."""
        dtype, dims = element_dtype(element_type), tuple(int(d) for d in shape)
        if any(d < 0 for d in dims):
            raise InvalidArgument(f"a tensor shape cannot have negative dims: {list(dims)}")
        if device_of(device_type) == "cpu":
            return cls(np.empty(dims, dtype))
        cupy = cupy_module()
        with cupy.cuda.Device(device_id):
            return cls(cupy.empty(dims, dtype))

    @classmethod
    def from_dlpack(cls, data: Any, is_bool_tensor: bool = False) -> OrtValue:
        """A tensor sharing the memory of a DLPack producer (numpy, CuPy, PyTorch...)."""
        if isinstance(data, OrtValue):
            return cls(data._value)
        device = data.__dlpack_device__()[0] if hasattr(data, "__dlpack_device__") else None
        if device == _DLPACK_CPU or isinstance(data, np.ndarray):
            array = np.from_dlpack(data)
        else:
            array = cupy_module().from_dlpack(data)
        return cls(array.view(bool) if is_bool_tensor and array.dtype == np.uint8 else array)

    @classmethod
    def ort_value_from_sparse_tensor(cls, sparse_tensor: Any) -> OrtValue:
        """Not provided: onnxep has no sparse tensors."""
        raise errors.NotImplemented("onnxep has no sparse tensors (ort_value_from_sparse_tensor)")

    # --- what it holds ----------------------------------------------------------------
    def is_tensor(self) -> bool:
        """Whether it holds a tensor."""
        return hasattr(self._value, "shape") and hasattr(self._value, "dtype")

    def is_tensor_sequence(self) -> bool:
        """Whether it holds a sequence of tensors."""
        return isinstance(self._value, list | tuple)

    def is_sparse_tensor(self) -> bool:
        """Always False: onnxep has no sparse tensors."""
        return False

    def has_value(self) -> bool:
        """False for an empty optional, True otherwise."""
        return self._value is not None

    def device_name(self) -> str:
        """``"cpu"`` or ``"cuda"``: where the data lives."""
        return "cuda" if is_device_array(self._value) else "cpu"

    def _tensor(self, what: str) -> Any:
        if not self.is_tensor():
            raise InvalidArgument(f"{what} needs an OrtValue holding a tensor, not {self._kind()}")
        return self._value

    def _kind(self) -> str:
        if self._value is None:
            return "an empty optional"
        if isinstance(self._value, dict):
            return "a map"
        return "a sequence" if self.is_tensor_sequence() else type(self._value).__name__

    def shape(self) -> list[int]:
        """The tensor's dims."""
        return [int(d) for d in self._tensor("shape()").shape]

    def data_type(self) -> str:
        """The onnx type text: ``tensor(float)``, ``seq(tensor(int64))``, ``map(string,float)``."""
        if self.is_tensor():
            return tensor_type_text(np.dtype(self._value.dtype))
        if self.is_tensor_sequence():
            inner = OrtValue(self._value[0]).data_type() if self._value else "tensor(float)"
            return f"seq({inner})"
        if isinstance(self._value, dict):
            key, item = next(iter(self._value.items()), ("", 0.0))
            key_type = "string" if isinstance(key, str) else "int64"
            item_type = "float" if isinstance(item, float) else "int64"
            return f"map({key_type},{item_type})"
        return "optional(tensor(float))" if self._value is None else type(self._value).__name__

    def element_type(self) -> int:
        """The tensor's onnx ``TensorProto`` element type number."""
        dtype = np.dtype(self._tensor("element_type()").dtype)
        return 8 if dtype.kind in "OUS" else onnx.helper.np_dtype_to_tensor_dtype(dtype)

    def tensor_size_in_bytes(self) -> int:
        """The tensor's data size in bytes."""
        return int(self._tensor("tensor_size_in_bytes()").nbytes)

    def data_ptr(self) -> int:
        """The address of the tensor's first element."""
        value = self._tensor("data_ptr()")
        if isinstance(value, np.ndarray):
            return int(value.ctypes.data)
        if hasattr(value, "__cuda_array_interface__"):
            return int(value.__cuda_array_interface__["data"][0])
        raise errors.NotImplemented(f"the address of a {type(value).__name__} is not known")

    def as_sparse_tensor(self) -> Any:
        """Not provided: onnxep has no sparse tensors."""
        raise errors.NotImplemented("onnxep has no sparse tensors (as_sparse_tensor)")

    # --- reading and writing -----------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The tensor as a numpy array: the same memory on the host, a copy from a device."""
        return np.asarray(host_value(self._tensor("numpy()")))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self.numpy()
        if copy:
            return np.array(array, dtype=dtype, copy=True)
        return array if dtype is None else np.asarray(array, dtype=dtype)

    def update_inplace(self, data: Any) -> None:
        """Copy ``data`` (an array or OrtValue, same dtype and size) into this tensor's memory."""
        target = self._tensor("update_inplace()")
        source = data._value if isinstance(data, OrtValue) else data
        if not hasattr(source, "dtype"):
            source = np.asarray(source)
        if np.dtype(source.dtype) != np.dtype(target.dtype) or source.size != target.size:
            raise InvalidArgument(
                f"update_inplace: the OrtValue holds {target.size} {np.dtype(target.dtype)} "
                f"values {list(target.shape)}, got {source.size} {np.dtype(source.dtype)} "
                f"{list(source.shape)}"
            )
        write(target, source)

    def __dlpack__(self, *, stream: Any = None) -> Any:
        value = self._tensor("__dlpack__")
        return value.__dlpack__() if stream is None else value.__dlpack__(stream=stream)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._tensor("__dlpack_device__").__dlpack_device__()

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        value = self._value
        if not hasattr(value, "__cuda_array_interface__"):
            raise AttributeError("__cuda_array_interface__")  # host values: hasattr() is False
        return value.__cuda_array_interface__

    def __repr__(self) -> str:
        if self.is_tensor():
            return f"OrtValue({self.data_type()} {self.shape()} on {self.device_name()})"
        return f"OrtValue({self._kind()})"


def write(target: Any, source: Any) -> None:
    """Copy ``source`` (host or device, same size) into ``target``'s memory, wherever each is."""
    if isinstance(target, np.ndarray):
        np.copyto(target, np.asarray(host_value(source)).reshape(target.shape))
        return
    cupy = cupy_module()
    target[...] = cupy.asarray(source).reshape(target.shape)


def unwrap(value: Any) -> Any:
    """What an OrtValue holds; any other value unchanged."""
    return value._value if isinstance(value, OrtValue) else value


def copy_tensors(src: Sequence[OrtValue], dst: Sequence[OrtValue], stream: Any = None) -> None:
    """Copy each source tensor into the destination at the same position (onnxruntime's
    ``copy_tensors``); ``stream`` is accepted and unused (copies complete in order)."""
    if len(src) != len(dst):
        raise InvalidArgument(f"copy_tensors: {len(src)} sources but {len(dst)} destinations")
    for source, target in zip(src, dst):
        target.update_inplace(source)
