"""OrtValue, IOBinding with OrtValues and the rest of onnxruntime's run API.

The script-level tests run the same code against ``onnxruntime`` and ``onnxep`` (an
application switches by changing its import), so they check onnxep against the real thing.
"""

from __future__ import annotations

import ctypes
import threading
import types
from typing import Any

import numpy as np
import onnx
import pytest
from graphs import model, node

import onnxep

X = np.arange(-3, 3, dtype=np.float32).reshape(2, 3)
W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)


def _relu() -> bytes:
    return model([node("Relu", ["x"], ["y"])], {"x": [2, 3]}, ["y"]).SerializeToString()


def _matmul(batch: str | int = "batch") -> bytes:
    m = model([node("MatMul", ["x", "w"], ["y"])], {"x": [batch, 3]}, ["y"], {"w": W})
    return m.SerializeToString()


def _runtimes() -> list[Any]:
    runtimes: list[Any] = [pytest.param(onnxep, id="onnxep")]
    try:
        import onnxruntime
    except ImportError:
        runtimes.append(pytest.param(None, id="onnxruntime", marks=pytest.mark.skip("no ORT")))
    else:
        runtimes.append(pytest.param(onnxruntime, id="onnxruntime"))
    return runtimes


@pytest.fixture(params=_runtimes())
def ort(request: pytest.FixtureRequest) -> types.ModuleType:
    """The runtime module a script imports as ``ort``."""
    return request.param


def _session(ort: types.ModuleType, model_bytes: bytes, options: Any = None) -> Any:
    providers = ["CPUExecutionProvider"] if ort is not onnxep else ["reference"]
    return ort.InferenceSession(model_bytes, options, providers=providers)


# --- scripts that run on both -------------------------------------------------------------
def test_ortvalue_from_numpy_shares_the_array(ort: types.ModuleType) -> None:
    x = X.copy()
    value = ort.OrtValue.ortvalue_from_numpy(x)
    assert value.data_ptr() == x.ctypes.data
    assert value.device_name() == "cpu"
    assert value.shape() == [2, 3]
    assert value.data_type() == "tensor(float)"
    assert value.element_type() == onnx.TensorProto.FLOAT
    assert value.has_value() and value.is_tensor() and not value.is_tensor_sequence()
    assert not value.is_sparse_tensor()
    assert value.tensor_size_in_bytes() == x.nbytes
    value.numpy()[0, 0] = 42.0  # numpy() is the same memory on the host
    assert x[0, 0] == 42.0
    np.testing.assert_array_equal(np.asarray(value), x)


def test_ortvalue_from_shape_and_type(ort: types.ModuleType) -> None:
    by_numpy = ort.OrtValue.ortvalue_from_shape_and_type([4, 5], np.int64)
    by_onnx = ort.OrtValue.ortvalue_from_shape_and_type([3], onnx.TensorProto.FLOAT16)
    assert by_numpy.shape() == [4, 5] and by_numpy.data_type() == "tensor(int64)"
    assert by_onnx.data_type() == "tensor(float16)" and by_onnx.numpy().dtype == np.float16
    by_numpy.update_inplace(np.arange(20, dtype=np.int64).reshape(4, 5))
    assert by_numpy.numpy()[3, 4] == 19


def test_run_takes_ortvalue_feeds(ort: types.ModuleType) -> None:
    session = _session(ort, _relu())
    (y,) = session.run(None, {"x": ort.OrtValue.ortvalue_from_numpy(X)})
    assert isinstance(y, np.ndarray)
    np.testing.assert_array_equal(y, np.maximum(X, 0))


def test_run_with_ort_values(ort: types.ModuleType) -> None:
    session = _session(ort, _matmul())
    results = session.run_with_ort_values(["y"], {"x": ort.OrtValue.ortvalue_from_numpy(X)})
    assert len(results) == 1 and isinstance(results[0], ort.OrtValue)
    assert results[0].shape() == [2, 2] and results[0].device_name() == "cpu"
    np.testing.assert_allclose(results[0].numpy(), X @ W, rtol=1e-6)


def test_io_binding_with_ortvalues_writes_into_the_bound_output(ort: types.ModuleType) -> None:
    session = _session(ort, _relu())
    binding = session.io_binding()
    binding.bind_ortvalue_input("x", ort.OrtValue.ortvalue_from_numpy(X))
    out = ort.OrtValue.ortvalue_from_shape_and_type([2, 3], np.float32)
    binding.bind_ortvalue_output("y", out)
    session.run_with_iobinding(binding)
    (y,) = binding.get_outputs()
    assert isinstance(y, ort.OrtValue) and y.data_ptr() == out.data_ptr()
    np.testing.assert_array_equal(out.numpy(), np.maximum(X, 0))
    (copied,) = binding.copy_outputs_to_cpu()
    assert isinstance(copied, np.ndarray)
    np.testing.assert_array_equal(copied, np.maximum(X, 0))


