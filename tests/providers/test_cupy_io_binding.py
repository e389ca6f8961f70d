"""IOBinding and device-array feeds, on a fake "cuda" provider whose arrays speak only DLPack.

``DLArray`` is what a CuPy array looks like to onnxep's core (no ``__array__``, a
``__dlpack__``), but lives in host memory, so the plan's device-feed and device-output
paths run here without a GPU. ``test_cupy_gpu.py`` repeats the essentials with CuPy.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper

import onnxep
from onnxep import KernelRegistry, Provider, Support
from onnxep.device_values import host_value, is_device_array


class DLArray:
    """A 'device' array: DLPack only (``np.from_dlpack`` reads it, ``np.asarray`` cannot)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape, self.dtype, self.nbytes = data.shape, data.dtype, data.nbytes

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.data.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.data.__dlpack_device__()


kernels = KernelRegistry()


@kernels.register("Relu", versions=(14,), dtypes=("float32",))
def relu(X: DLArray) -> DLArray:
    assert isinstance(X, DLArray), f"the device kernel got a {type(X).__name__}"
    return DLArray(np.maximum(X.data, 0))


class FakeCudaProvider(Provider):
    """Relu on a pretend CUDA device."""

    name = "FakeCudaExecutionProvider"
    device = "cuda"
    kernels = kernels

    @classmethod
    def is_available(cls) -> Support:
        return Support.yes()

    def to_device(self, array: Any) -> DLArray:
        return array if isinstance(array, DLArray) else DLArray(np.asarray(array))

    def to_host(self, array: Any) -> np.ndarray:
        return array.data if isinstance(array, DLArray) else array


@pytest.fixture
def fake_cuda() -> Iterator[str]:
    onnxep.register_provider(FakeCudaProvider)
    yield FakeCudaProvider.name
    onnxep.unregister_provider(FakeCudaProvider.name)


def _model() -> onnx.ModelProto:
    """y = relu(x) on the device; z = -x on the host: x is read on both sides."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [4]) for n in ("y", "z")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model.SerializeToString()


X = np.array([-2.0, -0.5, 0.5, 2.0], np.float32)


def test_device_arrays_are_recognised() -> None:
    assert is_device_array(DLArray(X)) and not is_device_array(X)
    np.testing.assert_array_equal(host_value(DLArray(X)), X)
    assert host_value(X) is X and host_value([1, 2]) == [1, 2]


def test_device_feed_reaches_host_kernels_as_a_host_copy(fake_cuda: str) -> None:
    session = onnxep.InferenceSession(_model(), providers=[fake_cuda])
    assert session.assignment(0) == fake_cuda and session.assignment(1) != fake_cuda
    y, z = session.run(None, {"x": DLArray(X)})
    assert session.plan.stats.count == 2  # x copied for Neg, y copied back; x not re-uploaded
    np.testing.assert_array_equal(y, np.maximum(X, 0))
    np.testing.assert_array_equal(z, -X)
    with pytest.raises(onnxep.Fail, match="Neg"):  # the ordinary plan hands Neg the DLArray
        session._run_plan([DLArray(X)])
    np.testing.assert_array_equal(session.run(None, {"x": X})[1], -X)


def test_io_binding_keeps_device_outputs_on_the_device(fake_cuda: str) -> None:
    session = onnxep.InferenceSession(_model(), providers=[fake_cuda])
    binding = session.io_binding()
    binding.bind_input("x", "cuda", 0, np.float32, [4], DLArray(X))
    binding.bind_output("y", "cuda")
    binding.bind_output("z")  # cpu
    session.run_with_iobinding(binding)
    y, z = binding.get_outputs()  # OrtValues, as onnxruntime returns
    assert y.device_name() == "cuda", "a cuda-bound output was copied to the host"
    assert z.device_name() == "cpu"
    assert session.plan.stats.count == 1  # x copied for Neg only
    np.testing.assert_array_equal(np.from_dlpack(y), np.maximum(X, 0))  # read in place
    np.testing.assert_array_equal(z.numpy(), -X)
    on_cpu = binding.copy_outputs_to_cpu()
    assert all(isinstance(v, np.ndarray) for v in on_cpu)
    binding.clear_binding_outputs()
    assert binding.get_outputs() == []


def test_io_binding_host_output_of_a_device_value(fake_cuda: str) -> None:
    session = onnxep.InferenceSession(_model(), providers=[fake_cuda])
    binding = session.io_binding()
    binding.bind_cpu_input("x", X)
    binding.bind_output("y", "cpu")
    session.run_with_iobinding(binding)
    (y,) = binding.get_outputs()
    assert y.device_name() == "cpu"
    np.testing.assert_array_equal(y.numpy(), np.maximum(X, 0))


def test_io_binding_raw_host_pointer() -> None:
    session = onnxep.InferenceSession(_model(), providers=["reference"])
    binding = session.io_binding()
    buffer = (ctypes.c_float * 4)(*X.tolist())
    binding.bind_input("x", "cpu", 0, np.float32, [4], ctypes.addressof(buffer))
    binding.bind_output("z")
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(binding.copy_outputs_to_cpu()[0], -X)


def test_io_binding_errors() -> None:
    session = onnxep.InferenceSession(_model(), providers=["reference"])
    binding = session.io_binding()
    with pytest.raises(onnxep.InvalidArgument, match="Invalid output name"):
        binding.bind_output("nope")
    with pytest.raises(onnxep.InvalidArgument, match="element_type and shape"):
        binding.bind_output("y", "cpu", 0, None, None, 1234)
    with pytest.raises(onnxep.InvalidArgument, match="device_type"):
        binding.bind_input("x", "tpu", 0, np.float32, [4], X)
    binding.bind_cpu_input("x", X)
    with pytest.raises(onnxep.InvalidArgument, match="bind at least one output"):
        session.run_with_iobinding(binding)
    binding.bind_output("y", "cuda")
    with pytest.raises(onnxep.InvalidArgument, match="no provider of this session runs there"):
        session.run_with_iobinding(binding)
