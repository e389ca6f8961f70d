"""The CuPy provider's kernel registry and the dtype lists its kernels declare."""

from __future__ import annotations

from onnxep.registry import KernelRegistry

__all__ = ["ANY_TENSOR", "FLOATS", "FLOATS_AND_INTS", "INTS", "kernels"]

kernels = KernelRegistry()

#: The float types the GPU kernels compute in (float16 is computed in float32 registers).
FLOATS = ("float16", "float32")
INTS = ("int32", "int64")
FLOATS_AND_INTS = FLOATS + INTS
#: Data-movement ops copy any fixed-size element type.
ANY_TENSOR = (
    *FLOATS_AND_INTS,
    "float64",
    "bool",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "uint32",
    "uint64",
)