def test_io_binding_into_a_raw_host_pointer(ort: types.ModuleType) -> None:
    session = _session(ort, _relu())
    binding = session.io_binding()
    binding.bind_cpu_input("x", X)
    buffer = (ctypes.c_float * 6)()
    binding.bind_output("y", "cpu", 0, np.float32, [2, 3], ctypes.addressof(buffer))
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(np.frombuffer(buffer, np.float32), np.maximum(X, 0).ravel())


def test_io_binding_allocates_unbound_buffers(ort: types.ModuleType) -> None:
    session = _session(ort, _relu())
    binding = session.io_binding()
    binding.bind_cpu_input("x", X)
    binding.bind_output("y")
    session.run_with_iobinding(binding)
    (y,) = binding.get_outputs()
    assert y.device_name() == "cpu"
    np.testing.assert_array_equal(y.numpy(), np.maximum(X, 0))


def test_run_async_calls_back_with_the_outputs(ort: types.ModuleType) -> None:
    session = _session(ort, _relu())
    done = threading.Event()
    got: dict[str, Any] = {}

    def callback(outputs: Any, user_data: Any, error: str) -> None:
        got.update(outputs=outputs, user_data=user_data, error=error)
        done.set()

    session.run_async(None, {"x": X}, callback, "tag")
    assert done.wait(30), "the callback never ran"
    assert not got["error"] and got["user_data"] == "tag"
    np.testing.assert_array_equal(np.asarray(got["outputs"][0]), np.maximum(X, 0))


def test_set_providers_rebuilds(ort: types.ModuleType) -> None:
    session = _session(ort, _relu())
    session.set_providers(["CPUExecutionProvider"])
    assert session.get_providers()[-1] in ("CPUExecutionProvider", "ReferenceExecutionProvider")
    np.testing.assert_array_equal(session.run(None, {"x": X})[0], np.maximum(X, 0))


def test_free_dimension_override_by_name(ort: types.ModuleType) -> None:
    options = ort.SessionOptions()
    options.add_free_dimension_override_by_name("batch", 2)
    session = _session(ort, _matmul("batch"), options)
    assert session.get_inputs()[0].shape == [2, 3]
    np.testing.assert_allclose(session.run(None, {"x": X})[0], X @ W, rtol=1e-6)
    with pytest.raises(Exception, match="dimensions"):
        session.run(None, {"x": np.zeros((5, 3), np.float32)})


def test_add_initializer_replaces_the_weights(ort: types.ModuleType) -> None:
    options = ort.SessionOptions()
    weights = ort.OrtValue.ortvalue_from_numpy(W * 10)
    options.add_initializer("w", weights)
    session = _session(ort, _matmul(), options)
    np.testing.assert_allclose(session.run(None, {"x": X})[0], X @ (W * 10), rtol=1e-6)


# --- onnxep's own: clearer refusals, the rest of the module API -----------------------------
def test_sequence_outputs_as_ortvalues() -> None:
    m = model([node("SequenceConstruct", ["x", "x"], ["s"])], {"x": [2, 3]}, [], opset=17)
    m.graph.output.append(
        onnx.helper.make_value_info(
            "s", onnx.helper.make_sequence_type_proto(onnx.helper.make_tensor_type_proto(1, None))
        )
    )
    session = onnxep.InferenceSession(m.SerializeToString(), providers=["reference"])
    (s,) = session.run_with_ort_values(None, {"x": onnxep.OrtValue.ortvalue_from_numpy(X)})
    assert s.is_tensor_sequence() and not s.is_tensor()
    assert s.data_type() == "seq(tensor(float))"
    with pytest.raises(onnxep.InvalidArgument, match=r"numpy.*a sequence"):
        s.numpy()


def test_update_inplace_refuses_another_dtype_or_size() -> None:
    value = onnxep.OrtValue.ortvalue_from_shape_and_type([2, 3], np.float32)
    with pytest.raises(onnxep.InvalidArgument, match=r"6 float32 .* got 6 float64"):
        value.update_inplace(np.ones((2, 3)))
    with pytest.raises(onnxep.InvalidArgument, match="got 4 float32"):
        value.update_inplace(np.ones(4, np.float32))
    value.update_inplace(np.ones((3, 2), np.float32))  # same size, another shape: fine
    assert value.shape() == [2, 3]


