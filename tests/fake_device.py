"""A test-only provider on a fake device: arrays there are opaque to numpy.

Any value that reaches host code without ``to_host`` raises at once (``__array__`` refuses),
and any host array reaching a fake-device kernel without ``to_device`` raises too, so a
missing or misplaced transfer fails loudly instead of passing silently.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from onnxep import KernelRegistry, Provider, Support
from onnxep.registry import since_versions


class DeviceArray:
    """A value 'on the fake device'."""

    __slots__ = ("data",)

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("a DeviceArray reached host code: a to_host transfer is missing")

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype


CALLS: list[str] = []  # op types run on the fake device, in order


def on_device(op_type: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a numpy function: unwrap DeviceArray inputs (refusing host ones), wrap outputs."""

    @functools.wraps(fn)
    def kernel(*args: Any, **attrs: Any) -> Any:
        for i, a in enumerate(args):
            if a is not None and not isinstance(a, DeviceArray):
                raise TypeError(f"{op_type} input {i} is {type(a).__name__}, not on the device")
        CALLS.append(op_type)
        return DeviceArray(np.asarray(fn(*(a.data for a in args), **attrs)))

    return kernel


kernels = KernelRegistry()
FLOATS = ("float32",)
for _op, _fn in {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Relu": lambda x: np.maximum(x, 0).astype(x.dtype),
    "Neg": np.negative,
    "MatMul": np.matmul,
}.items():
    kernels.register(_op, versions=since_versions(_op, first=6), dtypes=FLOATS)(on_device(_op, _fn))


@kernels.register("Reshape", versions=since_versions("Reshape", first=14), host_inputs=(1,))
def reshape(data: DeviceArray, shape: np.ndarray, *, allowzero: int = 0) -> DeviceArray:
    """Reshape on the device; the shape input stays on the host."""
    if not isinstance(data, DeviceArray) or not isinstance(shape, np.ndarray):
        raise TypeError("reshape expects device data and a host shape")
    CALLS.append("Reshape")
    target = [d if d != 0 or allowzero else data.shape[i] for i, d in enumerate(shape.tolist())]
    return DeviceArray(data.data.reshape(target))


class FakeDeviceProvider(Provider):
    """Float32 Add/Sub/Mul/Relu/Neg/MatMul/Reshape on the fake device."""

    name = "FakeDeviceExecutionProvider"
    device = "fake"
    kernels = kernels
    uploads: ClassVar[int] = 0
    downloads: ClassVar[int] = 0

    def to_device(self, array: Any) -> DeviceArray:
        if not isinstance(array, (np.ndarray, np.generic)):
            raise TypeError(f"to_device got {type(array).__name__}, expected a host array")
        FakeDeviceProvider.uploads += 1
        return DeviceArray(np.asarray(array))

    def to_host(self, array: Any) -> np.ndarray:
        if not isinstance(array, DeviceArray):
            raise TypeError(f"to_host got {type(array).__name__}, expected a DeviceArray")
        FakeDeviceProvider.downloads += 1
        return array.data


class OtherDeviceProvider(FakeDeviceProvider):
    """The same kernels under another name, to test priority order."""

    name = "OtherDeviceExecutionProvider"


class IslandShyProvider(FakeDeviceProvider):
    """Declines segments of fewer than two nodes."""

    name = "IslandShyExecutionProvider"
    min_segment_nodes = 2


class CompileFailsProvider(FakeDeviceProvider):
    """Claims nodes, then fails to compile them."""

    name = "CompileFailsExecutionProvider"

    def compile(self, segment: Any) -> Any:
        raise RuntimeError("simulated compiler crash")


class RunFailsProvider(FakeDeviceProvider):
    """Compiles, then fails at run time on every Relu."""

    name = "RunFailsExecutionProvider"
    runs: ClassVar[int] = 0

    def bind(self, info: Any) -> Any:
        fn = super().bind(info)
        if info.node.op_type != "Relu":
            return fn

        def failing(*args: Any) -> Any:
            RunFailsProvider.runs += 1
            raise RuntimeError("simulated device fault")

        return failing


class UnavailableProvider(FakeDeviceProvider):
    """Never available, with a reason."""

    name = "UnavailableExecutionProvider"

    @classmethod
    def is_available(cls) -> Support:
        return Support.no("no fake accelerator is plugged in")
