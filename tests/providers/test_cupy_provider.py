"""The CuPy provider where there is no GPU: import, availability, names, options, registry."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import types

import numpy as np
import onnx
import pytest
from onnx import helper

import onnxep
from onnxep import discovery
from onnxep.registry import is_multi_output, schema_of
from onnxep_cupy import CuPyProvider, _backend, kernels


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_onnxep_and_provider_listing_never_import_cupy() -> None:
    out = _run(
        """
        import sys
        import onnxep
        onnxep.get_all_providers()
        import onnxep_cupy
        onnxep_cupy.CuPyProvider.name
        print("cupy" in sys.modules)
        """
    )
    assert out.strip() == "False"


def test_provider_imports_and_explains_itself_without_cupy() -> None:
    out = _run(
        """
        import sys
        sys.modules["cupy"] = None  # as if CuPy were not installed
        import onnxep_cupy
        print(onnxep_cupy.CuPyProvider.is_available().reason)
        """
    )
    assert "cupy is not installed or fails to import" in out


@pytest.fixture
def fake_cupy(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A 'cupy' module whose CUDA runtime fails the way a machine without a driver does."""

    def no_driver() -> int:
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    runtime = types.SimpleNamespace(getDeviceCount=no_driver)
    module = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime), is_available=bool)
    monkeypatch.setitem(sys.modules, "cupy", module)
    _backend.cupy_status.cache_clear()
    yield runtime
    _backend.cupy_status.cache_clear()


def test_availability_names_the_cuda_error(fake_cupy: types.SimpleNamespace) -> None:
    support = CuPyProvider.is_available()
    assert not support and "cudaErrorInsufficientDriver" in support.reason


def test_availability_without_devices(fake_cupy: types.SimpleNamespace) -> None:
    fake_cupy.getDeviceCount = lambda: 0
    assert CuPyProvider.is_available().reason == "no CUDA device found"


def test_names_and_aliases() -> None:
    assert CuPyProvider.alias() == "cupy"
    assert discovery.canonical_names("cupy") == ("CuPyExecutionProvider",)
    assert discovery.canonical_names("CUDAExecutionProvider") == ("CuPyExecutionProvider",)
    assert discovery.entries()["CuPyExecutionProvider"].load() is CuPyProvider


def _relu_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


@pytest.mark.skipif(bool(CuPyProvider.is_available()), reason="a GPU is usable here")
def test_onnxruntime_cuda_request_warns_and_runs_on_cpu() -> None:
    with pytest.warns(RuntimeWarning, match="CuPyExecutionProvider is not available: "):
        session = onnxep.InferenceSession(
            _relu_model().SerializeToString(),
            providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        )
    assert "CuPyExecutionProvider" not in session.get_providers()
    y = session.run(None, {"x": np.array([-1.0, 0.0, 2.0], np.float32)})[0]
    np.testing.assert_array_equal(y, [0.0, 0.0, 2.0])


def test_options() -> None:
    p = CuPyProvider({"device_id": "1", "enable_cuda_graph": "True", "gpu_mem_limit": 2**30})
    assert p.device_id == 1 and p.enable_cuda_graph
    assert not CuPyProvider().enable_cuda_graph
    with pytest.warns(RuntimeWarning, match="ignores unknown option"):
        CuPyProvider({"no_such_option": 1})
    with pytest.raises(onnxep.InvalidArgument, match="device_id"):
        CuPyProvider({"device_id": "first"})


# --- the registry -------------------------------------------------------------------------
ALL = sorted(kernels, key=lambda k: str(k.key))


@pytest.mark.parametrize("kernel", ALL, ids=lambda k: str(k.key))
def test_registered_versions_are_schema_versions(kernel) -> None:
    schema = schema_of(kernel.key)
    assert schema is not None and schema.since_version == kernel.key.since_version


def _default(attr: onnx.defs.OpSchema.Attribute):
    value = helper.get_attribute_value(attr.default_value)
    if isinstance(value, bytes):
        return value.decode()
    return list(value) if isinstance(value, list) else value


@pytest.mark.parametrize("kernel", [k for k in ALL if not k.factory], ids=lambda k: str(k.key))
def test_kernel_signature_matches_schema(kernel) -> None:
    """Inputs in schema order, attributes keyword-only with the schema's defaults."""
    schema = schema_of(kernel.key)
    params = inspect.signature(kernel.fn).parameters
    positional = [p for p in params.values() if p.kind is not p.KEYWORD_ONLY]
    assert [p.name for p in positional] == [i.name for i in schema.inputs][: len(positional)]
    for name, attr in schema.attributes.items():
        assert name in params and params[name].kind is params[name].KEYWORD_ONLY, name
        if attr.default_value.type != onnx.AttributeProto.UNDEFINED:
            assert params[name].default == _default(attr), name
        elif attr.required:
            assert params[name].default is inspect.Parameter.empty, name


def test_multi_output_kernels_return_tuples() -> None:
    x = np.ones((1, 2, 4, 4), np.float32)
    for kernel in ALL:
        if kernel.key.op_type in ("MaxPool", "LayerNormalization", "BatchNormalization"):
            assert is_multi_output(kernel.key), kernel.key
    assert isinstance(kernels.lookup(ALL[0].key).fn, object)
    y, indices = next(k for k in ALL if k.key.op_type == "MaxPool").fn(x, kernel_shape=(2, 2))
    assert y.shape == (1, 2, 3, 3) and indices is None