def test_with_onnx_type_reinterprets_bytes() -> None:
    raw = np.array([0x3F80, 0x4000], dtype=np.uint16)  # bfloat16 1.0 and 2.0
    value = onnxep.OrtValue.ortvalue_from_numpy_with_onnx_type(raw, onnx.TensorProto.BFLOAT16)
    assert value.data_type() == "tensor(bfloat16)"
    np.testing.assert_array_equal(value.numpy().astype(np.float32), [1.0, 2.0])
    with pytest.raises(onnxep.InvalidArgument, match="4-byte items"):
        onnxep.OrtValue.ortvalue_from_numpy_with_onnx_type(raw, onnx.TensorProto.FLOAT)


def test_from_dlpack_and_copy_tensors() -> None:
    x = X.copy()
    value = onnxep.OrtValue.from_dlpack(x)
    assert value.data_ptr() == x.ctypes.data
    target = onnxep.OrtValue.ortvalue_from_shape_and_type([2, 3], np.float32)
    onnxep.copy_tensors([value], [target])
    np.testing.assert_array_equal(target.numpy(), X)
    assert repr(target) == "OrtValue(tensor(float) [2, 3] on cpu)"


def test_a_bound_output_of_the_wrong_shape_is_refused() -> None:
    session = onnxep.InferenceSession(_relu(), providers=["reference"])
    binding = session.io_binding()
    binding.bind_cpu_input("x", X)
    binding.bind_ortvalue_output("y", onnxep.OrtValue.ortvalue_from_shape_and_type([3, 2], "f4"))
    with pytest.raises(onnxep.InvalidArgument, match=r"'y'.*shape \[3, 2\].*\[2, 3\]"):
        session.run_with_iobinding(binding)
    with pytest.raises(onnxep.InvalidArgument, match="expected an OrtValue"):
        binding.bind_ortvalue_input("x", X)


def test_cuda_values_need_cupy() -> None:
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed: the CUDA path is tested in tests/providers")
    with pytest.raises(onnxep.InvalidArgument, match="CuPy"):
        onnxep.OrtValue.ortvalue_from_numpy(X, "cuda", 0)
    with pytest.raises(onnxep.InvalidArgument, match="unknown device_type 'tpu'"):
        onnxep.OrtValue.ortvalue_from_numpy(X, "tpu", 0)


def test_run_async_reports_errors_to_the_callback() -> None:
    session = onnxep.InferenceSession(_relu(), providers=["reference"])
    done = threading.Event()
    got: list[Any] = []
    session.run_async(None, {"nope": X}, lambda o, u, e: (got.extend([o, e]), done.set()), None)
    assert done.wait(30)
    assert got[0] == [] and "Invalid input name" in got[1]


def test_add_initializer_checks_name_and_type() -> None:
    options = onnxep.SessionOptions()
    options.add_initializer("nope", W)
    with pytest.raises(onnxep.InvalidArgument, match="no initializer named 'nope'"):
        onnxep.InferenceSession(_matmul(), options)
    options = onnxep.SessionOptions()
    options.add_initializer("w", W.astype(np.float64))
    with pytest.raises(onnxep.InvalidArgument, match=r"'w' is float32 \[3, 2\].*float64"):
        onnxep.InferenceSession(_matmul(), options)


def test_add_provider_is_used_when_the_session_names_none() -> None:
    options = onnxep.SessionOptions()
    assert not options.has_providers()
    options.add_provider("reference", {})
    assert options.has_providers()
    session = onnxep.InferenceSession(_relu(), options)
    assert session.get_providers() == ["ReferenceExecutionProvider"]


def test_custom_op_libraries_are_refused_clearly() -> None:
    with pytest.raises(onnxep.NotImplemented, match=r"custom-op library .libcustom\.so."):
        onnxep.SessionOptions().register_custom_ops_library("libcustom.so")


def test_module_functions() -> None:
    assert onnxep.get_version_string() == onnxep.__version__
    assert onnxep.get_build_info().startswith(f"onnxep {onnxep.__version__}")
    onnxep.set_default_logger_verbosity(0)
    with pytest.raises(ValueError, match=r"0 .* to 4"):
        onnxep.set_default_logger_severity(7)
    assert onnxep.ExecutionOrder.PRIORITY_BASED == 1


def test_free_dimension_override_by_denotation() -> None:
    m = onnx.load_from_string(_matmul("n"))
    m.graph.input[0].type.tensor_type.shape.dim[0].denotation = "DATA_BATCH"
    options = onnxep.SessionOptions()
    options.add_free_dimension_override_by_denotation("DATA_BATCH", 2)
    session = onnxep.InferenceSession(m.SerializeToString(), options, providers=["reference"])
    assert session.get_inputs()[0].shape == [2, 3]
    with pytest.raises(ValueError, match="must be >= 0"):
        options.add_free_dimension_override_by_name("n", -1)
